"""`discovery archive report`: a run and its candidates as one self-contained HTML file."""

from __future__ import annotations

import time
from pathlib import Path

from discovery.app.web import pages
from discovery.archive import views


def write_report(run_dir: Path, output: Path) -> int:
    """Write the report of the run in run_dir to output; returns its size in bytes."""
    with views.read_only(run_dir) as db:
        view = views.run_view(db, run_dir.name)
        candidates = [views.candidate_view(db, cid) for cid in views.candidate_ids(db)]
    data = pages.report_page(view, candidates, time.time()).encode()
    output.write_bytes(data)
    return len(data)
