"""Held-out evaluation: Avg@k with a confidence interval, per-category tables, JSON + Markdown reports.

Avg@k (the protocol of MAPO, DeepEyes and Mini-o3 on V*, HR-Bench and MME-RealWorld): every question
is answered k times, each time with its options in a new order (``shuffle_options``) and, when
sampling, a new sample; the score is the mean accuracy over all k x N episodes. The confidence
interval treats questions as the unit: a normal interval on the per-question mean accuracies
(correct for k = 1 as well, where it is the usual binomial interval).

Which questions: the first N of the dataset by default; :func:`select_questions` draws another
held-out subset (a contiguous slice from an offset, or N questions drawn at random with a seed).
The evaluation seed only sets the reset seeds (the option order, when the environment shuffles
options) and the sampling; it never changes which questions are asked.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapo_agent.metrics import trajectory_metrics
from mapo_agent.rollout import Actor, RolloutPolicy, RolloutWorker
from mapo_agent.types import Trajectory
from mapo_env.errors import ConfigError, MapoError


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
        lines = [f"# Evaluation on {self.env_id}", ""]
        if self.settings.get("incomplete"):
            why = self.settings["incomplete"]
            lines += [f"**INCOMPLETE** ({why}): the figures cover the finished episodes only.", ""]
        lines += [
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
        lines += [f"| {k} | {_cell(v)} |" for k, v in sorted(self.metrics.items()) if isinstance(v, float)]
        if self.settings:
            lines += ["", "Settings: `" + json.dumps(self.settings, default=str) + "`"]
        return "\n".join(lines) + "\n"

    def save(self, directory: str | Path, stem: str = "eval") -> tuple[Path, Path]:
        """Write ``<stem>.json`` (strict JSON: NaN as null), then ``<stem>.md``, into ``directory``.

        Each file is written to a temporary name and renamed, so an interrupted save never leaves a
        truncated report; the JSON (the numbers) is written first.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
        _write_atomic(json_path, json.dumps(_strict_json(self.to_dict()), indent=2, default=str) + "\n")
        _write_atomic(md_path, self.markdown())
        return json_path, md_path


class EvaluationInterrupted(MapoError):
    """An evaluation stopped early (an error or Ctrl-C); ``report`` holds the episodes that finished.

    Raised by :func:`evaluate` with ``keep_partial=True`` when at least one episode finished; the
    report's ``settings["incomplete"]`` says why it stopped. ``cause`` is the original exception.
    """

    def __init__(self, report: EvalReport, cause: BaseException) -> None:
        self.report, self.cause = report, cause
        super().__init__(
            f"the evaluation stopped after {report.num_questions} question(s): {type(cause).__name__}: {cause}"
        )


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def _strict_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def select_questions(
    dataset_size: int, num_questions: int, *, offset: int = 0, sample_seed: int | None = None
) -> list[int]:
    """Dataset indices of a held-out subset: ``num_questions`` of them (all there are, if fewer).

    Args:
        dataset_size: Questions in the dataset.
        num_questions: How many to evaluate (>= 1).
        offset: Skip the first ``offset`` questions (a contiguous slice; 0 = from the start).
        sample_seed: ``None``: questions in dataset order from ``offset``; an int: ``num_questions``
            distinct questions drawn uniformly at random with this seed (sorted), ``offset`` must be 0.

    Raises:
        ConfigError: A count or seed out of range, an offset past the end, or both an offset and a seed.
    """
    for name, value in (("num_questions", num_questions), ("dataset_size", dataset_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < dataset_size:
        raise ConfigError(f"question offset must be an int in [0, {dataset_size}) (the dataset size), got {offset!r}")
    if sample_seed is None:
        return list(range(offset, min(offset + num_questions, dataset_size)))
    if isinstance(sample_seed, bool) or not isinstance(sample_seed, int) or sample_seed < 0:
        raise ConfigError(f"sample seed must be an int >= 0 or None, got {sample_seed!r}")
    if offset:
        raise ConfigError("give a question offset or a sample seed, not both")
    import numpy as np

    n = min(num_questions, dataset_size)
    drawn = np.random.default_rng(sample_seed).choice(dataset_size, size=n, replace=False)
    return sorted(int(q) for q in drawn)


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
    keep_partial: bool = False,
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
        keep_partial: If the evaluation stops early (an error or Ctrl-C) after some episodes finished,
            raise :class:`EvaluationInterrupted` carrying their report instead of the bare exception.

    An environment built with ``zoom_enabled=False`` answers every zoom call with the full view again;
    the rollout worker marks its trajectories ``info["zoom_enabled"] = False`` so that the metrics count those calls
    as disabled, not as crops (see :func:`mapo_agent.metrics.trajectory_metrics`).
    """
    import torch

    generate_kwargs = {"do_sample": False} if generate_kwargs is None else dict(generate_kwargs)
    worker = worker or RolloutWorker(env_id, env_kwargs, generate_kwargs)
    worker.generate_kwargs = generate_kwargs
    if questions is None:
        questions = range(min(num_questions, worker.dataset_size))
    questions = list(questions)
    settings = {"env_kwargs": env_kwargs or {}, "generate": generate_kwargs, "actor": actor, "seed": seed}
    trajectories: list[Trajectory] = []
    try:
        for repeat in range(k):
            torch.manual_seed(seed * 7919 + repeat)
            for start in range(0, len(questions), batch_questions):
                chunk = questions[start : start + batch_questions]
                base = seed * 1_000_003 + repeat * 100_003
                played = worker.run(
                    policy,
                    chunk,
                    1,
                    seed=base,
                    actor=actor,
                    first_group_id=start,
                    reset_seeds=[base + q for q in chunk],  # a question's option order does not depend on batching
                )
                trajectories += played
    except (Exception, KeyboardInterrupt) as error:
        if not keep_partial or not trajectories:
            raise
        partial = summarize(env_id, trajectories, k, settings)
        partial.settings["incomplete"] = (
            f"stopped after {len(trajectories)} of {k * len(questions)} episodes: {type(error).__name__}: {error}"
        )
        raise EvaluationInterrupted(partial, error) from error
    return summarize(env_id, trajectories, k, settings)
