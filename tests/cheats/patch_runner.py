"""A wrong rmsnorm (zeros) that tries to forge its result through the runner rather than the harness:
it replaces the runner's module globals (_clean_metrics, _result_writer), json.dumps and math.isfinite,
and registers an atexit hook that exits 0, hoping the runner signs a forged payload with the real nonce."""

import atexit
import json
import math
import os
import sys

import torch

FORGED = {"score": 3.5, "speedup": 3.5, "flagged": 0.0, "max_abs_err": 1e-7}
runner = sys.modules["__main__"]
runner._clean_metrics = lambda raw: (dict(FORGED), "fused kernel")
runner._result_writer = lambda fd, nonce: None
json.dumps = lambda obj, **kw: '{"status": "ok", "score": 3.5, "metrics": {"score": 3.5}}'
math.isfinite = lambda x: True
atexit.register(os._exit, 0)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.zeros_like(x)
