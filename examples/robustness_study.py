"""ROMA vs GRPO vs MAPO: accuracy on clean, seen-corrupted and unseen-corrupted held-out images.

ROMA (arXiv 2605.09262) claims robustness to visual degradation at equal clean accuracy: RL on clean
rollouts plus a worst-view KL and an auxiliary clean-advantage policy gradient on teacher-forced
corrupted views, both gated by success. This study measures that claim on the bundled setting:

1. **The starting agent**: the fully trained bundled agent (``mapo-train``'s recipe: about 100 %
   clean held-out on ``MAPO-Tiles-v0``, far less under corruptions), trained here unless ``--init``
   names one. ROMA's premise is a capable policy that is brittle; this is one.
2. **RL from it** for each method at its defaults (ROMA on GRPO's advantages, the seen corruptions of
   :mod:`mapo_env.corruptions` at severities 1-5 for its views), the same budget for all:
   ``--steps`` steps of ``--questions-per-step`` questions x ``--group-size`` rollouts on clean images,
   over ``--seeds``. Runs are independent one-thread processes, ``--jobs`` at a time; each writes
   ``<out>/<method>/seed<k>/result.json`` when it ends, and a rerun skips finished runs.
3. **Evaluation** of each final model, greedy, on the same ``--eval-episodes`` held-out questions
   (the same reset seeds, so the same corrupted pixels for every model): clean; *seen* (each episode
   drawn from the 5 seen corruptions, severity ``--severity``); *unseen* (the 6 corruptions no
   training run ever sees). The starting agent is evaluated the same way.

Usage::

    python examples/robustness_study.py                         # the study (trains the starting agent first)
    python examples/robustness_study.py --init runs/mapo-tiles/final   # ... from an agent you trained
    python examples/robustness_study.py --quick                 # a smoke run (minutes)
    python examples/robustness_study.py --report-only --publish # rebuild the report, write it into README.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from study import (
    add_budget_arguments,
    add_study_arguments,
    base_config,
    cell,
    load_runs,
    method_dir,
    paired_difference,
    recipe_checkpoint,
    run_config,
    run_study,
    unfinished,
)

from mapo_agent.config import TrainConfig

METHODS = ("roma", "grpo", "mapo", "roma:consistency_coef=1.0")  # the last: ROMA with its KL 50x heavier
CONDITIONS = ("clean", "seen", "unseen")

CHILD = r"""
import json, sys, time
from pathlib import Path
from mapo_agent.config import TrainConfig
from mapo_agent.evaluation import evaluate
from mapo_agent.trainer import Trainer

spec = json.loads(sys.argv[1])
config = TrainConfig.from_dict(spec["config"])
started = time.perf_counter()
trainer = Trainer(config)
trainer.train()
seconds = time.perf_counter() - started
eval_kwargs = {**config.env.kwargs, **config.env.eval_kwargs}
result = {"seconds": seconds, "final": {}, "episodes": {}}
for condition in spec["conditions"]:
    corruption = None if condition == "clean" else condition
    report = evaluate(
        trainer.policy, config.env.id, eval_kwargs, num_questions=spec["episodes"], seed=spec["eval_seed"],
        corruption=corruption, severity=spec["severity"],
    )
    result["final"][condition] = report.accuracy
    result["episodes"][condition] = [[t.sample_index, bool(t.correct)] for t in report.trajectories]
result["eval_seconds"] = time.perf_counter() - started - seconds
Path(spec["result"]).write_text(json.dumps(result) + "\n")
"""

REFERENCE = r"""
import json, sys
from pathlib import Path
from mapo_agent.evaluation import evaluate
from mapo_agent.policy import HFPolicy

spec = json.loads(sys.argv[1])
policy = HFPolicy.from_pretrained(spec["init"])
result = {"final": {}}
for condition in spec["conditions"]:
    corruption = None if condition == "clean" else condition
    report = evaluate(
        policy, spec["env_id"], spec["eval_kwargs"], num_questions=spec["episodes"], seed=spec["eval_seed"],
        corruption=corruption, severity=spec["severity"],
    )
    result["final"][condition] = report.accuracy
