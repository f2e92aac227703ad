{
  description = "One image for x86_64 and aarch64 runners, merged into a multi-platform index";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      # Each runner builds packages.<its own system>.docker natively: no emulation, no cross-compiling.
      # dockerTools writes the platform into the image config (architecture amd64 or arm64, os linux),
      # which is what the merge job reads to fill in the index.
      packages = forAll (pkgs: {
        docker = pkgs.dockerTools.buildLayeredImage {
          name = "hello";
          tag = "latest";
          contents = [ pkgs.hello ];
          config.Cmd = [ "/bin/hello" ];
        };
      });
    };
}
