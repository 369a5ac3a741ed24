"""`discovery archive plot`: best score so far against calls, cost or time, several runs on one PNG."""

from __future__ import annotations

from pathlib import Path

from discovery.app.web.svg import X_LABELS
from discovery.archive import views
from discovery.errors import UserError


def plot_runs(run_dirs: list[Path], output: Path, x: str = "calls") -> None:
    """Draw each run's best-so-far step curve (with its candidates as faint points) into output."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(
            "`archive plot` needs matplotlib: pip install matplotlib (or the dev extra: pip install -e '.[dev]')"
        ) from None
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    try:
        for i, run_dir in enumerate(run_dirs):
            with views.read_only(run_dir) as db:
                points = views.candidate_points(db)
            steps = views.best_so_far(points, x)
            if not steps:
                continue
            colour = f"C{i % 10}"
            xs = [s[0] for s in steps] + [max(p[f"x_{x}"] for p in points)]
            ys = [s[1] for s in steps] + [steps[-1][1]]
            ax.step(xs, ys, where="post", color=colour, linewidth=2, label=run_dir.name)
            ok = [p for p in points if p["status"] == "ok"]
            ax.scatter([p[f"x_{x}"] for p in ok], [p["score"] for p in ok], s=9, color=colour, alpha=0.3)
        ax.set_xlabel(X_LABELS[x])
        ax.set_ylabel("best score so far (train)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(output)
    finally:
        plt.close(fig)
