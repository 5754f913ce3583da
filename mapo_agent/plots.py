"""Learning curves of a run: reward, accuracy, alignment, tool calls, gradient norm -> ``<run>/plots/*.png``."""

from __future__ import annotations

import math
from pathlib import Path

from mapo_agent.metrics import read_metrics

PANELS: dict[str, tuple[str, ...]] = {
    "reward": ("rollout/reward",),
    "accuracy": ("rollout/accuracy", "eval/accuracy"),
    "alignment": ("rollout/alignment", "rollout/misaligned_share", "rollout/target_hit_rate"),
    "tool_calls": ("tools/calls_per_episode", "tools/error_rate"),
    "grad_norm": ("train/grad_norm",),
}
"""File stem -> metric keys drawn in it."""


def plot_run(run_dir: str | Path, smooth: int = 10) -> list[Path]:
    """Draw :data:`PANELS` from ``run_dir/metrics.jsonl`` (raw + moving average); returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, keys in PANELS.items():
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        drawn = False
        for key in keys:
            points = [
                (r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
            ]
            if not points:
                continue
            steps, values = zip(*points)
            if key.startswith("eval/"):
                ax.plot(steps, values, "o-", label=key)
            else:
                line = ax.plot(steps, values, alpha=0.25)[0]
                ax.plot(steps, moving_average(values, smooth), color=line.get_color(), label=key)
            drawn = True
        ax.set_xlabel("step")
        ax.set_title(stem.replace("_", " "))
        if drawn:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{stem}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def moving_average(values: list[float] | tuple[float, ...], window: int) -> list[float]:
    """Trailing mean over at most ``window`` points."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
