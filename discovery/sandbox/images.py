"""Building the Docker images sandboxes run in, offline where no registry can be reached.

Kinds:
- skeleton: a tiny image (empty mount points, /tmp 1777, a passwd with nobody) imported from a tar in
  under a second; at run time the host's system folders and Python install are bind-mounted into
  it read-only, so it sees exactly the host's numpy/torch. Which host paths to bind is recorded in
  the image label `discovery.binds` (JSON list of [host, target]).
- debootstrap: a self-contained Debian minbase with python3 and numpy (about a minute; needs only
  the Debian package mirror).
- dockerfile: `docker build` of sandboxes/<recipe>.Dockerfile (py, torch-cpu, torch-cuda) for
  machines that can pull base images.
Every image carries `discovery.kind` and `discovery.python` (the interpreter to run) labels.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from discovery.errors import UserError
from discovery.sandbox.base import CANDIDATE_MOUNT, RUNNER_MOUNT, TASK_MOUNT
from discovery.sandbox.docker_client import connect
from discovery.sandbox.hostpaths import python_dirs, sandboxes_dir, system_entries

log = logging.getLogger(__name__)

KINDS = ("skeleton", "debootstrap", "dockerfile")
RECIPES = ("py", "torch-cpu", "torch-cuda")
LABEL_KIND = "discovery.kind"
LABEL_PYTHON = "discovery.python"
LABEL_BINDS = "discovery.binds"
# Single host files a skeleton container needs from /etc (the loader cache makes imports fast).
ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
PASSWD = "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def skeleton_binds(python: str | None = None) -> list[tuple[str, str]]:
    """(host, target) pairs a skeleton container mounts read-only: system folders, Python, /etc files."""
    binds = [(path, path) for path, link in system_entries() if link is None and path != "/etc"]
    binds += [(d, d) for d in python_dirs(python)]
    binds += [(f, f) for f in ETC_FILES if os.path.isfile(f)]
    return binds


def skeleton_tar(binds: list[tuple[str, str]]) -> bytes:
    """The skeleton's whole file system: mount points, symlinks like /bin -> usr/bin, passwd and group."""
    buf = io.BytesIO()
    now = int(time.time())
    made: set[str] = set()

    def add_dir(path: str, mode: int = 0o755) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub in made:
                continue
            made.add(sub)
            info = tarfile.TarInfo(sub)
            info.type = tarfile.DIRTYPE
            info.mode = mode if i == len(parts) else 0o755
            info.mtime = now
            tar.addfile(info)

    def add_file(path: str, text: str) -> None:
        data = text.encode()
        info = tarfile.TarInfo(path.strip("/"))
        info.size = len(data)
        info.mode = 0o644
        info.mtime = now
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w") as tar:
        add_dir("/tmp", 0o1777)
        for d in ("/etc", "/proc", "/dev", "/sys", TASK_MOUNT, RUNNER_MOUNT, CANDIDATE_MOUNT):
            add_dir(d)
        for path, link in system_entries():
            if link is not None:
                info = tarfile.TarInfo(path.strip("/"))
                info.type = tarfile.SYMTYPE
                info.linkname = link
                info.mtime = now
                tar.addfile(info)
        for _host, target in binds:
            if os.path.isdir(_host):
                add_dir(target)
            else:
                add_dir(os.path.dirname(target))
                add_file(target, "")  # a mount point for a single-file bind
        add_file("/etc/passwd", PASSWD)
        add_file("/etc/group", GROUP)
    return buf.getvalue()


def _image_id(client: Any, name: str) -> str | None:
    """The id image `name` points at now, or None."""
    import docker

    try:
        return client.images.get(name).id
    except docker.errors.ImageNotFound:
        return None


def _remove_replaced(client: Any, name: str, old_id: str | None) -> None:
    """Remove the image a rebuild of `name` replaced, so rebuilds leave no dangling images behind."""
    import docker

    if old_id is None or old_id == _image_id(client, name):
        return
    try:
        client.images.remove(old_id)
    except docker.errors.APIError as exc:  # still used by a container, or tagged elsewhere: keep it
        log.info("kept the replaced image %s of %s: %s", old_id[:19], name, exc)


def _import(client: Any, tar_path: str, name: str, labels: dict[str, str]) -> None:
    """`docker import` a root file system tar as image `name`, with labels (replacing the old one)."""
    repo, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
    changes = [f"LABEL {k}={json.dumps(v)}" for k, v in labels.items()]
    changes += ["WORKDIR /tmp", "USER 65534:65534", 'ENV PATH="/usr/local/bin:/usr/bin:/bin"']
    old_id = _image_id(client, name)
    with open(tar_path, "rb") as fh:
        client.api.import_image_from_data(fh.read(), repository=repo, tag=tag or "latest", changes=changes)
    _remove_replaced(client, name, old_id)


