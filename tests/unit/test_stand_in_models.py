"""The benchmark's stand-in models: deterministic per seed, one number changed, replies that apply."""

from __future__ import annotations

import re
from pathlib import Path

from bench import stand_in_models
from discovery.program.blocks import split_block
from discovery.program.patch import Proposal, build_program

SEED = (
    Path(__file__).resolve().parents[2] / "tasks" / "openevolve_circle_packing" / "initial_program.py"
).read_text()


def request(seed: int | None, heading: str = "# Current program (score 0.4)") -> dict:
    """A chat request whose prompt shows the seed program under the given heading."""
    return {
        "seed": seed,
        "messages": [{"role": "user", "content": f"{heading}\n```python\n{SEED}```\nSEARCH/REPLACE"}],
    }


def numbers(code: str) -> list[str]:
    return re.findall(r"\d+\.\d+|\d+", split_block(code).body)


def test_perturb_changes_one_number_and_applies() -> None:
    proposal = build_program(stand_in_models.perturb_model(request(7)), SEED)
    assert isinstance(proposal, Proposal)
    before, after = numbers(SEED), numbers(proposal.code)
    assert len(before) == len(after)
    assert sum(a != b for a, b in zip(before, after, strict=True)) == 1
    assert split_block(proposal.code).tail == split_block(SEED).tail  # the fixed code is untouched


def test_same_seed_same_reply_other_seed_other_reply() -> None:
    replies = {stand_in_models.perturb_model(request(s)) for s in range(8)}
    assert stand_in_models.perturb_model(request(3)) == stand_in_models.perturb_model(request(3))
    assert len(replies) >= 6


def test_openevolve_heading_and_structural_replies_apply() -> None:
    for seed in range(12):
        reply = stand_in_models.structural_model(request(seed, "# Current Program"))
        assert isinstance(build_program(reply, SEED), Proposal), reply


def test_numbers_in_comments_and_strings_are_left_alone() -> None:
    block = '    x = 0.5  # about 0.2\n    s = "0.7"\n    y = f(1.25, 3)\n'
    assert [text for _, _, text in stand_in_models.float_literals(block)] == ["0.5", "1.25"]
