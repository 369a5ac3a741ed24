"""Deterministic stand-in "models" for the search benchmarks, served as OpenAI-compatible endpoints.

They read the parent program from the prompt (discovery's "# Current program" or OpenEvolve's
"# Current Program" section), change its EVOLVE block, and reply with a SEARCH/REPLACE edit (or the
block alone when the prompt asks for the block). Every reply is a function of the request's `seed`
and the parent, so a client that sends one fixed seed gets the same reply for the same parent, as
from a seeded real model.

- perturb: changes one floating-point number of the block by a random factor (exp(N(0, 0.25))):
  a cheap, honest stand-in for constant tuning.
- structural: half the time replaces the block with one from a pool of known layouts (better and
  worse ones, and two that fail), with one number perturbed as noise; otherwise perturbs the parent.
  The pool is for tasks/openevolve_circle_packing (construct_packing and compute_max_radii).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import random
import re
import sys
import textwrap
import tokenize
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fake_llm import FakeLLMServer  # noqa: E402

START, END = "EVOLVE-BLOCK-START", "EVOLVE-BLOCK-END"
# The program to change: discovery's mutation ("Current program"/"Current code"), crossover ("Program A")
# and repair ("Program that failed") prompts, and OpenEvolve's "# Current Program".
CURRENT = re.compile(
    r"#+\s*(?:Current (?:program|code)|Program A|Program that failed)[^\n]*\n+```[A-Za-z0-9]*\n(.*?)```",
    re.I | re.S,
)
# A float literal not glued to a name (so x1.5 or 1e-9 exponents are left alone).
FLOAT = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.])")

RADII = '''
def compute_max_radii(centers):
    """Each radius starts at the distance to the nearest wall; overlapping pairs shrink in proportion."""
    n = len(centers)
    radii = np.array([min(x, y, 1 - x, 1 - y) for x, y in centers])
    for i in range(n):
        for j in range(i + 1, n):
            d = np.sqrt(np.sum((centers[i] - centers[j]) ** 2))
            if radii[i] + radii[j] > d:
                scale = d / (radii[i] + radii[j])
                radii[i] *= scale
                radii[j] *= scale
    return radii
'''

# Known layouts for tasks/openevolve_circle_packing, from poor to good once tuned; two fail.
POOL = [
    # Two rings, tighter than the seed's.
    '''
def construct_packing():
    """A centre circle, rings of 8 and 16, one circle in a corner."""
    n = 26
    centers = np.zeros((n, 2))
    centers[0] = [0.5, 0.5]
    for i in range(8):
        angle = 2 * np.pi * i / 8
        centers[1 + i] = [0.5 + 0.22 * np.cos(angle), 0.5 + 0.22 * np.sin(angle)]
    for i in range(16):
        angle = 2 * np.pi * i / 16 + 0.2
        centers[9 + i] = [0.5 + 0.41 * np.cos(angle), 0.5 + 0.41 * np.sin(angle)]
    centers[25] = [0.06, 0.06]
    centers = np.clip(centers, 0.01, 0.99)
    radii = compute_max_radii(centers)
    return centers, radii, float(np.sum(radii))
''',
    # A 5 x 5 grid and one circle in a gap.
    '''
def construct_packing():
    """A 5 x 5 grid of centres plus one in the gap between four of them."""
    step = 0.2
    offset = 0.1
    centers = [[offset + step * i, offset + step * j] for i in range(5) for j in range(5)]
    centers.append([0.2, 0.2])
    centers = np.clip(np.array(centers), 0.01, 0.99)
    radii = compute_max_radii(centers)
    return centers, radii, float(np.sum(radii))
''',
    # Hexagonal rows of 5, 6, 5, 5, 5.
    '''
def construct_packing():
    """Staggered rows of 5, 6, 5, 5 and 5 centres."""
    counts = [5, 6, 5, 5, 5]
    row_gap = 0.19
    margin = 0.1
    centers = []
    for row, count in enumerate(counts):
        y = margin + row_gap * row
        for k in range(count):
            x = (k + 0.5) / count
            centers.append([x, y])
    centers = np.clip(np.array(centers), 0.01, 0.99)
    radii = compute_max_radii(centers)
    return centers, radii, float(np.sum(radii))
''',
    # Everything on one diagonal: valid but poor.
    '''
def construct_packing():
    """All centres on the diagonal."""
    t = np.linspace(0.02, 0.98, 26)
    centers = np.stack([t, t], axis=1)
    radii = compute_max_radii(centers)
    return centers, radii, float(np.sum(radii))
''',
    # Fails: returns 25 circles.
    '''
def construct_packing():
    """A 5 x 5 grid (one circle short)."""
    step = 0.2
    centers = np.array([[0.1 + step * i, 0.1 + step * j] for i in range(5) for j in range(5)])
    radii = compute_max_radii(centers)
    return centers, radii, float(np.sum(radii))
''',
    # Fails: a NameError.
    '''
def construct_packing():
    """A grid whose step is never defined."""
    centers = np.array([[0.1 + stride * i, 0.1 + stride * j] for i in range(5) for j in range(6)])[:26]
    radii = compute_max_radii(centers)
    return centers, radii, float(np.sum(radii))
''',
]


def parent_block(body: dict[str, Any]) -> tuple[str, bool] | None:
    """(the parent's EVOLVE block body, whether the prompt asks for the block alone) from a request."""
    text = "\n".join(m.get("content") or "" for m in body.get("messages", []) if isinstance(m, dict))
    match = CURRENT.search(text)
    if not match:
        return None
    code = match.group(1)
    block_only = "goes between the markers" in text
    lines = code.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if START in line]
    ends = [i for i, line in enumerate(lines) if END in line]
    if len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0]:
        return "".join(lines[starts[0] + 1 : ends[0]]), block_only
    return code, block_only


