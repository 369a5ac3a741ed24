"""HTML pages over the archive views: the runs list, a run, a candidate, a comparison, the report.

Everything that came from the archive (code, prompts, replies, feedback, failures, metric names,
run and task names) is written through `e()` (html.escape with quotes), and nothing is ever put
into a script, a style or an event-handler attribute. The pages carry no inline script: the web
explorer loads one file of its own (/static/app.js) and the report none at all.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import time
from collections.abc import Sequence
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from discovery.app.web.grid import grid_svg
from discovery.app.web.highlight import highlight
from discovery.app.web.svg import compare_svg, curve_svg, lineage_svg, point_styles, status_class
from discovery.archive.views import best_so_far, fmt

AXES = ("calls", "cost", "time")
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)


def e(value: Any) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def e_ascii(value: Any) -> str:
    """e(value) with every non-ASCII character as a numeric reference.

    Used where a short text is joined to a whole page (its title): one wide character makes Python
    copy and encode the run page's 4 MB as wide text (~8 ms of its time on 10,000 candidates).
    """
    return e(value).encode("ascii", "xmlcharrefreplace").decode("ascii")


def static_text(name: str) -> str:
    """A file shipped in discovery/app/web/static."""
    return resources.files("discovery.app.web").joinpath("static", name).read_text()


@dataclasses.dataclass(frozen=True)
class Links:
    """Where links point: server URLs for the explorer, in-page anchors for the report."""

    report: bool = False

    def home(self) -> str:
        return "#run" if self.report else "/"

    def run(self, run: str, x: str = "calls") -> str:
        if self.report:
            return "#run"
        return f"/run/{quote(run, safe='')}" + (f"?x={quote(x)}" if x != "calls" else "")

    def candidate(self, run: str, cid: int, against: int | None = None) -> str:
        if self.report:
            return f"#c{cid}"
        return f"/run/{quote(run, safe='')}/c/{cid}" + (f"?against={against}" if against is not None else "")

    def version(self, run: str | None) -> str:
        return "/version" if run is None else f"/run/{quote(run, safe='')}/version"


def seconds(s: float | None) -> str:
    """A duration to the millisecond."""
    return "-" if s is None else f"{s:.3f} s"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def money(usd: float | None, unpriced: int = 0, calls: int | None = None) -> str:
    """A cost in USD; "unknown" when no call had a price (models litellm cannot price)."""
    if calls and unpriced >= calls:
        return f"unknown ({calls} unpriced)"
    text = "-" if usd is None else f"${usd:.4f}"
    return text + (f" ({unpriced} unpriced)" if unpriced else "")


def spend(o: dict[str, Any]) -> str:
    """A run's cost (escaped): the search's own LLM calls and, on agent tasks, its agents' calls apart."""
    text = e(money(o["cost_usd"], o["unpriced_calls"], o["calls"]))
    if not o["agent_calls"]:
        return text
    agents = money(o["agent_cost_usd"], o["agent_unpriced_calls"], o["agent_calls"])
    return f"{text} + agents {e(agents)} over {o['agent_calls']} calls"


def shell(title: str, body: str, *, report: bool = False, poll: str | None = None, version: int = 0) -> str:
    """A whole HTML document: the explorer's links its own CSS and script; the report inlines CSS only."""
    if report:
        head = (
            f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
            f"<style>{static_text('style.css')}</style>"
        )
    else:
        head = '<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js" defer></script>'
    attrs = f' data-poll="{e(poll)}" data-version="{version}"' if poll else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{e_ascii(title)}</title>{head}'
        f"</head><body{attrs}>{body}<footer>discovery</footer></body></html>"
    )


def table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table from already-escaped cells."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def state_badge(o: dict[str, Any]) -> str:
    reason = f": {e(o['reason'])}" if o.get("reason") else ""
    return f'<span class="state {e(o["state"]).replace(" ", "-")}">{e(o["state"])}</span>{reason}'


# ----- runs ------------------------------------------------------------------------------------


