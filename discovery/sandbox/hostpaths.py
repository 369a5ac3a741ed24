"""Host paths a sandbox without its own OS image must show read-only: the system and the Python install."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Top-level folders a Python program needs (libraries, config, interpreters). Everything else in
# the host root (homes, /root, /work, /run, /mnt, ...) stays invisible to candidates.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")


def python_dirs(executable: str | None = None) -> list[str]:
    """The interpreter's install and virtual environment, outermost first, without nested duplicates."""
    exe = executable or sys.executable
    candidates = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.dirname(os.path.abspath(exe))),  # venv: <venv>/bin/python
        os.path.dirname(os.path.dirname(os.path.realpath(exe))),  # the install the venv links to
    }
    dirs = sorted({os.path.realpath(p) for p in candidates} | {os.path.abspath(p) for p in candidates})
    kept: list[str] = []
    for d in dirs:
        if d == "/" or not os.path.isdir(d):
            continue
        if any(_under(d, sysdir) for sysdir in SYSTEM_DIRS):
            continue  # shown anyway with the system folders
        if any(_under(d, k) for k in kept):
            continue
        kept.append(d)
    return kept


def system_entries() -> list[tuple[str, str | None]]:
    """(path, symlink target or None) for each system folder that exists on this host."""
    entries = []
    for d in SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            entries.append((d, os.readlink(d)))
        elif p.is_dir():
            entries.append((d, None))
    return entries


def _under(path: str, root: str) -> bool:
    """Whether path is root or inside it."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def sandboxes_dir() -> Path:
    """The in-sandbox code (runner, harness, image recipes): the installed copy, or a checkout's sandboxes/."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_sandboxes", package.parent / "sandboxes"):
        if (candidate / "runner.py").is_file():
            return candidate
    raise RuntimeError(f"the sandbox runner is missing under {package}: reinstall discovery-lab")
