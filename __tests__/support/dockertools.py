#!/usr/bin/env python3
"""Test reference for nix-image-action: what nixpkgs' streamLayeredImage writes.

Written for this project after the rules of nixpkgs'
pkgs/build-support/docker/stream_layered_image.py (the versions whose conf has
"mtime", "uid", "gid", "uname", "gname" and "store_dir"); it is not that script.
It uses Python's own tarfile, pathlib, json and datetime the way that script
does, so its bytes are the ones the action's in-process layer and config makers
must reproduce. Standard library only.

  dockertools.py layer <conf.json> <index>   store layer <index>'s tar on stdout
  dockertools.py stream <conf.json>          the whole docker-archive on stdout

The conf must have "from_image": null (base images are not handled here).
"""

import hashlib
import io
import json
import os
import pathlib
import sys
import tarfile
import tempfile
from datetime import datetime, timezone

NOW = datetime.now(tz=timezone.utc)


def when(text):
    """A conf time: "now", or anything datetime.fromisoformat reads."""
    return NOW if text == "now" else datetime.fromisoformat(text)


class Owner:
    """What every member of a store layer is stamped with."""

    def __init__(self, conf):
        self.mtime = int(when(conf["mtime"]).timestamp())
        self.uid = int(conf["uid"])
        self.gid = int(conf["gid"])
        self.uname = conf["uname"]
        self.gname = conf["gname"]

    def stamp(self, info):
        info.mtime = self.mtime
        info.uid, info.gid = self.uid, self.gid
        info.uname, info.gname = self.uname, self.gname
        return info


def members_of(store_path):
    """A store path alone if it is a symlink, else it and all below it, in Path order."""
    top = pathlib.Path(store_path)
    if top.is_symlink():
        return [top]
    return sorted([top, *top.rglob("*")])


def write_layer(out, store_paths, owner):
    """One store layer's tar, written to the file-like `out`."""
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for top in ("/nix", "/nix/store"):
            info = tarfile.TarInfo(top)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(owner.stamp(info))
        for store_path in store_paths:
            for path in members_of(store_path):
                info = tar.gettarinfo(path)
                info.name = "/" + info.name  # gettarinfo made it relative
                if info.islnk():
                    # A second name of a file already in this tar: written again, whole.
                    info.type = tarfile.REGTYPE
                    info.linkname = ""
                    info.size = path.stat().st_size
                owner.stamp(info)
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)


class Digest:
    """A sink that keeps the sha256 and the length of what is written, and passes it on to `copy`."""

    def __init__(self, copy):
        self.sha = hashlib.sha256()
        self.size = 0
        self.copy = copy

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        self.copy.write(data)


def load(conf_path):
    with open(conf_path, "r") as f:
        return json.load(f)


def check_paths(store_paths, store_dir):
    outside = [p for p in store_paths if not p.startswith(store_dir)]
    if outside:
        raise SystemExit(f"paths outside {store_dir}: {outside}")


def cmd_layer(conf_path, index):
    conf = load(conf_path)
    store_paths = conf["store_layers"][int(index)]
    check_paths(store_paths, conf["store_dir"])
    out = sys.stdout.buffer
    write_layer(out, store_paths, Owner(conf))
    out.flush()


def add_blob(tar, name, data, mtime):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    tar.addfile(info, io.BytesIO(data))


def cmd_stream(conf_path):
    conf = load(conf_path)
    if conf.get("from_image") is not None:
        raise SystemExit("from_image is not supported by this test reference")
    created = when(conf["created"])
    owner = Owner(conf)
    layers = []  # (member name in the archive, diff id hex, store paths)
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
        for store_paths in conf["store_layers"]:
            check_paths(store_paths, conf["store_dir"])
            # The script makes each layer twice (once for its digest and size, once into the
            # archive); making it once into a spool file gives the same bytes.
            with tempfile.TemporaryFile() as spool:
                digest = Digest(spool)
                write_layer(digest, store_paths, owner)
                spool.seek(0)
                hexsum = digest.sha.hexdigest()
                info = tarfile.TarInfo(f"{hexsum}/layer.tar")
                info.size = digest.size
                info.mtime = owner.mtime
                tar.addfile(info, spool)
            layers.append((f"{hexsum}/layer.tar", hexsum, store_paths))

        custom = conf["customisation_layer"]
        with open(os.path.join(custom, "checksum")) as f:
            hexsum = f.read().strip()
        if len(hexsum) != 64:
            raise SystemExit(f"bad checksum in {custom}")
        layer_tar = os.path.join(custom, "layer.tar")
        info = tar.gettarinfo(layer_tar)
        info.name = f"{hexsum}/layer.tar"
        info.mtime = owner.mtime
        with open(layer_tar, "rb") as f:
            tar.addfile(info, f)
        layers.append((info.name, hexsum, [custom]))

        stamp = datetime.isoformat(created)
        image = {
            "created": stamp,
            "architecture": conf["architecture"],
            "os": "linux",
            "config": conf["config"],
            "rootfs": {
                "diff_ids": [f"sha256:{h}" for _, h, _ in layers],
                "type": "layers",
            },
            "history": [
                {"created": stamp, "comment": f"store paths: {paths}"}
                for _, _, paths in layers
            ],
        }
        image_bytes = json.dumps(image, indent=4).encode("utf-8")
        config_name = hashlib.sha256(image_bytes).hexdigest() + ".json"
        add_blob(tar, config_name, image_bytes, owner.mtime)
        manifest = [
            {
                "Config": config_name,
                "RepoTags": [conf["repo_tag"]],
                "Layers": [name for name, _, _ in layers],
            }
        ]
        add_blob(tar, "manifest.json", json.dumps(manifest, indent=4).encode("utf-8"), owner.mtime)
    sys.stdout.buffer.flush()


def main(argv):
    if len(argv) == 3 and argv[0] == "layer":
        cmd_layer(argv[1], argv[2])
    elif len(argv) == 2 and argv[0] == "stream":
        cmd_stream(argv[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
