{
  description = "A library two repositories build against, and one signed S3 binary cache they share";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { nixpkgs, ... }:
    let
      forAll = f: nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (system: f nixpkgs.legacyPackages.${system});
    in {
      packages = forAll (pkgs: rec {
        # The organisation's library: compiled here, by this repository's job, and by the job of every
        # repository that takes this flake as an input (README.md). Its store path is the same in all of
        # them, so whichever job builds it first uploads it to the shared cache, and the others take it
        # from there, its signature checked.
        libgreet = pkgs.stdenv.mkDerivation {
          pname = "libgreet";
          version = "1.0.0";
          src = ./libgreet;
          buildPhase = ''
            $CC -O2 -fPIC -shared -Wl,-soname,libgreet.so.1 -o libgreet.so.1 greet.c
          '';
          installPhase = ''
            install -Dm644 greet.h $out/include/greet.h
            install -Dm755 libgreet.so.1 $out/lib/libgreet.so.1
            ln -s libgreet.so.1 $out/lib/libgreet.so
          '';
        };

        greeter = pkgs.stdenv.mkDerivation {
          pname = "greeter";
          version = "1.0.0";
          src = ./app;
          buildInputs = [ libgreet ];
          buildPhase = ''
            $CC -O2 -o greeter main.c -lgreet
          '';
          installPhase = ''
            install -Dm755 greeter $out/bin/greeter
          '';
        };

        # One layer per store path: glibc (from cache.nixos.org), libgreet and greeter (from the shared
        # cache once any job of either repository has built them).
        docker = pkgs.dockerTools.buildLayeredImage {
          name = "greeter";
          tag = "latest";
          contents = [ greeter ];
          config = {
            Cmd = [ "${greeter}/bin/greeter" ];
            User = "65534:65534"; # nobody
          };
        };
      });
    };
}