def build_skeleton(name: str, client: Any | None = None, python: str | None = None) -> None:
    """Build the skeleton image: under a second, fully offline; tied to this host's Python install."""
    import sys

    client = client or connect()
    python = python or sys.executable
    binds = skeleton_binds(python)
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        tmp.write(skeleton_tar(binds))
        tmp.flush()
        labels = {LABEL_KIND: "skeleton", LABEL_PYTHON: python, LABEL_BINDS: json.dumps(binds)}
        _import(client, tmp.name, name, labels)


def build_debootstrap(name: str, client: Any | None = None, suite: str = "bookworm") -> None:
    """Build a self-contained Debian minbase image with python3 and numpy (needs the Debian mirror)."""
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap is not installed; install it with: apt-get install -y debootstrap")
    client = client or connect()
    with tempfile.TemporaryDirectory(prefix="discovery-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-numpy",
            suite,
            str(root),
            DEBIAN_MIRROR,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UserError(
                f"debootstrap failed (is the Debian mirror reachable?): {proc.stderr.strip()[-500:]}"
            )
        for d in (TASK_MOUNT, RUNNER_MOUNT, CANDIDATE_MOUNT):
            (root / d.strip("/")).mkdir(exist_ok=True)
        (root / "tmp").chmod(0o1777)
        # Drop the apt caches: they only make the image bigger.
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        tar_path = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar_path), "."], check=True)
        labels = {LABEL_KIND: "debootstrap", LABEL_PYTHON: "/usr/bin/python3", LABEL_BINDS: "[]"}
        _import(client, str(tar_path), name, labels)


def build_dockerfile(name: str, recipe: str = "py", client: Any | None = None) -> None:
    """`docker build` sandboxes/<recipe>.Dockerfile; needs a registry to pull the base image."""
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    client = client or connect()
    recipe_dir = sandboxes_dir()
    dockerfile = recipe_dir / f"{recipe}.Dockerfile"
    old_id = _image_id(client, name)
    try:
        client.images.build(path=str(recipe_dir), dockerfile=dockerfile.name, tag=name, rm=True, pull=False)
        _remove_replaced(client, name, old_id)
    except Exception as exc:  # noqa: BLE001 - BuildError / APIError: report the engine's words
        raise UserError(
            f"docker build of {dockerfile.name} failed ({exc}); on a machine without a registry use "
            "`discovery sandbox build --kind skeleton` (or debootstrap) instead"
        ) from exc


def build_image(kind: str, name: str, recipe: str = "py") -> None:
    """Build image `name` of the given kind (skeleton | debootstrap | dockerfile)."""
    if kind == "skeleton":
        build_skeleton(name)
    elif kind == "debootstrap":
        build_debootstrap(name)
    elif kind == "dockerfile":
        build_dockerfile(name, recipe)
    elif kind.startswith("dockerfile-") and kind.removeprefix("dockerfile-") in RECIPES:
        build_dockerfile(name, kind.removeprefix("dockerfile-"))
    else:
        raise UserError(f"unknown image kind {kind!r}; choose one of {', '.join(KINDS)}")
    log.info("built image %s (%s)", name, kind)


def image_info(client: Any, name: str) -> dict[str, str] | None:
    """The discovery labels of image `name`, or None when it does not exist."""
    import docker

    try:
        image = client.images.get(name)
    except docker.errors.ImageNotFound:
        return None
    return dict(image.labels or {})


def list_images(client: Any | None = None) -> list[tuple[str, str]]:
    """(tag, kind) of every image built for discovery on this engine."""
    client = client or connect()
    found = []
    for image in client.images.list(filters={"label": LABEL_KIND}):
        for tag in image.tags or [image.short_id]:
            found.append((tag, image.labels.get(LABEL_KIND, "?")))
    return sorted(found)


def skeleton_is_current(labels: dict[str, str], python: str | None = None) -> bool:
    """Whether a skeleton image's recorded binds still exist on this host (a moved venv breaks it)."""
    import sys

    if labels.get(LABEL_KIND) != "skeleton":
        return True
    binds = json.loads(labels.get(LABEL_BINDS, "[]"))
    recorded = labels.get(LABEL_PYTHON)
    return all(os.path.exists(h) for h, _ in binds) and recorded == (python or sys.executable)
