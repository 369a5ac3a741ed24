"""Turning an LLM reply into a candidate program: diffs, full rewrites, block-only replies, and rejections."""

from __future__ import annotations

import ast
import dataclasses
import re

from discovery.program.blocks import BLOCK_END, BLOCK_START, same_fixed_code, split_block

FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
SEARCH_REPLACE = re.compile(
    r"<{5,}\s*SEARCH[ \t]*\n(.*?)\n?={5,}[ \t]*\n(.*?)\n?>{5,}\s*REPLACE", re.DOTALL | re.IGNORECASE
)
# Text that weak models echo instead of writing code (OpenEvolve + SmolLM2 did exactly this).
PLACEHOLDERS = re.compile(
    r"(your code here|\{code\}|\{program\}|<code>|<your[_ ]code>|insert code|rest of (the )?code|"
    r"\.\.\. ?existing code|YOUR_CODE|implementation goes here|<\|im_)",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A complete candidate program built from a reply."""

    code: str
    kind: str  # "diff", "full" or "block"


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A reply that yields no program to evaluate, with the status and reason to record."""

    status: str
    reason: str


def _find_loose(text: str, search: str) -> tuple[int, int, str] | None:
    """Locate `search` in `text` ignoring indentation; returns (start line, end line, indent delta)."""
    text_lines = text.splitlines()
    search_lines = [line for line in search.splitlines()]
    while search_lines and not search_lines[0].strip():
        search_lines.pop(0)
    while search_lines and not search_lines[-1].strip():
        search_lines.pop()
    if not search_lines:
        return None
    stripped = [line.strip() for line in search_lines]
    n = len(search_lines)
    for i in range(len(text_lines) - n + 1):
        if [line.strip() for line in text_lines[i : i + n]] == stripped:
            found = text_lines[i]
            want = search_lines[0]
            indent = found[: len(found) - len(found.lstrip())]
            base = want[: len(want) - len(want.lstrip())]
            return i, i + n, indent if len(indent) >= len(base) else ""
    return None


def _reindent(replacement: str, search: str, target_indent: str) -> list[str]:
    """Shift a replacement so its first line has target_indent, keeping its relative indentation."""
    lines = replacement.splitlines()
    first = next((line for line in search.splitlines() if line.strip()), "")
    base = first[: len(first) - len(first.lstrip())]
    out = []
    for line in lines:
        if line.startswith(base):
            out.append(target_indent + line[len(base) :] if line.strip() else "")
        else:
            out.append(target_indent + line.lstrip() if line.strip() else "")
    return out


def apply_diff(parent: str, blocks: list[tuple[str, str]]) -> str | Rejection:
    """Apply SEARCH/REPLACE blocks in order: exact match first, then one that tolerates indentation."""
    code = parent
    for number, (search, replace) in enumerate(blocks, 1):
        if search and search in code:
            code = code.replace(search, replace, 1)
            continue
        found = _find_loose(code, search)
        if found is None:
            preview = search.strip().splitlines()[0][:80] if search.strip() else "(empty)"
            return Rejection(
                "rejected_patch", f"SEARCH block {number} not found in the parent (starts: {preview!r})"
            )
        start, end, indent = found
        lines = code.splitlines()
        lines[start:end] = _reindent(replace, search, indent)
        code = "\n".join(lines) + ("\n" if parent.endswith("\n") else "")
    return code


def looks_like_prose_or_placeholder(body: str) -> str | None:
    """Why a block body is not real code, or None when it looks like code."""
    if not body.strip():
        return "the reply's code is empty"
    match = PLACEHOLDERS.search(body)
    if match:
        return f"the reply contains placeholder text {match.group(0)!r} instead of code"
    try:
        tree = ast.parse(body if not body.startswith((" ", "\t")) else "if True:\n" + body)
    except SyntaxError:
        return None  # a syntax error is reported against the whole program later
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and not isinstance(n, ast.If)]
    if all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in statements):
        return "the reply holds only text or constants, no code"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and all(
            isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in node.body
        ):
            if any(n.value.value is Ellipsis for n in node.body):
                return f"function {node.name}() has only '...' as its body"
    return None


def _code_from_reply(reply: str) -> str | None:
    """The code a reply offers: its longest fenced block, or the whole reply if it parses as Python."""
    fenced = FENCE.findall(reply)
    if fenced:
        return max(fenced, key=len)
    try:
        ast.parse(reply)
    except SyntaxError:
        return None
    return reply if any(k in reply for k in ("def ", "return", "=", "import ")) else None


def indent_like(body: str, reference: str) -> str:
    """Indent a replacement block body the way the original block body was indented."""
    ref_line = next((line for line in reference.splitlines() if line.strip()), "")
    indent = ref_line[: len(ref_line) - len(ref_line.lstrip())]
    lines = body.splitlines()
    min_indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join((indent + line[min_indent:]) if line.strip() else "" for line in lines) + "\n"


def build_program(reply: str, parent: str) -> Proposal | Rejection:
    """Turn a reply into a whole program, enforcing that only the EVOLVE block changed."""
    parent_split = split_block(parent)
    if parent_split is None:
        return Rejection("rejected_outside_block", "the parent program has no valid EVOLVE block")

    blocks = SEARCH_REPLACE.findall(reply)
    if blocks:
        patched = apply_diff(parent, blocks)
        if isinstance(patched, Rejection):
            return patched
        proposal = Proposal(patched, "diff")
    else:
        code = _code_from_reply(reply)
        if code is None:
            if reply.count("```") == 1:
                return Rejection("rejected_unparseable", "the reply's code block is never closed (cut off?)")
            return Rejection(
                "rejected_unparseable", "the reply holds no code block and no SEARCH/REPLACE blocks"
            )
        if BLOCK_START in code or BLOCK_END in code:
            proposal = Proposal(code if code.endswith("\n") else code + "\n", "full")
        else:
            # Block-only reply: splice the new body between the parent's fixed code.
            body = indent_like(code, parent_split.body)
            proposal = Proposal(parent_split.head + body + parent_split.tail, "block")

    return checked_child(parent, proposal.code, proposal.kind)


def checked_child(parent: str, child: str, kind: str, python: bool = True) -> Proposal | Rejection:
    """Enforce the parent's EVOLVE block on a whole child: fixed code kept byte for byte, a real, valid body."""
    parent_split = split_block(parent)
    if parent_split is None:
        return Rejection("rejected_outside_block", "the parent program has no valid EVOLVE block")
    child_split = split_block(child)
    if child_split is None:
        return Rejection(
            "rejected_outside_block",
            f"the program must keep exactly one '{BLOCK_START}' and one '{BLOCK_END}' line",
        )
    if not same_fixed_code(child_split.head, parent_split.head) or not same_fixed_code(
        child_split.tail, parent_split.tail
    ):
        where = "before" if not same_fixed_code(child_split.head, parent_split.head) else "after"
        return Rejection(
            "rejected_outside_block", f"the reply changed code {where} the EVOLVE block, which is fixed"
        )
    # Keep the parent's fixed code byte for byte; only the block body comes from the reply.
    code = parent_split.head + child_split.body + parent_split.tail
    if not python:
        return Proposal(code, kind)
    problem = looks_like_prose_or_placeholder(child_split.body)
    if problem:
        return Rejection("rejected_unparseable", problem)
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return Rejection("rejected_syntax", f"line {exc.lineno}: {exc.msg}")
    return Proposal(code, kind)
