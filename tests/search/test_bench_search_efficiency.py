"""bench/search_efficiency.py end to end on the toy task: fake LLM over HTTP, process sandbox, real archives."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "search_efficiency", ROOT / "bench" / "search_efficiency.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules, so the module must be registered first.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_two_arms_print_a_table_and_write_the_plot(toy_task, tmp_path, fake_llm, capsys):
    counter = itertools.count(1)
    # Each reply a new x closer to 3, so no proposal is a duplicate and the best improves.
    server = fake_llm(default=lambda req: f"```python\ndef solve():\n    return {3 - 1 / next(counter)}\n```")
    out = tmp_path / "out" / "eff.png"
    script = load_script()
    code = script.main(
        [
            "--task",
            str(toy_task),
            "--model",
            "openai/fake",
            "--api-base",
            server.api_base,
            "--reply-format",
            "block",
            "--sandbox",
            "process",
            "--budget",
            "3",
            "--seeds",
            "1",
            "--arms",
            "best-of-n,default",
            "--llm-concurrency",
            "1",
            "--eval-slots",
            "1",
            "--archive-dir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    summary, _, curves = text.partition("best train score against LLM calls")
    lines = summary.splitlines()
    assert any(line.startswith("arm ") and "held-out" in line for line in lines)
    assert "@3 calls" in curves and "valid calls" in curves and "100 %" in curves
    rows = {
        line.split()[0]: line
        for line in lines
        if line.split() and line.split()[0] in ("best-of-n", "default")
    }
    assert set(rows) == {"best-of-n", "default"}
    for row in rows.values():
        assert "n/a" in row  # the toy task has no held-out split
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads(out.with_suffix(".json").read_text())
    assert {r["arm"] for r in figures["runs"]} == {"best-of-n", "default"}
    for run in figures["runs"]:
        assert run["calls"] == 3 and len(run["curve"]) == 4
        assert run["curve"][0] == -9.0  # the seed, before any call
        assert run["train"] > -9.0 and run["heldout_status"] == "n/a"
        assert (Path(run["run_dir"]) / "archive.sqlite").is_file()


def test_stand_in_model_on_an_openevolve_task(tmp_path, capsys):
    out = tmp_path / "out" / "eff.png"
    code = load_script().main(
        [
            "--task",
            str(ROOT / "tasks" / "openevolve_circle_packing"),
            "--stand-in",
            "perturb",
            "--sandbox",
            "process",
            "--budget",
            "4",
            "--seeds",
            "1",
            "--arms",
            "best-of-n,default",
            "--archive-dir",
            str(tmp_path / "runs"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "model openai/stand-in-perturb" in text and "seed program: train 0.406" in text
    figures = json.loads(out.with_suffix(".json").read_text())
    for run in figures["runs"]:
        assert run["calls"] == 4 and run["curve"][0] == pytest.approx(0.40598, abs=1e-4)
        assert run["valid"] + sum(run["lost"].values()) <= 4


def test_openevolve_trace_becomes_a_curve_and_outcomes():
    from bench import openevolve_arm

    raw = {
        "children": [
            {"iteration": 1, "child_metrics": {"combined_score": 0.5, "validity": 1.0}},
            {"iteration": 3, "child_metrics": {"combined_score": 0.0, "validity": 0.0, "error": "overlap"}},
            {"iteration": 4, "child_metrics": {"combined_score": 0.7, "validity": 1.0}},
        ],
        "failures": [{"iteration": 2, "error": "No valid diffs found in response"}],
    }
    assert openevolve_arm.curve(raw, 0.4, 5) == [0.4, 0.5, 0.5, 0.5, 0.7, 0.7]
    assert openevolve_arm.outcomes(raw) == (2, {"invalid": 1, "No valid diffs found in response": 1})