def runs_page(
    overviews: list[dict[str, Any]], links: Links, unreadable: Sequence[tuple[str, str]] = ()
) -> str:
    """Every run in a table, with a form to compare selected runs on one plot; then runs that could not be read."""
    rows = []
    for o in overviews:
        rows.append(
            [
                f'<input type="checkbox" name="run" value="{e(o["run"])}" form="compare">',
                f'<a href="{e(links.run(o["run"]))}">{e(o["run"])}</a>',
                e(o["task"]),
                e(o["strategy"]),
                e(", ".join(o["models"])),
                f"{o['calls']}/{e(o['budget'])}",
                spend(o),
                e(o["seed"]),
                e(o["candidates"]),
                e(fmt(o["seed_score"])),
                e(fmt(o["best_score"])),
                e(fmt(o["champion_score"]))
                + (
                    f" (gate mean {e(fmt(o['champion_heldout']))} on {e(o['champion_gate_split'])})"
                    if o["champion_heldout"] is not None
                    else ""
                ),
                state_badge(o),
            ]
        )
    headers = ["", "run", "task", "strategy", "models", "calls", "cost", "seed", "candidates", "seed score",
               "best", "champion", "state"]  # fmt: skip
    body = (
        "<h1>Runs</h1>"
        + (
            table(headers, rows, "runs")
            if rows
            else "<p>No runs yet: start one with <code>discovery run TASK</code>.</p>"
        )
        + '<form id="compare" method="get" action="/compare"><label>compare the selected runs against '
        '<select name="x"><option>calls</option><option>cost</option><option>time</option></select></label> '
        "<button>compare</button></form>"
        + (
            "<h2>Runs not shown</h2><ul>"
            + "".join(f"<li>{e(name)}: {e(why)}</li>" for name, why in unreadable)
            + "</ul>"
            if unreadable
            else ""
        )
    )
    token = sum(o["version"] for o in overviews)
    return shell("discovery runs", body, poll=links.version(None), version=token)


def compare_page(series: list[tuple[str, list[dict[str, Any]]]], x: str, links: Links) -> str:
    """Several runs' best-so-far curves on one plot."""
    curves = [(name, best_so_far(points, x)) for name, points in series]
    names = ", ".join(f'<a href="{e(links.run(n))}">{e(n)}</a>' for n, _ in series)
    axis = " ".join(
        f'<a href="/compare?{e(urlencode([("run", n) for n, _ in series] + [("x", a)]))}">{a}</a>'
        for a in AXES
    )
    body = (
        f'<nav><a href="{e(links.home())}">runs</a></nav><h1>Compare runs</h1><p>{names}</p>'
        f"<p>x axis: {axis}</p>{compare_svg(curves, x)}"
    )
    return shell("compare runs", body)


# ----- one run ---------------------------------------------------------------------------------


