"""Shared fixtures: the fake LLM server, a toy task, and an isolated archive folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fake_llm import FakeLLMServer

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
