module example.com/hello-server

go 1.24