def run_body(view: dict[str, Any], x: str, links: Links) -> str:
    """A run's overview, curve, lineage tree, outcomes, failures and operator/model statistics."""
    o, run = view["overview"], view["overview"]["run"]
    cfg = view["config"]
    points = view["points"]

    href = e(links.candidate(run, 0)[:-1])  # the link of any candidate is this prefix and its id

    def link(cid: int) -> str:
        return f"{href}{cid}"

    facts = [
        ("task", e(o["task"])),
        ("state", state_badge(o)),
        ("strategy", e(o["strategy"])),
        ("models", e(", ".join(o["models"]))),
        ("seed", e(o["seed"])),
        ("calls", f"{o['calls']} of {e(o['budget'])}"),
        ("cost", spend(o)),
        ("candidates", e(o["candidates"])),
        ("seed score", e(fmt(o["seed_score"]))),
        ("best", _cand_link(links, run, o["best_id"], o["best_score"])),
        (
            "champion",
            _cand_link(links, run, o["champion_id"], o["champion_score"])
            + (
                f" &middot; gate mean {e(fmt(o['champion_heldout']))} on {e(o['champion_gate_split'])}"
                if o["champion_heldout"] is not None
                else ""
            ),
        ),
        ("created", e(when(o["created_at"]))),
    ]
    overview = '<dl class="facts">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    axis_links = " ".join(
        f'<a class="{"on" if a == x else ""}" href="{e(links.run(run, a))}">{a}</a>' for a in AXES
    )
    styles = point_styles(points)
    if links.report:
        curves = curve_svg(
            points, best_so_far(points, "calls"), view["champions"], "calls", href, styles
        ) + "".join(
            f"<details><summary>against {a}</summary>"
            f"{curve_svg(points, best_so_far(points, a), view['champions'], a, href, styles)}</details>"
            for a in AXES[1:]
        )
    else:
        curves = f"<p>x axis: {axis_links}</p>" + curve_svg(
            points, best_so_far(points, x), view["champions"], x, href, styles
        )
    legend = (
        '<p class="legend"><span class="key best"></span> best so far (train) '
        '<span class="key heldout"></span> champion, mean of its promotion-gate repeats (held-out split when the task has one) '
        "&middot; points: every candidate, coloured by score; failed and rejected ones in the strip below</p>"
    )
    tree_legend = (
        '<p class="legend"><span class="dot ok"></span> evaluated (dark = low, yellow = high score) '
        '<span class="dot fail"></span> failed <span class="dot rej"></span> rejected before evaluation '
        '<span class="dot other"></span> pending / stopped early <span class="key champ"></span> '
        "champion's path &middot; dashed: crossover's second parent</p>"
    )
    counts = table(
        ["status", "candidates"],
        [
            [f'<span class="dot {status_class(s)}"></span> {e(s)}', e(n)]
            for s, n in sorted(o["status_counts"].items())
        ],
    )
    failures = table(
        ["status", "reason", "count", "examples"],
        [
            [
                e(g["status"]),
                f"<code>{e(g['reason'])}</code>",
                e(len(g["ids"])),
                " ".join(f'<a href="{link(i)}">#{i}</a>' for i in g["ids"][:5]),
            ]
            for g in view["failures"][:30]
        ],
    )
    operators = table(
        ["operator", "children", "evaluated ok", "beat parent", "best score"],
        [
            [e(s["operator"]), e(s["children"]), e(s["ok"]), e(s["improved"]), e(fmt(s["best"]))]
            for s in view["operators"]
        ],
    )
    models = table(
        [
            "model",
            "calls",
            "ok",
            "candidates",
            "beat parent",
            "prompt tok",
            "completion tok",
            "cost",
            "mean latency s",
        ],
        [
            [
                e(m["model"]),
                e(m["calls"]),
                e(m["ok"]),
                e(m["candidates"]),
                e(m["improved"] or 0),
                e(m["prompt_tokens"]),
                e(m["completion_tokens"]),
                e(money(m["cost_usd"])),
                e(fmt(m["mean_latency_s"])),
            ]
            for m in view["models"]
        ],
    )
    extras = ""
    if view["islands"]:
        extras += "<h2>Islands</h2>" + table(
            ["island", "candidates", "ok", "best"],
            [[e(s["island"]), e(s["candidates"]), e(s["ok"]), e(fmt(s["best"]))] for s in view["islands"]],
        )
    if view.get("grid"):
        extras += "<h2>MAP-Elites grid</h2>" + grid_svg(view["grid"], href)
    if view["arms"]:
        extras += f"<h2>Bandit arms ({e(view['bandit'].get('method'))})</h2>" + table(
            ["arm (operator|model)", "pulls", "mean reward", "cost (USD; M tokens if unpriced)", "children", "evaluated ok", "beat parent"],
            [
                [e(a["arm"]), e(a["pulls"]), e(fmt(a["mean_reward"])), e(fmt(a["cost"])), e(a["children"]),
                 e(a["ok"]), e(a["improved"])]
                for a in view["arms"]
            ],
        )  # fmt: skip
    if view["promotions"]:
        extras += "<h2>Promotion gate</h2>" + table(
            [
                "champion",
                "challenger",
                "split",
                "champion mean",
                "challenger mean",
                "p",
                "promoted",
                "reason",
            ],
            [
                [
                    _cand_link(links, run, g["champion_id"], None),
                    _cand_link(links, run, g["challenger_id"], None),
                    e(g["split"]),
                    e(fmt(_mean(g["champion_scores"]))),
                    e(fmt(_mean(g["challenger_scores"]))),
                    e(fmt(g["p_value"])),
                    "yes" if g["promoted"] else "no",
                    e(g["reason"]),
                ]
                for g in view["promotions"]
            ],
        )
    top = heapq.nlargest(15, (p for p in points if p["status"] == "ok"), key=lambda p: p["fitness"])
    top_table = table(
        ["id", "parent", "score", "operator", "island"],
        [
            [
                _cand_link(links, run, p["id"], None),
                _cand_link(links, run, p["parent_id"], None) if p["parent_id"] else "-",
                e(fmt(p["score"])),
                e(p["operator"]),
                e(p["island"] if p["island"] is not None else "-"),
            ]
            for p in top
        ],
    )
    stops = "".join(f"<li>{e(when(s['at']))}: {e(s.get('reason'))}</li>" for s in view["stops"])
    config = f"<details><summary>configuration</summary><pre>{e(json.dumps(cfg, indent=1))}</pre></details>"
    return (
        f"<h1>Run {e(run)}</h1>{overview}"
        f"<section><h2>Score against {'LLM calls' if links.report else e(x)}</h2>{curves}{legend}</section>"
        f'<section><h2>Lineage</h2><div class="scroll">{lineage_svg(points, view["champion_path"], href, styles)}</div>{tree_legend}</section>'
        f'<section class="cols"><div><h2>Outcomes</h2>{counts}</div><div><h2>Top candidates</h2>{top_table}</div></section>'
        f"<section><h2>Failures by reason</h2>{failures if view['failures'] else '<p>none</p>'}</section>"
        f"<section><h2>Operators</h2>{operators}<h2>Models</h2>{models}{extras}</section>"
        f"<section><h2>Stops</h2><ul>{stops or '<li>none recorded</li>'}</ul>{config}</section>"
    )


