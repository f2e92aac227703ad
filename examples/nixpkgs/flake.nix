{
  description = "A container image built with nixpkgs dockerTools, pushed by nix-image-action";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs: {
        # The action builds `<flake>#docker` by default; Nix finds it here as packages.<runner's system>.docker,
        # so the same workflow builds the x86_64 image on x86_64 runners and the aarch64 one on arm runners.
        docker = pkgs.dockerTools.buildLayeredImage {
          name = "hello";
          tag = "latest";
          contents = [ pkgs.hello ];
          config.Cmd = [ "/bin/hello" ];
        };
        # The same image as a script that streams it: nothing is written to the store but the script.
        stream = pkgs.dockerTools.streamLayeredImage {
          name = "hello";
          tag = "latest";
          contents = [ pkgs.hello ];
          config.Cmd = [ "/bin/hello" ];
        };
      });
    };
}
