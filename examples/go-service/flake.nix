{
  description = "A Go HTTP service built with buildGoModule, in a buildLayeredImage image";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs:
        let
          inherit (pkgs) lib;
        in rec {
          server = pkgs.buildGoModule {
            pname = "hello-server";
            version = "0.1.0";
            # Only the Go sources: editing the workflow or this flake does not rebuild the binary.
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [ ./go.mod ./main.go ];
            };
            # No dependencies outside the standard library, so nothing to vendor. With dependencies:
            # set vendorHash = lib.fakeHash, build once, and put the hash Nix reports here.
            vendorHash = null;
            env.CGO_ENABLED = 0; # a static binary: the image needs no libc
            ldflags = [ "-s" "-w" ];
          };

          # What the action builds (`attr: docker`, the default): one layer per store path, so a new build
          # of the server uploads the server's layer and nothing else.
          docker = pkgs.dockerTools.buildLayeredImage {
            name = "hello-server";
            tag = "latest";
            contents = [ pkgs.cacert ]; # CA roots, for the HTTPS requests a service makes
            config = {
              Entrypoint = [ "${server}/bin/hello-server" ];
              Env = [ "SSL_CERT_FILE=${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt" ];
              ExposedPorts."8080/tcp" = { };
              User = "65534:65534"; # nobody
            };
          };
        });
    };
}
