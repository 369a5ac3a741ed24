"""OpenEvolve as a benchmark arm: installed from the package index into its own virtual environment.

It runs on the same OpenEvolve-format task folder, against the same model server, with the same
temperature, budget of LLM calls (one OpenEvolve iteration is one call) and evaluation timeout as
the discovery arms. OpenEvolve sends one fixed `seed` with every request (derived from its
random_seed), which makes a seeded server repeat itself for the same parent; a sitecustomize.py in
its venv gives each request a fresh seed instead, as discovery does. Its evolution trace (one
JSON line per child, and one per iteration that yielded none) gives the best score against calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

VERSION = "0.4.1"
SITECUSTOMIZE = textwrap.dedent(
    '''
    """Benchmark shim: a fresh request seed per LLM call when DISCOVERY_BENCH_SEED_PER_CALL is set."""
    import os

    if os.environ.get("DISCOVERY_BENCH_SEED_PER_CALL"):
        import random

        from openevolve.llm import openai as _oe_openai

        _draw = random.SystemRandom()
        _original = _oe_openai.OpenAILLM.generate_with_context

        async def _fresh_seed(self, system_message, messages, **kwargs):
            kwargs["seed"] = _draw.randrange(2**31)
            return await _original(self, system_message, messages, **kwargs)

        _oe_openai.OpenAILLM.generate_with_context = _fresh_seed
    '''
)


def ensure_venv(root: Path) -> Path:
    """The venv's python, creating the venv and installing openevolve==VERSION on first use."""
    python = root / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import openevolve, importlib.metadata as m; print(m.version('openevolve'))"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 or probe.stdout.strip() != VERSION:
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"openevolve=={VERSION}"], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return python


def write_config(
    task_dir: Path, out: Path, api_base: str, budget: int, seed: int, temperature: float, timeout_s: float
) -> Path:
    """The task's config.yaml with the shared settings put over it: model, budget, seed, timeout, trace."""
    import yaml

    path = task_dir / "config.yaml"
    config: dict[str, Any] = yaml.safe_load(path.read_text()) if path.exists() else {}
    config = config or {}
    llm = {
        k: v for k, v in (config.get("llm") or {}).items() if k not in ("primary_model", "secondary_model")
    }
    llm.update(
        api_base=api_base,
        api_key="stand-in",
        models=[{"name": "stand-in", "weight": 1.0}],
        temperature=temperature,
        max_tokens=4096,
        retries=0,
    )
    llm.pop("primary_model_weight", None)
    llm.pop("secondary_model_weight", None)
    evaluator = dict(config.get("evaluator") or {})
    evaluator.update(timeout=int(timeout_s), max_retries=0, parallel_evaluations=2)
    config.update(
        llm=llm,
        evaluator=evaluator,
        max_iterations=budget,
        random_seed=seed,
        checkpoint_interval=max(budget, 1),
        log_level="WARNING",
        evolution_trace={
            "enabled": True,
            "format": "jsonl",
            "include_failures": True,
            "include_prompts": False,
            "output_path": str(out / "trace.jsonl"),
            "buffer_size": 1,
        },
    )
    config_path = out / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config_path


def run(
    python: Path,
    task_dir: Path,
    out: Path,
    api_base: str,
    budget: int,
    seed: int,
    temperature: float,
    timeout_s: float,
) -> dict[str, Any]:
    """One OpenEvolve run; its children by iteration, the failed iterations, and the wall time."""
    out.mkdir(parents=True, exist_ok=True)
    config = write_config(task_dir, out, api_base, budget, seed, temperature, timeout_s)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(out),
        "OPENAI_API_KEY": "stand-in",
        "DISCOVERY_BENCH_SEED_PER_CALL": "1",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(python),
            "-m",
            "openevolve.cli",
            str(task_dir / "initial_program.py"),
            str(task_dir / "evaluator.py"),
            "--config",
            str(config),
            "--output",
            str(out / "output"),
            "--iterations",
            str(budget),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=out,
    )
    wall_s = time.monotonic() - started
    (out / "openevolve.log").write_text(proc.stdout + proc.stderr)
    children = _read_jsonl(out / "trace.jsonl")
    failures = _read_jsonl(out / "trace_failures.jsonl")
    return {"returncode": proc.returncode, "wall_s": wall_s, "children": children, "failures": failures}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file ([] when it is missing)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fitness(metrics: dict[str, Any]) -> float | None:
    """OpenEvolve's fitness of a child: combined_score (the task's metric)."""
    value = metrics.get("combined_score")
    return float(value) if isinstance(value, int | float) else None


def curve(result: dict[str, Any], seed_score: float | None, budget: int) -> list[float | None]:
    """Best score after k calls (k = 0..budget): iteration i is call i."""
    by_iteration: dict[int, float] = {}
    for child in result["children"]:
        score = fitness(child.get("child_metrics") or {})
        if score is not None:
            i = int(child["iteration"])
            by_iteration[i] = max(score, by_iteration.get(i, score))
    best, out = seed_score, []
    for k in range(budget + 1):
        if k in by_iteration:
            best = by_iteration[k] if best is None else max(best, by_iteration[k])
        out.append(best)
    return out


def outcomes(result: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """(valid children, reason -> count of the calls that gave none or an invalid one)."""
    valid, lost = 0, {}
    for child in result["children"]:
        metrics = child.get("child_metrics") or {}
        if "error" in metrics or metrics.get("validity") == 0.0 or fitness(metrics) is None:
            lost["invalid"] = lost.get("invalid", 0) + 1
        else:
            valid += 1
    for failure in result["failures"]:
        reason = str(failure.get("error") or "failed").split(":")[0][:40]
        lost[reason] = lost.get(reason, 0) + 1
    return valid, lost