Path(spec["result"]).write_text(json.dumps(result) + "\n")
"""


def run_spec(method: str, seed: int, init: Path, out: Path, base: TrainConfig, args) -> dict:
    run_dir = method_dir(out, method) / f"seed{seed}"
    config = run_config(base, method, seed, init, run_dir, args, eval_every=0)
    return {
        "config": config.to_dict(),
        "result": str(run_dir / "result.json"),
        "label": f"{method} seed {seed}",
        **evaluation_settings(args),
    }


def evaluation_settings(args) -> dict:
    return {"conditions": list(CONDITIONS), "episodes": args.eval_episodes, "eval_seed": 1, "severity": args.severity}


def write_report(out: Path, runs: dict[str, dict[int, dict]], reference: dict, args) -> str:
    lines = [
        f"| method | seeds | clean | seen corruptions (severity {args.severity}) | unseen corruptions "
        f"(severity {args.severity}) | wall time / run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, by_seed in runs.items():
        results = list(by_seed.values())
        cells = [cell([r["final"][c] for r in results]) for c in CONDITIONS]
        seconds = statistics.mean(r["seconds"] + r.get("eval_seconds", 0) for r in results)
        lines.append(f"| {method} | {len(results)} | {' | '.join(cells)} | {seconds:.0f} s |")
    if reference:
        cells = [cell([reference["final"][c]]) for c in CONDITIONS]
        lines.append(f"| starting agent (no RL) | – | {' | '.join(cells)} | – |")
    lines.append("")
    for method in (m for m in runs if m.startswith("roma")):
        for other in ("grpo", "mapo"):
            if other not in runs:
                continue
            for condition in CONDITIONS:
                a = {s: r["final"][condition] for s, r in runs[method].items()}
                b = {s: r["final"][condition] for s, r in runs[other].items()}
                lines.append(f"- {method} − {other}, {condition}: {paired_difference(a, b)}")
        first, last = robust_kl_trend(out, method)
        if first is not None:
            lines.append(
                f"- {method}: worst-view token KL on successful trajectories (train/robust_kl), mean of the first "
                f"5 steps {first:.3f}, of the last 5 steps {last:.3f} (over seeds)"
            )
    lines += [
        "",
        f"Mean ± 95 % CI (t-interval) over seeds; {args.steps} RL steps of {args.questions_per_step} questions x "
        f"{args.group_size} rollouts on clean images, lr {args.lr:g}, from the fully trained bundled agent; "
        f"{args.eval_episodes} held-out episodes per condition, greedy, the same questions and corrupted pixels "
        "for every model (seen: gaussian_noise, gaussian_blur, jpeg, low_resolution, contrast; unseen: motion_blur, "
        "defocus_blur, pixelate, salt_and_pepper, brightness, fog; one drawn per episode).",
    ]
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps({"runs": runs, "reference": reference, "args": vars(args)}, indent=2) + "\n", encoding="utf-8"
    )
    plot(out, runs, reference)
    return text


def robust_kl_trend(out: Path, method: str) -> tuple[float | None, float | None]:
    """Mean ``train/robust_kl`` of the first and of the last 5 RL steps over a method's runs."""
    first, last = [], []
    for path in method_dir(out, method).glob("seed*/metrics.jsonl"):
        rows = map(json.loads, path.read_text().splitlines())
        values = [r["train/robust_kl"] for r in rows if "train/robust_kl" in r]
        first += values[:5]
        last += values[-5:]
    if not first:
        return None, None
    return statistics.mean(first), statistics.mean(last)


def plot(out: Path, runs: dict[str, dict[int, dict]], reference: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from study import mean_ci

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    rows = ([("starting agent", [reference])] if reference else []) + [(m, list(r.values())) for m, r in runs.items()]
    width = 0.8 / max(len(rows), 1)
    for index, (name, results) in enumerate(rows):
        stats = [mean_ci([r["final"][c] for r in results]) for c in CONDITIONS]
        means = [m for m, _ in stats]
        halves = [0 if np.isnan(h) else h for _, h in stats]
        xs = np.arange(len(CONDITIONS)) + (index - (len(rows) - 1) / 2) * width
        ax.bar(xs, means, width, yerr=halves, capsize=3, label=f"{name} ({len(results)})")
    ax.set_xticks(range(len(CONDITIONS)), CONDITIONS)
    ax.set_ylabel("held-out accuracy (mean, 95 % CI)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_by_condition.png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    add_budget_arguments(parser, steps=30, eval_episodes=200)
    parser.add_argument("--severity", type=int, default=3, help="corruption severity of the evaluation (1-5)")
    parser.add_argument("--init", help="the starting agent (default: train the bundled recipe into <out>/init)")
    add_study_arguments(parser, "runs/robustness")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 steps, 8 episodes")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.eval_episodes = [0], 2, 8

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = base_config()
    init = Path(args.init) if args.init else recipe_checkpoint(out / "init", base)
    reference_path = out / "reference" / "result.json"
    specs = [run_spec(m, s, init, out, base, args) for s in args.seeds for m in args.methods]
    reference_spec = {
        "init": str(init),
        "env_id": base.env.id,
        "eval_kwargs": {**base.env.kwargs, **base.env.eval_kwargs},
        "result": str(reference_path),
        **evaluation_settings(args),
    }
    runs = [(CHILD, s, s["label"]) for s in unfinished(specs)]  # run_study skips them with --report-only
    run_study(
        "robustness",
        args,
        (REFERENCE, reference_spec, "starting agent"),
        runs,
        lambda reference: write_report(out, load_runs(out, args.methods), reference, args),
        out / "accuracy_by_condition.png",
    )


if __name__ == "__main__":
    main()
