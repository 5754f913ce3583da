"""Metric names, per-batch reductions of trajectories, and the JSONL (+ TensorBoard) logger.

Keys use four prefixes: ``rollout/`` (what the policy did and earned), ``tools/`` (zoom calls and
their errors), ``train/`` (losses, gradient norm, learning rate, throughput), ``eval/`` (held-out
episodes). Every tool-error code has a fixed key, so all processes and all steps report the same set.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mapo_agent.types import Trajectory
from mapo_env.actions import ToolError

MISALIGNED_THRESHOLD = 0.5
"""A crop whose description scores below this alignment counts as misaligned."""
MISSED_IOU = 0.1
"""A crop whose ``target_iou`` is below this missed the target."""


def trajectory_metrics(trajectories: Iterable[Trajectory], prefix: str = "rollout") -> dict[str, float]:
    """Means over episodes: reward, accuracy, alignment, tool use, localisation, the reasoning-action gap.

    ``{prefix}/misaligned_share``: share of episodes with at least one crop whose description scored
    below :data:`MISALIGNED_THRESHOLD`. ``{prefix}/confident_miss_share``: share of episodes that
    answered although their last crop missed the target (``target_iou`` < :data:`MISSED_IOU`) — the
    gap MAPO targets: plausible text over a bad visual action.

    Only zooms that returned a crop count as tool calls and enter the alignment and localisation
    metrics. A trajectory marked ``info["zoom_enabled"] = False`` (the "tool disabled" ablation: the
    environment answers every zoom call with the full view again; :func:`mapo_agent.evaluation.evaluate`
    marks them) made no crop: its calls are counted in ``{prefix}/disabled_tool_calls`` instead of
    ``{prefix}/tool_calls``, and its labels' scores and requested boxes are left out of
    ``alignment``, ``target_iou``, ``target_hit_rate``, ``misaligned_share`` and
    ``confident_miss_share`` (they describe boxes the model never saw; with no crop at all these
    means are NaN, i.e. "no crop", never a perfect 1.0).
    """
    trajs = list(trajectories)
    n = max(len(trajs), 1)
    zoomed = [t for t in trajs if zoom_was_enabled(t)]
    crops = [s for t in zoomed for s in t.alignment_scores]
    ious = [v for t in zoomed for v in t.target_ious]
    metrics = {
        f"{prefix}/episodes": float(len(trajs)),
        f"{prefix}/reward": sum(t.reward for t in trajs) / n,
        f"{prefix}/accuracy": sum(t.correct for t in trajs) / n,
        f"{prefix}/alignment": _mean(crops),
        f"{prefix}/target_iou": _mean(ious),
        f"{prefix}/target_hit_rate": _mean([float(v >= 0.5) for v in ious]),
        f"{prefix}/misaligned_share": sum(any(s < MISALIGNED_THRESHOLD for s in t.alignment_scores) for t in zoomed)
        / n,
        f"{prefix}/confident_miss_share": sum(
            bool(t.target_ious) and t.target_ious[-1] < MISSED_IOU and not t.truncated for t in zoomed
        )
        / n,
        f"{prefix}/truncated_share": sum(t.truncated for t in trajs) / n,
        f"{prefix}/turns": sum(t.num_turns for t in trajs) / n,
        f"{prefix}/response_tokens": sum(t.num_generated_tokens for t in trajs) / n,
        f"{prefix}/tool_calls": sum(t.num_tool_calls for t in zoomed) / n,
        f"{prefix}/disabled_tool_calls": sum(t.num_tool_calls for t in trajs if not zoom_was_enabled(t)) / n,
    }
    if prefix == "rollout":
        metrics["tools/calls_per_episode"] = metrics["rollout/tool_calls"]
        turns = max(sum(t.num_turns for t in trajs), 1)
        errors = [e for t in trajs for e in t.tool_errors]
        metrics["tools/error_rate"] = len(errors) / turns
        for code in ToolError:
            metrics[f"tools/error_rate/{code.value}"] = errors.count(code.value) / turns
    return metrics


def zoom_was_enabled(trajectory: Trajectory) -> bool:
    """False for a trajectory played with the zoom disabled (``info["zoom_enabled"] is False``)."""
    return trajectory.info.get("zoom_enabled", True) is not False


def progress_postfix(
    stage: str, metrics: Mapping[str, float], held_out_accuracy: float | None = None
) -> dict[str, str]:
    """What the training progress bar shows after a step: the stage and the model's own numbers.

    During the cold start (``stage="cold_start"``) the rollouts are the oracle's demonstrations, so
    their reward and accuracy describe the oracle, not the model: the bar shows the stage, the SFT
    loss and, once evaluated, the model's held-out accuracy. During RL it shows the reward and
    accuracy of the model's own rollouts and the last held-out accuracy.

    Args:
        stage: The step's stage name (``"cold_start"`` or ``"rl"``).
        metrics: The step's metrics (``rollout/*``, ``train/*``).
        held_out_accuracy: The model's accuracy at the last held-out evaluation, if any.
    """
    shown: dict[str, str] = {"stage": "sft" if stage == "cold_start" else stage}
    keys = ("train/loss",) if stage == "cold_start" else ("rollout/reward", "rollout/accuracy")
    for key in keys:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            shown[key.split("/")[-1]] = f"{value:.3f}"
    if held_out_accuracy is not None and math.isfinite(held_out_accuracy):
        shown["held_out_acc"] = f"{held_out_accuracy:.3f}"
    return shown


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


class MetricsLogger:
    """Appends one JSON object per step to ``metrics.jsonl`` (and to TensorBoard when installed).

    Args:
        directory: The run directory.
        tensorboard: Also write TensorBoard events (``torch.utils.tensorboard``; skipped silently
            when the ``tensorboard`` package is not installed).
    """

    def __init__(self, directory: str | Path, tensorboard: bool = True) -> None:
        self.path = Path(directory) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(Path(directory) / "tensorboard"))
            except ImportError:
                self._writer = None

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run rewrites them)."""
        if not self.path.exists():
            return
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Write ``metrics`` for ``step`` (NaN becomes null in JSON)."""
        row = {"step": step, **{k: _jsonable(v) for k, v in metrics.items()}}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self._writer is not None:
            self._writer.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a ``metrics.jsonl`` file."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
