"""The task bundle a cluster node needs: the task folder and the trusted runner, packed once per run."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

TASK_DIR = "task"
RUNNER_DIR = "runner"


def _readable(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """World-readable entries owned by nobody in particular; caches and links left out."""
    if "__pycache__" in info.name or not (info.isfile() or info.isdir()):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0  # the same folders pack to the same bytes, so the digest names the contents
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def pack(task_dir: Path, runner_dir: Path) -> bytes:
    """A tar of the task folder and the runner folder (task/, runner/)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for folder, name in ((task_dir, TASK_DIR), (runner_dir, RUNNER_DIR)):
            for path in sorted(Path(folder).rglob("*")):
                tar.add(path, arcname=f"{name}/{path.relative_to(folder)}", recursive=False, filter=_readable)
    return buffer.getvalue()


def digest(data: bytes) -> str:
    """A short content hash naming a bundle."""
    return hashlib.sha256(data).hexdigest()[:16]


def bundle_dir(name: str) -> Path:
    """Where this node keeps an unpacked bundle (the same path for every worker on the node)."""
    return Path(tempfile.gettempdir()) / "discovery-ray-bundles" / name


def unpacked(name: str) -> Path | None:
    """The unpacked bundle folder if this node already has it."""
    path = bundle_dir(name)
    return path if path.is_dir() else None


def unpack(name: str, data: bytes) -> Path:
    """Unpack a bundle once per node; workers racing on the same node all end with the same folder."""
    final = bundle_dir(name)
    final.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(staging, filter="data")
    staging.chmod(0o755)  # the sandbox reads it as an unprivileged user
    try:
        os.rename(staging, final)
    except OSError:  # another worker got there first: its copy is the same bytes
        shutil.rmtree(staging, ignore_errors=True)
    return final
