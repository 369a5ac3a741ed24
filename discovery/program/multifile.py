"""Children of a candidate tree: a reply's per-file edits, or an agent's edited tree, checked against the parent.

Every child goes through `child_from_edited_tree`, which enforces the rules of the tree: only
safe relative paths, fixed files untouched, EVOLVE blocks' fixed code kept, Python that parses.
A reply is first turned into an edited tree (SEARCH/REPLACE blocks that name their file, or whole
files under `File: path` lines or listing headers); a single-file task keeps `build_program`.
"""

from __future__ import annotations

import ast
import hashlib
import re

from discovery.domain import Status, code_hash
from discovery.program.blocks import BLOCK_END, BLOCK_START, normalise, split_block
from discovery.program.patch import (
    SEARCH_REPLACE,
    Proposal,
    Rejection,
    apply_diff,
    build_program,
    checked_child,
    indent_like,
    looks_like_prose_or_placeholder,
)
from discovery.program.tree import (
    HEADER_LINE,
    MAX_FILES,
    Tree,
    from_listing,
    header_problem,
    path_problem,
)
from discovery.task import Task

# A line naming the file the next edit is for: "File: a/b.py", "### file: `a/b.py`", "**Path: a.py**".
# The name must hold a '.' or '/', so a code line such as `path: str` is never taken for one.
FILE_LINE = re.compile(
    r"^[ \t]*(?:#+[ \t]*|//[ \t]*|\*\*)?(?:file|path)[ \t]*:[ \t]*\**[ \t]*`?"
    r"(?P<path>[^\s`*]*[./][^\s`*]*)`?\**[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
# Any fenced block, whatever its language tag (a tree holds more than Python).
ANY_FENCE = re.compile(r"```[\w+.-]*[ \t]*\n(.*?)```", re.DOTALL)


def tree_hash(tree: Tree) -> str:
    """Content hash of a tree for duplicate detection: each path with its (normalised, for Python) text."""
    digest = hashlib.sha256()
    for path in sorted(tree):
        text = normalise(tree[path]) if path.endswith(".py") else tree[path]
        digest.update(f"{len(path)}:{path}{len(text)}:{text}".encode())
    return digest.hexdigest()


def _named_in(reply: str, start: int, end: int) -> str | None:
    """The file named by the last file line (or listing header) between two positions of the reply."""
    names = [
        (m.start(), m.group(1) if m.re is HEADER_LINE else m.group("path"))
        for pattern in (FILE_LINE, HEADER_LINE)
        for m in pattern.finditer(reply, start, end)
    ]
    return max(names)[1] if names else None


def _file_holding(tree: Tree, search: str) -> list[str]:
    """The files whose text holds a SEARCH part (exactly, or up to indentation)."""
    return [p for p in sorted(tree) if not isinstance(apply_diff(tree[p], [(search, "")]), Rejection)]


def _forbidden(path: str, fixed: frozenset[str]) -> Rejection | None:
    """A rejection when a reply names a path that is unsafe or fixed."""
    problem = path_problem(path)
    if problem:
        return Rejection(Status.REJECTED_FORBIDDEN, problem)
    if path in fixed:
        return Rejection(
            Status.REJECTED_FORBIDDEN,
            f"the reply edits {path}, which the task fixes (fixed_files); leave it as it is",
        )
    return None


def _apply_search_replace(reply: str, parent: Tree, fixed: frozenset[str]) -> Tree | Rejection:
    """Apply every SEARCH/REPLACE block to the file it names (or the one file its SEARCH part is in)."""
    tree = dict(parent)
    after, named = 0, None
    for number, match in enumerate(SEARCH_REPLACE.finditer(reply), 1):
        search, replace = match.group(1), match.group(2)
        # Named since the previous block (never inside one), else the file the previous block named.
        named = _named_in(reply, after, match.start()) or named
        after, path = match.end(), named
        if path is None:
            holders = _file_holding(tree, search)
            if len(holders) != 1:
                where = "no file" if not holders else f"{len(holders)} files ({', '.join(holders)})"
                return Rejection(
                    Status.REJECTED_PATCH,
                    f"SEARCH block {number} names no file and matches {where}; put 'File: PATH' above it",
                )
            path = holders[0]
        refused = _forbidden(path, fixed)
        if refused:
            return refused
        if path not in tree:
            if search.strip():
                return Rejection(
                    Status.REJECTED_PATCH, f"SEARCH block {number} edits {path}, which does not exist"
                )
            # An empty SEARCH part makes a new file.
            tree[path] = replace if replace.endswith("\n") else replace + "\n"
            continue
        patched = apply_diff(tree[path], [(search, replace)])
        if isinstance(patched, Rejection):
            return Rejection(
                patched.status, f"{path}: {patched.reason.replace('block 1', f'block {number}')}"
            )
        tree[path] = patched
    return tree


def _whole_file(path: str, text: str, parent: Tree) -> str:
    """A whole file from a reply; a body without markers for a file with an EVOLVE block goes into its block."""
    old = parent.get(path)
    block = split_block(old) if old is not None else None
    if block is not None and BLOCK_START not in text and BLOCK_END not in text:
        return block.head + indent_like(text, block.body) + block.tail
    return text if text.endswith("\n") else text + "\n"


def _apply_whole_files(reply: str, parent: Tree, fixed: frozenset[str]) -> Tree | Rejection:
    """Replace the files a reply gives in full: fenced blocks under a file line, or a listing with headers."""
    fences = list(ANY_FENCE.finditer(reply))
    if not fences:
        if reply.count("```") == 1:
            return Rejection(Status.REJECTED_UNPARSEABLE, "the reply's code block is never closed (cut off?)")
        return Rejection(
            Status.REJECTED_UNPARSEABLE, "the reply holds no code block and no SEARCH/REPLACE blocks"
        )
    editable = [p for p in sorted(parent) if p not in fixed]
    files: Tree = {}
    after = 0
    for fence in fences:
        body, start, after = fence.group(1), after, fence.end()
        if HEADER_LINE.search(body):
            files.update(from_listing(body))
            continue
        path = _named_in(reply, start, fence.start()) or (editable[0] if len(editable) == 1 else None)
        if path is None:
            return Rejection(
                Status.REJECTED_UNPARSEABLE,
                "a code block names no file; put 'File: PATH' on the line above each whole file",
            )
        files[path] = body
    tree = dict(parent)
    for path, text in files.items():
        refused = _forbidden(path, fixed) if text != parent.get(path) else None
        if refused:
            return refused
        tree[path] = _whole_file(path, text, parent)
    return tree


def edited_tree(reply: str, parent: Tree, fixed: frozenset[str]) -> tuple[Tree, str] | Rejection:
    """The tree a reply asks for and its kind ("diff" or "full"), before the tree's rules are checked."""
    if SEARCH_REPLACE.search(reply):
        result, kind = _apply_search_replace(reply, parent, fixed), "diff"
    else:
        result, kind = _apply_whole_files(reply, parent, fixed), "full"
    return result if isinstance(result, Rejection) else (result, kind)


def _checked_file(path: str, old: str | None, new: str) -> str | Rejection:
    """One changed file of a child: its EVOLVE block enforced, real code, valid Python for .py files."""
    python = path.endswith(".py")
    if old is not None and split_block(old) is not None:
        checked = checked_child(old, new, "full", python=python)
        if isinstance(checked, Rejection):
            return Rejection(checked.status, f"{path}: {checked.reason}")
        return checked.code
    if not python:
        return new
    problem = looks_like_prose_or_placeholder(new)
    if problem:
        return Rejection(Status.REJECTED_UNPARSEABLE, f"{path}: {problem}")
    try:
        ast.parse(new)
    except SyntaxError as exc:
        return Rejection(Status.REJECTED_SYNTAX, f"{path}: line {exc.lineno}: {exc.msg}")
    return new


def child_from_edited_tree(
    task: Task, parent: Tree, edited: Tree, kind: str = "full"
) -> Proposal | Rejection:
    """Check an edited tree (a reply's, or an agent's) against its parent and build the child, or say why not.

    Rejected before any evaluation: a path outside the tree (absolute, `..`), a change to a fixed
    file (task.toml `fixed_files`) or its deletion, code changed outside a file's EVOLVE block,
    and Python that does not parse. Files the edit leaves out of a multi-file tree are deleted
    unless they hold an EVOLVE block. Proposal.code is the child's text form (`task.code_of`).
    """
    for path in sorted(edited):
        refused = _forbidden(path, frozenset()) if path not in parent else None
        if refused:
            return refused
    for path in sorted(task.fixed):
        if edited.get(path) != parent.get(path):
            how = "deletes" if path not in edited else "edits"
            return Rejection(
                Status.REJECTED_FORBIDDEN, f"the child {how} {path}, which the task fixes (fixed_files)"
            )
    if not task.folder and set(edited) != {task.spec.candidate}:
        return Rejection(
            Status.REJECTED_FORBIDDEN,
            f"a single-file candidate holds only {task.spec.candidate}; the child has {sorted(edited)}",
        )
    if len(edited) > MAX_FILES:
        return Rejection(Status.REJECTED_FORBIDDEN, f"the child has {len(edited)} files; at most {MAX_FILES}")
    problem = header_problem(edited)
    if problem:
        return Rejection(Status.REJECTED_UNPARSEABLE, problem)
    for path in sorted(set(parent) - set(edited)):
        if split_block(parent[path]) is not None:
            return Rejection(
                Status.REJECTED_OUTSIDE_BLOCK,
                f"the child deletes {path}, whose code outside its EVOLVE block is fixed",
            )
    child: Tree = {}
    for path in sorted(edited):
        text = edited[path]
        checked = text if text == parent.get(path) else _checked_file(path, parent.get(path), text)
        if isinstance(checked, Rejection):
            return checked
        child[path] = checked
    return Proposal(task.code_of(child), kind)


def child_from_reply(task: Task, reply: str, parent_code: str) -> Proposal | Rejection:
    """A child from an LLM reply: `build_program` for a single-file task, per-file edits for a folder."""
    if not task.folder:
        return build_program(reply, parent_code)
    parent = task.tree_of(parent_code)
    edited = edited_tree(reply, parent, task.fixed)
    if isinstance(edited, Rejection):
        return edited
    return child_from_edited_tree(task, parent, edited[0], edited[1])


def code_hash_of(task: Task, code: str) -> str:
    """The duplicate-detection hash of a candidate's code: normalised text, or per-file for a folder task."""
    return tree_hash(task.tree_of(code)) if task.folder else code_hash(normalise(code))
