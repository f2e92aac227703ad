#!/usr/bin/env python3
"""Writes a container image archive in the format nixpkgs dockerTools.buildLayeredImage writes
(a gzip-compressed docker-archive: <diffID>/layer.tar entries, then the <sha256>.json config, then
manifest.json), without nixpkgs, so the example works on a machine with no binary cache.

usage: mkimage.py OUT.tar.gz
"""
import gzip, hashlib, io, json, sys, tarfile

MTIME = 1  # dockerTools sets every mtime in a layer to 1 (or the configured creation date)


def layer(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path in sorted(files):
            parts = path.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o555, MTIME
                    tar.addfile(info)
            data, mode = files[path]
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, MTIME
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main(out):
    hello = "/nix/store/0000000000000000000000000000000a-hello"
    layers = [
        layer({hello[1:] + "/bin/hello": (b"#!/bin/sh\necho 'Hello from a Nix-built image'\n", 0o555)}),
        layer({"nix/store/0000000000000000000000000000000b-greeting/share/greeting.txt": (b"hello, world\n" * 64, 0o444)}),
        # the customisation layer: symlinks into the store, as buildLayeredImage's `contents` makes
        layer({"etc/os-release": (b'NAME="nix-image-action example"\n', 0o444)}),
    ]
    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:01Z",
        "config": {"Cmd": [hello + "/bin/hello"], "Env": ["PATH=" + hello + "/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:01Z", "comment": "store paths"} for _ in layers],
    }, separators=(",", ":")).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{
        "Config": config_name,
        "RepoTags": ["hello:latest"],
        "Layers": [d[len("sha256:"):] + "/layer.tar" for d in diff_ids],
    }]).encode()

    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            def add(name, data):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o444, MTIME
                tar.addfile(info, io.BytesIO(data))
            for d, l in zip(diff_ids, layers):
                add(d[len("sha256:"):] + "/layer.tar", l)
            add(config_name, config)
            add("manifest.json", manifest)


if __name__ == "__main__":
    main(sys.argv[1])
