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

Robustness (:func:`evaluate_robustness`): the same questions, seeds and decoding, clean and under each
corruption of :mod:`mapo_env.corruptions` (the :class:`~mapo_env.wrappers.VisualCorruption` wrapper
degrades every image the agent sees, at one severity); the report's ``robustness`` table gives each
condition's Avg@k with its CI and its difference from clean, plus the mean over the seen and over
the unseen corruptions.
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
from mapo_env.corruptions import SEEN_CORRUPTIONS, check_severity, resolve_corruptions
from mapo_env.errors import ConfigError, MapoError
from mapo_env.wrappers.corruption import CORRUPTION_TARGETS, corrupted_spec


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
        settings: What was evaluated (model, env kwargs, decoding, corruption).
        robustness: With :func:`evaluate_robustness`: one row per condition (clean, each corruption, the
            seen and unseen means): ``condition``, ``split``, ``severity``, ``accuracy``, ``ci95``,
            ``delta`` (accuracy minus clean), ``episodes``; None otherwise.
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
    robustness: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no trajectories)."""
        robustness = {} if self.robustness is None else {"robustness": self.robustness}
        return {
            "env_id": self.env_id,
            "num_questions": self.num_questions,
            "k": self.k,
            f"avg@{self.k}": self.accuracy,
            "ci95": self.ci95,
            "metrics": self.metrics,
            "categories": self.categories,
            "settings": self.settings,
            **robustness,
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
        if self.robustness is not None:
            lines += ["", *robustness_markdown(self.robustness, self.k)]
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
    corruption: str | None = None,
    severity: int = 3,
    corruption_target: str = "all",
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
        corruption: None (clean), or a corruption of :mod:`mapo_env.corruptions` (a name, a group or
            names joined by commas: one drawn per episode) applied by
            :class:`~mapo_env.wrappers.VisualCorruption` to what the agent sees; the reset seeds seed it,
            so every policy meets the same corrupted pixels. Not with ``worker``.
        severity: The corruption's severity (1..5).
        corruption_target: ``"all"`` (view and crops), ``"view"`` or ``"crops"``.

    An environment built with ``zoom_enabled=False`` answers every zoom call with the full view again;
    the rollout worker marks its trajectories ``info["zoom_enabled"] = False`` so that the metrics count those calls
    as disabled, not as crops (see :func:`mapo_agent.metrics.trajectory_metrics`).
    """
    import torch

    generate_kwargs = {"do_sample": False} if generate_kwargs is None else dict(generate_kwargs)
    source: Any = env_id
    if corruption is not None:
        if worker is not None:
            raise ConfigError("evaluate(): pass a corruption or a worker, not both (the worker's envs are built)")
        source = corrupted_spec(env_id, corruption, severity, target=corruption_target)  # gym.make takes a spec
    worker = worker or RolloutWorker(source, env_kwargs, generate_kwargs)
    worker.generate_kwargs = generate_kwargs
    if questions is None:
        questions = range(min(num_questions, worker.dataset_size))
    questions = list(questions)
    settings = {"env_kwargs": env_kwargs or {}, "generate": generate_kwargs, "actor": actor, "seed": seed}
    if corruption is not None:
        settings["corruption"] = {"name": corruption, "severity": severity, "target": corruption_target}
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


def per_question_accuracy(trajectories: Sequence[Trajectory]) -> dict[int, float]:
    """Mean correctness of each question's episodes, by ``sample_index``."""
    by_question: dict[int, list[float]] = defaultdict(list)
    for t in trajectories:
        by_question[t.sample_index].append(float(t.correct))
    return {q: sum(v) / len(v) for q, v in by_question.items()}


