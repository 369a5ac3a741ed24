"""A candidate's code as a tree: relative posix path -> text, its one-string listing, safe paths and diffs.

A single-file candidate is a one-entry tree whose text form is the file itself, so single-file
tasks read and store exactly what they always did. A multi-file candidate's text form (what
prompts show, novelty compares and `Candidate.code` holds) is a listing: each file under a
header line `# ==== FILE: path ====`, in path order. `from_listing` gives the tree back (a file's
missing final newline is added, once, when a task's seed is first read).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path, PurePosixPath

Tree = dict[str, str]

HEADER = "# ==== FILE: {path} ===="
HEADER_LINE = re.compile(r"^# ==== FILE: (\S+) ====[ \t]*$", re.MULTILINE)
# Most files a candidate tree may hold, and the longest path: a guard against runaway agents.
MAX_FILES = 256
MAX_PATH_CHARS = 200


def path_problem(path: str) -> str | None:
    """Why a path cannot name a file of a candidate tree (absolute, `..`, hidden, odd), or None."""
    if not path or len(path) > MAX_PATH_CHARS:
        return f"path {path!r} is empty or longer than {MAX_PATH_CHARS} characters"
    if "\\" in path or "\0" in path or any(ch.isspace() for ch in path):
        return f"path {path!r} holds a backslash, a NUL or whitespace"
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        return f"path {path!r} is absolute: it is outside the candidate's folder"
    parts = path.split("/")
    if ".." in parts:
        return f"path {path!r} climbs out with '..': it is outside the candidate's folder"
    if any(part in ("", ".") or part.startswith(".") for part in parts):
        return f"path {path!r} has an empty, '.' or hidden part"
    return None


def to_listing(tree: Tree) -> str:
    """The one-string form of a multi-file tree: each file under its header, in path order."""
    chunks = []
    for path in sorted(tree):
        text = tree[path]
        chunks.append(
            HEADER.format(path=path) + "\n" + text + ("" if text.endswith("\n") or not text else "\n")
        )
    return "".join(chunks)


def is_listing(text: str) -> bool:
    """Whether a text is a multi-file listing (it starts with a file header line)."""
    return HEADER_LINE.match(text.split("\n", 1)[0]) is not None


def from_listing(text: str) -> Tree:
    """The tree a listing holds; text before the first header is ignored."""
    heads = list(HEADER_LINE.finditer(text))
    tree: Tree = {}
    for head, nxt in zip(heads, heads[1:] + [None], strict=True):
        start = head.end() + 1
        tree[head.group(1)] = text[start : nxt.start() if nxt else len(text)]
    return tree


def header_problem(tree: Tree) -> str | None:
    """Why a tree cannot be written as a listing (a file holds a header line itself), or None."""
    for path, text in sorted(tree.items()):
        if HEADER_LINE.search(text):
            return f"{path} contains a '# ==== FILE: ... ====' line, which is reserved for file headers"
    return None


def blob_hash(text: str) -> str:
    """Content address of one file's text (sha256 of its UTF-8 bytes)."""
    return hashlib.sha256(text.encode()).hexdigest()


def tree_diff(old: Tree, new: Tree, old_label: str, new_label: str) -> str:
    """A multi-file unified diff (git style a/ b/ paths); added and deleted files diff against nothing."""
    out = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        out.append(f"diff {old_label} {new_label} -- {path}\n")
        out += difflib.unified_diff(
            (a or "").splitlines(keepends=True),
            (b or "").splitlines(keepends=True),
            f"a/{path}" if a is not None else "/dev/null",
            f"b/{path}" if b is not None else "/dev/null",
        )
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    return "".join(out)


def write_tree(folder: Path, tree: Tree, mode: int = 0o644) -> None:
    """Write a tree's files under folder (made world-readable); ValueError on a path that would leave it."""
    for path in sorted(tree):
        problem = path_problem(path)
        if problem:
            raise ValueError(problem)  # checked when the child was made; never trusted on the way out either
        target = folder / path
        for parent in reversed(target.relative_to(folder).parents[:-1]):
            (folder / parent).mkdir(exist_ok=True)
            (folder / parent).chmod(0o755)
        target.write_text(tree[path])
        target.chmod(mode)