def _mean(scores: list[float | None]) -> float | None:
    done = [s for s in scores if s is not None]
    return sum(done) / len(done) if done else None


def _cand_link(links: Links, run: str, cid: int | None, score: float | None) -> str:
    if cid is None:
        return "-"
    suffix = f" ({e(fmt(score))})" if score is not None else ""
    return f'<a href="{e(links.candidate(run, cid))}">#{cid}</a>{suffix}'


def run_page(view: dict[str, Any], x: str, links: Links) -> str:
    o = view["overview"]
    nav = f'<nav><a href="{e(links.home())}">runs</a> &rsaquo; {e(o["run"])}</nav>'
    poll = links.version(o["run"]) if o["running"] else None
    return shell(f"{o['run']} · discovery", nav + run_body(view, x, links), poll=poll, version=o["version"])


# ----- one candidate ---------------------------------------------------------------------------


def diff_html(text: str) -> str:
    """A unified diff with added, removed and hunk lines marked (escaped line by line)."""
    if not text:
        return '<p class="muted">identical</p>'
    out = []
    for line in text.splitlines():
        cls = (
            "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "hunk"
            if line.startswith("@@")
            else ""
        )
        if line.startswith(("+++", "---")):
            cls = "file"
        out.append(f'<span class="{cls}">{e(line)}</span>' if cls else e(line))
    return '<pre class="diff">' + "\n".join(out) + "</pre>"


def _pre(title: str, text: str | None, open_: bool = False) -> str:
    if not text:
        return ""
    return f"<details{' open' if open_ else ''}><summary>{e(title)}</summary><pre>{e(text)}</pre></details>"


AGENT_CALLS_SHOWN = 500  # calls shown in full on a candidate page; the totals always count them all
REPORT_AGENT_CALLS_SHOWN = 40  # per candidate section of a report, which holds hundreds of sections


