"""Serving a local GGUF model with xllamacpp as an OpenAI-compatible endpoint on 127.0.0.1.

The model file comes from discovery.llm.local.fetch (pinned and hash-checked) or is the user's own
.gguf. It is served from a child process, so that stopping it is a plain process kill rather than
tearing down native threads. The default, SmolLM2-135M, is weak: it writes plausible small
functions with wrong logic; the Qwen2.5-Coder models follow the requested code much better.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import selectors
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from discovery.llm.local.fetch import default_cache_dir, ensure_model
from discovery.llm.local.models import CATALOGUE, DEFAULT_LOCAL

log = logging.getLogger(__name__)

GGUF_NAME = CATALOGUE[DEFAULT_LOCAL].filename
MODEL_NAME = CATALOGUE[DEFAULT_LOCAL].served_name
READY_PREFIX = "@@discovery-local-model@@ "
# Names of environment variables the model server never needs; dropped from its environment.
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def ensure_model_file(cache_dir: Path | None = None) -> Path:
    """The default model's GGUF (SmolLM2-135M), fetched and checked if needed."""
    return ensure_model(CATALOGUE[DEFAULT_LOCAL], cache_dir if cache_dir is not None else default_cache_dir())


def _cpu_count() -> int:
    """Cores this process may run on (affinity-aware where the OS tells us)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def server_threads(eval_slots: int, cores: int | None = None) -> int:
    """llama.cpp threads: the cores left after the evaluation slots, but at least half of them.

    llama.cpp's threads spin while they wait for each other, so one that shares a core with a busy
    evaluation stalls every token; evaluations are short next to a call, so the model keeps at
    least half the cores rather than one when slots outnumber cores.
    """
    cores = cores if cores is not None else _cpu_count()
    return max(1, cores - eval_slots, cores // 2)


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
        model_name: str = MODEL_NAME,
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
        self.model_name = model_name
        self.n_threads = n_threads
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
        threads = self.n_threads = self._n_threads or _cpu_count()
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
