"""Python syntax highlighting to escaped HTML, with the standard library's tokenizer (no JavaScript)."""

from __future__ import annotations

import builtins
import io
import keyword
import token
import tokenize
from html import escape

BUILTINS = frozenset(dir(builtins))


def _css_class(tok: tokenize.TokenInfo, previous: str) -> str | None:
    """The CSS class of a token, or None for plain text."""
    if tok.type == token.COMMENT:
        return "cm"
    if tok.type == token.STRING or tok.type in _FSTRING_TYPES:
        return "st"
    if tok.type == token.NUMBER:
        return "nu"
    if tok.type == token.NAME:
        if keyword.iskeyword(tok.string) or keyword.issoftkeyword(tok.string):
            return "kw"
        if previous in ("def", "class"):
            return "fn"
        if tok.string in BUILTINS:
            return "bi"
    return None


_FSTRING_TYPES = {
    getattr(token, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(token, n)
}


def highlight(code: str) -> str:
    """The code as escaped HTML with <span class=...> around keywords, strings, numbers and comments.

    Text between tokens is copied from the source, so the output shows exactly the stored code;
    code that does not tokenize is shown plain (escaped).
    """
    lines = io.StringIO(code).readlines()  # the tokenizer's own line split (\n only), not splitlines
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    out: list[str] = []
    pos, previous = 0, ""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in (token.ENDMARKER, token.DEDENT, token.INDENT, token.NEWLINE, token.NL):
                continue
            begin = starts[tok.start[0] - 1] + tok.start[1]
            end = starts[tok.end[0] - 1] + tok.end[1]
            if begin < pos:
                continue
            out.append(escape(code[pos:begin]))
            css = _css_class(tok, previous)
            text = escape(code[begin:end])
            out.append(f'<span class="{css}">{text}</span>' if css else text)
            pos, previous = end, tok.string
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return escape(code)
    out.append(escape(code[pos:]))
    return "".join(out)