def agent_totals_table(totals: list[dict[str, Any]]) -> str:
    """An agent's calls summed per evaluation, with an "all" row last."""
    rows = [
        [
            f"<strong>{e(t['evaluation'])}</strong>"
            if t["split"] is None
            else f"<code>{e(t['evaluation'])}</code>",
            e(t["split"] or ""),
            e(t["calls"]),
            e(t["not_ok"]),
            e(t["prompt_tokens"]),
            e(t["completion_tokens"]),
            e(money(t["cost_usd"], t["unpriced"], t["calls"])),
            e(seconds(t["latency_s"])),
        ]
        for t in totals
    ]
    headers = ["evaluation", "split", "calls", "refused or failed", "prompt tok", "completion tok", "cost",
               "latency (sum)"]  # fmt: skip
    return table(headers, rows, "agent-totals")


def _message_text(content: Any) -> str:
    """A message's content as text: a string as it is, anything else (parts, objects) as indented JSON."""
    return content if isinstance(content, str) else json.dumps(content, indent=1, ensure_ascii=False)


def agent_call_html(call: dict[str, Any]) -> str:
    """One agent call, collapsed: a summary line, then its messages, replies, parameters and error."""
    sample = "" if call["sample_index"] is None else f" · sample {call['sample_index']}"
    cost = "unpriced" if call["cost_usd"] is None else f"${call['cost_usd']:.5f}"
    summary = (
        f"#{call['id']} · {call['evaluation']}{sample} · {call['status']} · "
        f"{call['prompt_tokens']} + {call['completion_tokens']} tok · {cost} · {seconds(call['latency_s'])}"
    )
    parts = []
    for m in call["messages"] if isinstance(call["messages"], list) else [call["messages"]]:
        role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else ("?", m)
        parts.append(
            f'<div class="msg"><span class="role">{e(role)}</span><pre>{e(_message_text(content))}</pre></div>'
        )
    reply = call["reply"]
    replies = reply if isinstance(reply, list) else [] if reply is None else [reply]
    for k, text in enumerate(replies):
        label = "reply" if len(replies) == 1 else f"reply {k + 1} of {len(replies)}"
        parts.append(
            f'<div class="msg reply"><span class="role">{label}</span><pre>{e(_message_text(text))}</pre></div>'
        )
    if call["error"]:
        parts.append(f'<pre class="failure">{e(call["error"])}</pre>')
    params = json.dumps(call["params"], ensure_ascii=False) if call["params"] else "{}"
    parts.append(f'<p class="muted">model {e(call["model"])} &middot; parameters <code>{e(params)}</code> &middot; '
                 f"at {e(when(call['started_at']))}</p>")  # fmt: skip
    cls = "agent-call" + ("" if call["status"] == "ok" else " not-ok")
    return f'<details class="{cls}" data-id="{call["id"]}"><summary>{e_ascii(summary)}</summary>{"".join(parts)}</details>'


def agent_calls_html(
    calls: list[dict[str, Any]], totals: list[dict[str, Any]], shown: int, run: str, cid: int
) -> str:
    """A candidate's agent calls: totals per evaluation, then each call collapsed, grouped by evaluation."""
    if not calls:
        return ""
    cut = (
        f'<p class="muted">showing the first {shown} of {len(calls)} calls; all of them: '
        f"<code>discovery archive candidate {e(run)} {cid} --json</code></p>"
        if len(calls) > shown
        else ""
    )
    groups: dict[str, list[str]] = {}
    for call in calls[:shown]:
        groups.setdefault(call["evaluation"], []).append(agent_call_html(call))
    listed = "".join(
        f'<h3>{e(evaluation)}</h3><div class="agent-calls">{"".join(items)}</div>'
        for evaluation, items in groups.items()
    )
    return f"<h2>Agent calls ({len(calls)})</h2>{agent_totals_table(totals)}{cut}{listed}"


