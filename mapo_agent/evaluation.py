"""Held-out evaluation: Avg@k with a confidence interval, per-category tables, JSON + Markdown reports.

Avg@k (the protocol of MAPO, DeepEyes and Mini-o3 on V*, HR-Bench and MME-RealWorld): every question
is answered k times, each time with its options in a new order (``shuffle_options``) and, when
sampling, a new sample; the score is the mean accuracy over all k x N episodes. The confidence
interval treats questions as the unit: a normal interval on the per-question mean accuracies
(correct for k = 1 as well, where it is the usual binomial interval).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapo_agent.metrics import trajectory_metrics
from mapo_agent.rollout import Actor, RolloutPolicy, RolloutWorker
from mapo_agent.types import Trajectory


@dataclass
class EvalReport:
    """Result of :func:`evaluate`.

    Attributes:
        env_id: The environment.
        num_questions: Questions evaluated.
        k: Episodes per question.
        accuracy: Avg@k.
        ci95: Half-width of the 95% confidence interval of ``accuracy``.
        metrics: ``eval/*`` metrics over all episodes (alignment, tool calls, target IoU, ...).
        categories: Per category: questions, Avg@k and its CI.
        trajectories: Every episode (not written to the JSON report).
        settings: What was evaluated (model, env kwargs, decoding).
    """

    env_id: str
    num_questions: int
    k: int
    accuracy: float
    ci95: float
    metrics: dict[str, float]
    categories: dict[str, dict[str, float]]
    trajectories: list[Trajectory] = field(default_factory=list, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no trajectories)."""
        return {
            "env_id": self.env_id,
            "num_questions": self.num_questions,
            "k": self.k,
            f"avg@{self.k}": self.accuracy,
            "ci95": self.ci95,
            "metrics": self.metrics,
            "categories": self.categories,
            "settings": self.settings,
        }

    def markdown(self) -> str:
        """A Markdown report: the headline number, then one row per category."""
        lines = [
            f"# Evaluation on {self.env_id}",
            "",
            f"**Avg@{self.k}: {100 * self.accuracy:.1f}% ± {100 * self.ci95:.1f}** (95% CI, "
            f"{self.num_questions} questions x {self.k})",
            "",
            "| category | questions | accuracy | 95% CI |",
            "|---|---:|---:|---:|",
        ]
        for name, row in sorted(self.categories.items()):
            lines.append(
                f"| {name} | {int(row['questions'])} | {100 * row['accuracy']:.1f}% | ± {100 * row['ci95']:.1f} |"
            )
        lines += ["", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in sorted(self.metrics.items()) if isinstance(v, float)]
        if self.settings:
            lines += ["", "Settings: `" + json.dumps(self.settings, default=str) + "`"]
        return "\n".join(lines) + "\n"

    def save(self, directory: str | Path, stem: str = "eval") -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.md`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        md_path.write_text(self.markdown(), encoding="utf-8")
        return json_path, md_path


def mean_ci95(per_question: Sequence[float]) -> tuple[float, float]:
    """Mean and 95% half-width (normal approximation, sample std over questions; 0 for n < 2)."""
    n = len(per_question)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(per_question) / n
    if n < 2:
        return mean, 0.0
    var = sum((x - mean) ** 2 for x in per_question) / (n - 1)
    return mean, 1.96 * math.sqrt(var / n)


def summarize(
    env_id: str, trajectories: list[Trajectory], k: int, settings: dict[str, Any] | None = None
) -> EvalReport:
    """Build the report from finished episodes (k per question, grouped by ``sample_index``)."""
    by_question: dict[int, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        by_question[t.sample_index].append(t)
    per_question = {q: sum(t.correct for t in ts) / len(ts) for q, ts in by_question.items()}
    accuracy, ci = mean_ci95(list(per_question.values()))
    by_category: dict[str, list[float]] = defaultdict(list)
    for q, ts in by_question.items():
        by_category[str(ts[0].info.get("category", "all"))].append(per_question[q])
    categories = {}
    for name, scores in by_category.items():
        acc, half = mean_ci95(scores)
        categories[name] = {"questions": float(len(scores)), "accuracy": acc, "ci95": half}
    return EvalReport(
        env_id=env_id,
        num_questions=len(by_question),
        k=k,
        accuracy=accuracy,
        ci95=ci,
        metrics=trajectory_metrics(trajectories, prefix="eval"),
        categories=categories,
        trajectories=trajectories,
        settings=dict(settings or {}),
    )


def evaluate(
    policy: RolloutPolicy,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    questions: Sequence[int] | None = None,
    num_questions: int = 200,
    k: int = 1,
    actor: Actor = "policy",
    generate_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    batch_questions: int = 32,
    worker: RolloutWorker | None = None,
) -> EvalReport:
    """Play ``k`` episodes of each question and report Avg@k.

    Args:
        policy: The policy (for ``actor="oracle"`` it only tokenises the oracle's turns).
        env_id: Registered environment id.
        env_kwargs: ``gym.make`` kwargs (e.g. ``split="test"``, ``data_dir=...``).
        questions: Dataset indices to evaluate; default the first ``num_questions`` (or all, if fewer).
        num_questions: Used when ``questions`` is None.
        k: Episodes per question; each repeat reshuffles the options (a new reset seed).
        actor: ``"policy"`` or ``"oracle"`` (the upper bound).
        generate_kwargs: Decoding (default greedy: ``{"do_sample": False}``).
        seed: Base seed of the resets (option orders) and of sampling.
        batch_questions: Questions played concurrently (memory vs speed).
        worker: Reuse an existing worker (and its environments).
    """
    import torch

    generate_kwargs = {"do_sample": False} if generate_kwargs is None else dict(generate_kwargs)
    worker = worker or RolloutWorker(env_id, env_kwargs, generate_kwargs)
    worker.generate_kwargs = generate_kwargs
    if questions is None:
        questions = range(min(num_questions, worker.dataset_size))
    questions = list(questions)
    trajectories: list[Trajectory] = []
    for repeat in range(k):
        torch.manual_seed(seed * 7919 + repeat)
        for start in range(0, len(questions), batch_questions):
            chunk = questions[start : start + batch_questions]
            base = seed * 1_000_003 + repeat * 100_003
            trajectories += worker.run(
                policy,
                chunk,
                1,
                seed=base,
                actor=actor,
                first_group_id=start,
                reset_seeds=[base + q for q in chunk],  # a question's option order does not depend on batching
            )
    settings = {"env_kwargs": env_kwargs or {}, "generate": generate_kwargs, "actor": actor, "seed": seed}
    return summarize(env_id, trajectories, k, settings)