def rng_for(body: dict[str, Any], block: str) -> random.Random:
    """A generator fixed by the request's seed and the parent: same seed and parent, same reply."""
    key = f"{body.get('seed')}|{block}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def float_literals(block: str) -> list[tuple[int, int, str]]:
    """(start offset, end offset, text) of each float literal in code, leaving comments and strings out."""
    starts = [0]
    for line in block.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    found = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(textwrap.dedent(block)).readline):
            if tok.type == tokenize.NUMBER and FLOAT.fullmatch(tok.string):
                found.append((tok.start[0] - 1, tok.start[1], tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [(m.start(), m.end(), m.group(1)) for m in FLOAT.finditer(block)]
    # Columns were taken on the dedented text: shift them back by each line's removed indent.
    indent = len(block.lstrip("\n")) - len(block.lstrip("\n").lstrip(" ")) if block.strip() else 0
    lines = block.splitlines(keepends=True)
    out = []
    for row, col, text in found:
        offset = starts[row] + col + (indent if lines[row].startswith(" " * indent) else 0)
        if block[offset : offset + len(text)] == text:
            out.append((offset, offset + len(text), text))
    return out


def perturb(block: str, rng: random.Random) -> str:
    """The block with one float literal of its code (not comments or strings) multiplied by exp(N(0, 0.25))."""
    found = float_literals(block)
    if not found:
        return block
    start, end, text = rng.choice(found)
    value = float(text) * math.exp(rng.gauss(0.0, 0.25))
    new = f"{value:.4g}"
    new = new if "." in new or "e" in new else new + ".0"
    return block[:start] + new + block[end:]


def reply(old: str, new: str, block_only: bool) -> str:
    """The edit as a SEARCH/REPLACE of the whole block (or the new block alone when asked)."""
    if block_only:
        return f"```python\n{new.strip(chr(10))}\n```"
    return f"<<<<<<< SEARCH\n{old.rstrip(chr(10))}\n=======\n{new.rstrip(chr(10))}\n>>>>>>> REPLACE"


def perturb_model(body: dict[str, Any]) -> str:
    """The 'perturb' stand-in: one number of the parent's block changed."""
    found = parent_block(body)
    if found is None:
        return "I cannot find the current program."
    block, block_only = found
    return reply(block, perturb(block, rng_for(body, block)), block_only)


def structural_model(body: dict[str, Any]) -> str:
    """The 'structural' stand-in: a layout from the pool (with noise) or a perturbed parent, half and half."""
    found = parent_block(body)
    if found is None:
        return "I cannot find the current program."
    block, block_only = found
    rng = rng_for(body, block)
    if rng.random() < 0.5:
        layout = textwrap.dedent(rng.choice(POOL)).strip("\n") + "\n\n" + RADII.strip("\n") + "\n"
        new = perturb(layout, rng)
        new = "\n" + new + "\n" if block.startswith("\n") else new
    else:
        new = perturb(block, rng)
    return reply(block, new, block_only)


MODELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "perturb": perturb_model,
    "structural": structural_model,
}


@contextlib.contextmanager
def serve(name: str) -> Iterator[str]:
    """Serve the named stand-in on 127.0.0.1; yields its API base URL."""
    with FakeLLMServer(default=MODELS[name]) as server:
        yield server.api_base