def candidate_body(c: dict[str, Any], run: str, links: Links) -> str:
    """One candidate: facts, lineage, code, diffs, metrics, feedback, failure, output, prompt, reply, agent calls."""
    call = c["call"] or {}
    facts = [
        ("status", f'<span class="dot {status_class(c["status"])}"></span> {e(c["status"])}'),
        ("score", e(fmt(c["score"]))),
        ("operator", e(c["operator"])),
        ("parent", _cand_link(links, run, c["parent_id"], None)),
        ("second parent", _cand_link(links, run, c["second_parent_id"], None)),
        ("island", e(c["island"] if c["island"] is not None else "-")),
        ("model", e(call.get("model") or "-")),
        *(
            [
                (
                    "made by",
                    f"{e(call.get('model'))}: {e(m['calls'])} agent calls, {e(m['tokens'])} tokens, {e(money(m['cost_usd']))}",
                )
            ]
            if (m := c.get("maker_calls"))
            else []
        ),
        (
            "tokens",
            f"{e(call.get('prompt_tokens'))} in, {e(call.get('completion_tokens'))} out" if call else "-",
        ),
        ("cost", e(money(call.get("cost_usd"))) if call else "-"),
        ("LLM latency", e(fmt(call.get("latency_s"))) + " s" if call else "-"),
        ("sandbox", e(c["sandbox"] or "-")),
        ("evaluation", e(fmt(c["eval_wall_s"])) + " s" + (f" on {e(c['split'])}" if c["split"] else "")),
        ("created", e(when(c["created_at"]))),
    ]
    design = c.get("design") or {}
    if design:  # agent tasks: the name and rationale the model gave the agent
        facts[:0] = [("agent", e(design.get("name"))), ("rationale", e(design.get("rationale") or "-"))]
    if c["similarity"] is not None:
        facts.append(
            (
                "nearest",
                f"{_cand_link(links, run, c['nearest_id'], None)} (similarity {e(fmt(c['similarity']))})",
            )
        )
    dl = '<dl class="facts">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    lineage = " &rsaquo; ".join(
        f'<a href="{e(links.candidate(run, a["id"]))}" class="{status_class(a["status"])}">#{a["id"]}</a>'
        f' <span class="muted">{e(fmt(a["score"]))}</span>'
        for a in c["lineage"]
    )
    children = ", ".join(
        f'<a href="{e(links.candidate(run, k["id"]))}">#{k["id"]}</a> <span class="muted">{e(k["status"])} {e(fmt(k["score"]))}</span>'
        for k in c["children"]
    )
    metrics = table(
        ["metric", "value"],
        [[e(k), e(fmt(v) if isinstance(v, float) else json.dumps(v))] for k, v in c["metrics"].items()],
    )
    diffs = "".join(
        f"<h3>Diff against {e(d['label'])} "
        f'<a href="{e(links.candidate(run, d["other"]))}">#{d["other"]}</a></h3>{diff_html(d["diff"])}'
        for d in c["diffs"]
    )
    chooser = ""
    if not links.report:
        chooser = (
            f'<form class="against" method="get" action="{e(links.candidate(run, c["id"]))}">'
            f'<label>diff against candidate <input type="number" name="against" min="{c["min_id"]}" '
            f'max="{c["max_id"]}" required></label> <button>show diff</button></form>'
        )
    gate = ""
    if c["promotions"]:
        gate = "<h2>Promotion gate</h2>" + table(
            ["as", "gate scores", "p", "promoted", "reason"],
            [
                [
                    "challenger" if g["challenger_id"] == c["id"] else "champion",
                    e(
                        ", ".join(
                            fmt(s)
                            for s in (
                                g["challenger_scores"]
                                if g["challenger_id"] == c["id"]
                                else g["champion_scores"]
                            )
                        )
                    ),
                    e(fmt(g["p_value"])),
                    "yes" if g["promoted"] else "no",
                    e(g["reason"]),
                ]
                for g in c["promotions"]
            ],
        )
    replays = ""
    if c["replays"]:
        replays = "<h2>Replays</h2>" + table(
            ["at", "split", "archived", "replayed", "holds", "sandbox"],
            [
                [
                    e(when(r["at"])),
                    e(r["split"]),
                    e(fmt(r["archived"])),
                    e(fmt(r["replayed"])),
                    "yes" if r["holds"] else "no",
                    e(r["sandbox"]),
                ]
                for r in c["replays"]
            ],
        )
    failure = f'<h2>Failure</h2><pre class="failure">{e(c["failure"])}</pre>' if c["failure"] else ""
    feedback = f"<h2>Feedback</h2><pre>{e(c['feedback'])}</pre>" if c["feedback"] else ""
    output = f"<h2>Output tail</h2><pre>{e(c['output_tail'])}</pre>" if c["output_tail"] else ""
    llm = ""
    if call:
        llm = (
            f"<h2>LLM call #{e(call.get('id'))}</h2>"
            f"<p>{e(call.get('status'))} &middot; seed {e(call.get('seed'))} &middot; {e(call.get('operator'))}"
            + (f" &middot; error: {e(call.get('error'))}" if call.get("error") else "")
            + "</p>"
            + _pre("prompt", call.get("prompt"))
            + _pre("raw reply", call.get("reply"), open_=True)
        )
    return (
        f"<h1>Candidate #{c['id']}</h1>{dl}"
        f'<p class="lineage-path">lineage: {lineage}</p>'
        + (f"<p>children: {children}</p>" if children else "")
        + failure
        + f'<h2>Code</h2><pre class="code">{highlight(c["code"])}</pre>'
        + f"<h2>Diffs</h2>{diffs or '<p class=muted>the seed has no parent</p>'}{chooser}"
        + f"<h2>Metrics</h2>{metrics if c['metrics'] else '<p class=muted>none</p>'}"
        + feedback
        + output
        + gate
        + replays
        + llm
        + agent_calls_html(
            c["agent_calls"],
            c["agent_totals"],
            REPORT_AGENT_CALLS_SHOWN if links.report else AGENT_CALLS_SHOWN,
            run,
            c["id"],
        )
    )


