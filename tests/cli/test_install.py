"""A built wheel, installed outside the checkout, evaluates a task: the in-sandbox runner ships inside it."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.openevolve_folders import RESULT_EVALUATOR, write_folder

ROOT = Path(__file__).resolve().parents[2]
TOY = ROOT / "tests" / "data" / "toy_task"

pytestmark = pytest.mark.slow

EVALUATE = """
import asyncio, json, sys
import discovery
from discovery import evaluation
from discovery.sandbox.process import ProcessSandbox
from discovery.task import load_task

task = load_task(sys.argv[1])
outcome = asyncio.run(evaluation.evaluate(ProcessSandbox(), task, task.seed_code))
print(json.dumps({"module": discovery.__file__, "status": outcome.status, "score": outcome.score,
                  "failure": outcome.failure}))
"""


def test_wheel_installed_elsewhere_evaluates_a_task(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("discovery_lab-*.whl")
    env_dir = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env_dir], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)}))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", purelib, wheel], check=True
    )
    # Dependencies come from the test's own environment, listed after the fresh site-packages; its
    # .pth files (the editable install of this checkout) are not processed from there.
    (purelib / "zz_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = env_dir / "bin" / "python"
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = subprocess.run(
        [python, "-c", EVALUATE, TOY], capture_output=True, text=True, cwd=work, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["module"].startswith(str(purelib)), result  # the installed copy, not the checkout
    assert result["status"] == "ok", result
    assert result["score"] is not None
    # `discovery ui` serves its script and stylesheet from the installed package
    assets = subprocess.run(
        [python, "-c", "from discovery.app.web.pages import static_text as s; print(len(s('app.js')), len(s('style.css')))"],
        capture_output=True, text=True, cwd=work, timeout=60, check=False,
    )  # fmt: skip
    assert assets.returncode == 0 and all(int(n) > 0 for n in assets.stdout.split()), assets.stderr[-2000:]

    # An OpenEvolve folder whose evaluator imports EvaluationResult: the stand-in ships in the wheel.
    folder = write_folder(tmp_path / "oe_task", evaluator=RESULT_EVALUATOR)
    out = subprocess.run(
        [python, "-c", EVALUATE, folder], capture_output=True, text=True, cwd=work, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["score"] == pytest.approx(0.6), result
