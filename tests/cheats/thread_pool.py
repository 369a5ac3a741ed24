"""Cheat: a worker thread started at import does the work, escaping the fixed thread count."""

import queue
import threading

import torch

_jobs: queue.Queue = queue.Queue()


def _serve() -> None:
    while True:
        fn, box, done = _jobs.get()
        box.append(fn())
        done.set()


threading.Thread(target=_serve, daemon=True).start()


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    box: list = []
    done = threading.Event()
    _jobs.put((lambda: torch.rsqrt(x.detach().pow(2).mean(-1, keepdim=True) + eps), box, done))
    done.wait()
    return x * box[0] * weight
