{
  description = "A container image built with nixpkgs dockerTools, pushed with its SBOM and provenance attested";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs: {
        # Every store path of this image (hello and its closure) is one component of the SBOM, with the
        # version and NAR hash Nix records for it.
        docker = pkgs.dockerTools.buildLayeredImage {
          name = "hello";
          tag = "latest";
          contents = [ pkgs.hello ];
          config.Cmd = [ "/bin/hello" ];
        };
      });
    };
}
