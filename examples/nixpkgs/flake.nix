{
  description = "A container image built with nixpkgs dockerTools, pushed by nix-image-action";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs: {
        # The attr the action builds by default is `docker`: here it is packages.<system>.docker,
        # so the workflow sets `attr: packages.x86_64-linux.docker` — or expose it at the top level as below.
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
      docker = self.packages.x86_64-linux.docker;
    };
}