def evaluate_robustness(
    policy: RolloutPolicy,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    *,
    corruptions: str | Sequence[str] = "all",
    severity: int = 3,
    corruption_target: str = "all",
    clean: EvalReport | None = None,
    keep_partial: bool = False,
    **evaluate_kwargs: Any,
) -> EvalReport:
    """Evaluate clean, then under each corruption, on the same questions and seeds; a robustness table.

    Args:
        policy: The policy.
        env_id: Registered environment id.
        env_kwargs: ``gym.make`` kwargs.
        corruptions: A group (``"seen"``, ``"unseen"``, ``"all"``), a name, names joined by commas, or a
            list of names: each is evaluated on its own (not drawn per episode).
        severity: The severity of every corruption (1..5).
        corruption_target: ``"all"``, ``"view"`` or ``"crops"`` (see :class:`~mapo_env.wrappers.VisualCorruption`).
        clean: The clean report, if already computed with the same settings (skips that run).
        keep_partial: As in :func:`evaluate`: if a run stops early, raise :class:`EvaluationInterrupted`
            whose report is the clean one with the rows finished so far (the last one partial).
        **evaluate_kwargs: Passed to every :func:`evaluate` call (``questions``, ``k``, ``seed``, ...).

    Returns:
        The clean report with :attr:`EvalReport.robustness` filled: ``clean``, one row per corruption
        (``delta`` = its accuracy minus clean, ``delta_ci95`` = the paired 95% half-width over
        questions), then ``mean (seen)`` / ``mean (unseen)`` over the corruptions of each split evaluated
        (per question, the mean over those corruptions). Corrupted runs keep no trajectories.

    Raises:
        UnknownNameError: An unknown corruption (the message lists the seen and unseen names).
        ConfigError: A severity outside 1..5, a bad target, or ``worker`` among ``evaluate_kwargs``.
    """
    names = resolve_corruptions(corruptions if isinstance(corruptions, str) else ",".join(corruptions))
    severity = check_severity(severity)
    if corruption_target not in CORRUPTION_TARGETS:
        raise ConfigError(f"corruption_target must be one of {list(CORRUPTION_TARGETS)}, got {corruption_target!r}")
    if "worker" in evaluate_kwargs:
        raise ConfigError("evaluate_robustness() builds one worker per corruption; do not pass worker=")
    if clean is None:
        clean = evaluate(policy, env_id, env_kwargs, keep_partial=keep_partial, **evaluate_kwargs)
    baseline = per_question_accuracy(clean.trajectories)
    rows = [_row("clean", "-", None, clean, baseline, None)]
    scores: dict[str, dict[int, float]] = {}
    clean.robustness = rows
    clean.settings["robustness"] = {"corruptions": list(names), "severity": severity, "target": corruption_target}
    for name in names:
        split = "seen" if name in SEEN_CORRUPTIONS else "unseen"
        try:
            report = evaluate(
                policy,
                env_id,
                env_kwargs,
                keep_partial=keep_partial,
                corruption=name,
                severity=severity,
                corruption_target=corruption_target,
                **evaluate_kwargs,
            )
        except EvaluationInterrupted as stopped:
            partial = per_question_accuracy(stopped.report.trajectories)
            rows.append({**_row(name, split, severity, stopped.report, partial, baseline), "incomplete": True})
            clean.settings["incomplete"] = (
                f"the robustness runs stopped at {name}: {stopped.report.settings['incomplete']}"
            )
            raise EvaluationInterrupted(clean, stopped.cause) from stopped.cause
        scores[name] = per_question_accuracy(report.trajectories)
        rows.append(_row(name, split, severity, report, scores[name], baseline))
    for split in ("seen", "unseen"):
        members = [scores[n] for n in names if (n in SEEN_CORRUPTIONS) == (split == "seen")]
        if len(members) > 1:
            questions = sorted(set.intersection(*(set(m) for m in members)))
            mean = {q: sum(m[q] for m in members) / len(members) for q in questions}
            rows.append(_mean_row(f"mean ({split})", split, severity, mean, baseline, len(members)))
    return clean


def _row(
    condition: str,
    split: str,
    severity: int | None,
    report: EvalReport,
    scores: dict[int, float],
    baseline: dict[int, float] | None,
) -> dict[str, Any]:
    row = _mean_row(condition, split, severity, scores, baseline, 1)
    row["episodes"] = len(report.trajectories)
    row["tool_calls"] = report.metrics.get("eval/tool_calls", float("nan"))
    del row["corruptions"]
    return row


def _mean_row(
    condition: str,
    split: str,
    severity: int | None,
    scores: dict[int, float],
    baseline: dict[int, float] | None,
    corruptions: int,
) -> dict[str, Any]:
    accuracy, ci = mean_ci95(list(scores.values()))
    row: dict[str, Any] = {
        "condition": condition,
        "split": split,
        "severity": severity,
        "questions": len(scores),
        "accuracy": accuracy,
        "ci95": ci,
        "corruptions": corruptions,
    }
    if baseline is not None:
        paired = [scores[q] - baseline[q] for q in scores if q in baseline]
        row["delta"], row["delta_ci95"] = mean_ci95(paired)
    return row


def robustness_markdown(rows: Sequence[dict[str, Any]], k: int) -> list[str]:
    """The robustness table of a report, as Markdown lines (see :func:`evaluate_robustness`)."""
    severity = next((r["severity"] for r in rows if r["severity"] is not None), None)
    lines = [
        f"## Robustness to visual corruptions (severity {severity}; Avg@{k}, 95% CI over questions)",
        "",
        "| condition | split | questions | accuracy | 95% CI | vs clean | 95% CI (paired) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        delta = f"{100 * row['delta']:+.1f} | ± {100 * row['delta_ci95']:.1f}" if "delta" in row else "— | —"
        name = row["condition"] + (" (INCOMPLETE)" if row.get("incomplete") else "")
        lines.append(
            f"| {name} | {row['split']} | {row['questions']} | {100 * row['accuracy']:.1f}% "
            f"| ± {100 * row['ci95']:.1f} | {delta} |"
        )
    return lines