def candidate_page(c: dict[str, Any], run: str, links: Links) -> str:
    """A candidate's page in the explorer: navigation, then its body."""
    nav = (
        f'<nav><a href="{e(links.home())}">runs</a> &rsaquo; <a href="{e(links.run(run))}">{e(run)}</a> &rsaquo; #{c["id"]}'
        + (
            f' &middot; <a href="{e(links.candidate(run, c["id"] - 1))}">previous</a>'
            if c["id"] > c["min_id"]
            else ""
        )
        + (
            f' &middot; <a href="{e(links.candidate(run, c["id"] + 1))}">next</a>'
            if c["id"] < c["max_id"]
            else ""
        )
        + "</nav>"
    )
    # A pending candidate's page reloads when the archive changes: its evaluation (and its agent's
    # calls) show up without a manual refresh.
    poll = links.version(run) if c["status"] == "pending" else None
    return shell(
        f"#{c['id']} · {run} · discovery",
        nav + candidate_body(c, run, links),
        poll=poll,
        version=c["version"],
    )


def error_page(status: int, message: str) -> str:
    return shell(f"{status}", f'<nav><a href="/">runs</a></nav><h1>{status}</h1><p>{e(message)}</p>')


# ----- the report ------------------------------------------------------------------------------


def report_page(view: dict[str, Any], candidates: list[dict[str, Any]], generated: float) -> str:
    """The run and every candidate in one file; a candidate section shows when its anchor is targeted."""
    links = Links(report=True)
    run = view["overview"]["run"]
    sections = "".join(
        f'<section class="cand" id="c{c["id"]}"><nav><a href="#run">back to the run</a></nav>'
        f"{candidate_body(c, run, links)}</section>"
        for c in candidates
    )
    shown, total = len(candidates), len(view["points"])
    partial = (
        f" It holds full sections for {shown} of the {total} candidates (the best ones and the champion's and"
        " best's ancestors; `discovery archive report --all` writes every one)."
        if shown < total
        else ""
    )
    body = (
        f'<section id="run"><p class="muted">Report generated {e(when(generated))} by discovery; it needs no network. '
        f"Click a point or a node to see that candidate below.{e(partial)}</p>"
        f"{run_body(view, 'calls', links)}</section>{sections}"
    )
    return shell(f"{run} · discovery report", body, report=True)
