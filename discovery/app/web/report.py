"""`discovery archive report`: a run and its candidates as one self-contained HTML file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from discovery.app.web import pages
from discovery.app.web.grid import grid_of
from discovery.archive import views

DEFAULT_SECTIONS = 500  # candidate sections in a report; ~10-35 KB each (code, diff, prompt, reply)


def chosen_ids(view: dict[str, Any], limit: int | None) -> list[int]:
    """Candidates that get a full section: all of them, or the best `limit` plus the champion's and best's lineage."""
    points = view["points"]
    if limit is None or len(points) <= limit:
        return [p["id"] for p in points]
    parents = {p["id"]: p["parent_id"] for p in points}
    ranked = sorted((p for p in points if p["status"] == "ok"), key=lambda p: -p["fitness"])
    keep = {p["id"] for p in ranked[:limit]}
    for current in (view["overview"]["champion_id"], view["overview"]["best_id"]):
        while current is not None:
            keep.add(current)
            current = parents.get(current)
    return sorted(keep)


def write_report(run_dir: Path, output: Path, limit: int | None = DEFAULT_SECTIONS) -> tuple[int, int, int]:
    """Write the report of the run in run_dir to output; returns (bytes, candidate sections, candidates)."""
    with views.read_only(run_dir) as db:
        view = views.run_view(db, run_dir.name)
        view["grid"] = grid_of(db, view["config"])
        ids = chosen_ids(view, limit)
        candidates = [views.candidate_view(db, cid) for cid in ids]
    data = pages.report_page(view, candidates, time.time()).encode()
    output.write_bytes(data)
    return len(data), len(ids), len(view["points"])
