{
  description = "A Python web app in a streamLayeredImage image: the image is never written to the store";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs:
        let
          inherit (pkgs) lib;
          py = pkgs.python3Packages;
        in rec {
          app = py.buildPythonApplication {
            pname = "hello-app";
            version = "0.1.0";
            pyproject = true;
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [ ./pyproject.toml ./hello_app ];
            };
            build-system = [ py.setuptools ];
            pythonImportsCheck = [ "hello_app" ];
          };

          # What the action builds (`attr: docker`, the default). streamLayeredImage makes a script that
          # writes the image as a stream; the action reads the layer plan instead and makes each layer from
          # the store: python3 and its libraries are layers of their own, which the registry keeps from one
          # push to the next, and a change to the app uploads the app's layer only.
          docker = pkgs.dockerTools.streamLayeredImage {
            name = "hello-app";
            tag = "latest";
            contents = [ app ];
            config = {
              Cmd = [ "${app}/bin/hello-app" ];
              Env = [ "PYTHONUNBUFFERED=1" ];
              ExposedPorts."8000/tcp" = { };
              User = "65534:65534"; # nobody
            };
          };
        });
    };
}
