{
  description = "An image archive in dockerTools' format, built without nixpkgs (works offline)";

  outputs = { self }: {
    # `nix build .#docker` writes a .tar.gz docker-archive like dockerTools.buildLayeredImage does.
    docker = derivation {
      name = "hello-image.tar.gz";
      system = "x86_64-linux";
      builder = "/bin/sh";
      # No sandbox on the machines this example is for: the host's python3 writes the archive.
      args = [ "-c" "/usr/bin/python3 ${./mkimage.py} $out" ];
    };
  };
}
