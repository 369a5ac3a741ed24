"""The MAP-Elites grid of a run that used one: the elite of each cell, drawn as an SVG table."""

from __future__ import annotations

import sqlite3
from html import escape
from typing import Any

from discovery.app.web.svg import colour
from discovery.archive import views
from discovery.archive.views import fmt
from discovery.errors import UserError
from discovery.search.strategies import map_elites


def grid_of(db: sqlite3.Connection, config: dict[str, Any]) -> dict[str, Any] | None:
    """The run's grid (axes and the elite of each occupied cell), or None when it used no MAP-Elites."""
    if not config.get("map_elites") or config.get("strategy") == "best-of-n":
        return None
    try:
        specs = map_elites.parse_specs(config["map_elites"])
    except UserError:
        return None
    pool = views.evaluated_candidates(db)
    resolved = map_elites.resolve(specs, pool)
    cells = map_elites.elites(pool, specs)
    return {
        "axes": [{"name": s.name, "bins": s.bins, "lo": s.lo, "hi": s.hi} for s in resolved],
        "cells": {cell: {"id": c.id, "score": c.score, "fitness": c.fitness} for cell, c in cells.items()},
    }


def grid_svg(grid: dict[str, Any], href: str) -> str:
    """The grid as coloured squares (one per occupied cell, labelled with its elite); 1 or 2 axes drawn,
    further axes listed cell by cell."""
    axes, cells = grid["axes"], grid["cells"]
    if not cells:
        return "<p class='muted'>no evaluated candidate has all the grid's features yet</p>"
    if len(axes) > 2:
        rows = "".join(
            f"<li>cell {escape(str(k))}: <a href='{href}{v['id']}'>#{v['id']}</a> {escape(fmt(v['score']))}</li>"
            for k, v in sorted(cells.items())
        )
        return f"<ul class='grid-list'>{rows}</ul>"
    cols = axes[0]["bins"]
    rows_n = axes[1]["bins"] if len(axes) == 2 else 1
    fits = [v["fitness"] for v in cells.values()]
    lo, hi = min(fits), max(fits)
    size, left, top = 46, 70, 10
    out = [
        f'<svg class="grid" width="{left + cols * size + 10}" height="{top + rows_n * size + 40}" '
        f'viewBox="0 0 {left + cols * size + 10} {top + rows_n * size + 40}">'
    ]
    for (cx, *rest), v in cells.items():
        cy = rest[0] if rest else 0
        x, y = left + cx * size, top + (rows_n - 1 - cy) * size
        t = 0.5 if hi == lo else (v["fitness"] - lo) / (hi - lo)
        tip = escape(f"cell {cx}{',' + str(cy) if rest else ''}: #{v['id']} score {fmt(v['score'])}")
        out.append(
            f'<a href="{href}{v["id"]}"><rect class="cell" data-id="{v["id"]}" x="{x}" y="{y}" width="{size - 2}" '
            f'height="{size - 2}" fill="{colour(t)}"><title>{tip}</title></rect>'
            f'<text class="cell-id" x="{x + size / 2 - 1}" y="{y + size / 2 + 3}" text-anchor="middle">#{v["id"]}</text></a>'
        )
    a0 = axes[0]
    out.append(
        f'<text class="label" x="{left + cols * size / 2}" y="{top + rows_n * size + 28}" text-anchor="middle">'
        f"{escape(a0['name'])} ({escape(fmt(a0['lo']))} to {escape(fmt(a0['hi']))}, {a0['bins']} bins)</text>"
    )
    if len(axes) == 2:
        a1 = axes[1]
        out.append(
            f'<text class="label" x="4" y="{top + 12}">{escape(a1["name"])}</text>'
            f'<text class="tick" x="4" y="{top + 26}">{escape(fmt(a1["lo"]))} to {escape(fmt(a1["hi"]))}</text>'
        )
    out.append("</svg>")
    return "".join(out)
