{
  description = "Two services of one repository in two images that share most of their layers";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs:
        let
          py = pkgs.python3Packages;

          # The library both services use: one store path, so one layer, the same in both images.
          common = py.buildPythonPackage {
            pname = "shop-common";
            version = "0.1.0";
            pyproject = true;
            src = ./libs/common;
            build-system = [ py.setuptools ];
            pythonImportsCheck = [ "shop_common" ];
          };

          service = name: py.buildPythonApplication {
            pname = "shop-${name}";
            version = "0.1.0";
            pyproject = true;
            src = ./services + "/${name}";
            build-system = [ py.setuptools ];
            dependencies = [ common ];
          };

          # buildLayeredImage puts each store path of the closure in a layer of its own, made the same way
          # in every image: python3, the libraries it links (openssl, zlib, …), glibc, cacert and
          # shop-common are byte for byte the same layers in both images. Only the service's own layer and
          # the small customisation layer differ.
          image = name:
            let app = service name;
            in pkgs.dockerTools.buildLayeredImage {
              name = "shop-${name}";
              tag = "latest";
              contents = [ app pkgs.cacert ];
              config = {
                Cmd = [ "${app}/bin/shop-${name}" ];
                Env = [ "PYTHONUNBUFFERED=1" ];
                User = "65534:65534"; # nobody
              };
            };
        in {
          api = image "api";
          worker = image "worker";
        });
    };
}
