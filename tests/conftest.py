"""Shared fixtures: the fake LLM server, a toy task, and an isolated archive folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fake_llm import FakeLLMServer
from tests.sandbox_fixtures import BACKEND_SKIP

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture
def toy_task(tmp_path: Path) -> Path:
    """A copy of the toy task (solve() -> x, score -(x-3)^2) that a test may modify."""
    dest = tmp_path / "toy_task"
    shutil.copytree(TESTS / "data" / "toy_task", dest)
    return dest


@pytest.fixture
def archive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs created by the test go to a private folder."""
    path = tmp_path / "archive"
    monkeypatch.setenv("DISCOVERY_ARCHIVE", str(path))
    return path


@pytest.fixture
def fake_llm():
    """Factory for scripted OpenAI-compatible servers on 127.0.0.1, stopped after the test."""
    servers: list[FakeLLMServer] = []

    def start(replies=(), latency_s: float = 0.0, default=None) -> FakeLLMServer:
        server = FakeLLMServer(replies, latency_s=latency_s, default=default)
        server.__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true", help="Leave out tests marked slow.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--quick"):
        skip = pytest.mark.skip(reason="slow: left out by --quick")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


_backend_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple) and BACKEND_SKIP in report.longrepr[2]:
        _backend_skips.append(f"{report.nodeid}: {report.longrepr[2]}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI has Docker and bubblewrap: a sandbox suite that skipped there tested nothing, so fail loudly.
    if _backend_skips and os.environ.get("CI") == "true":
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"FAILED: {len(_backend_skips)} sandbox test(s) skipped for a missing backend under CI=true:\n  "
            + "\n  ".join(_backend_skips[:10]),
            red=True,
        )
        session.exitstatus = 1
