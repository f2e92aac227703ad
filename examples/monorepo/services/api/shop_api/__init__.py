"""The shop's HTTP API: answers every GET with the queue orders go to."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shop_common import settings


class Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"orders go to {settings().queue}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    port = settings().port
    print(f"api listening on :{port}")
    ThreadingHTTPServer(("", port), Api).serve_forever()
