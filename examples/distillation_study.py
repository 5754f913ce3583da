"""VA-OPD vs OPD vs RL alone: a weak student learning from the trained bundled agent, accuracy per student step.

VA-OPD (arXiv 2605.21924) distils a teacher into a student on the student's own samples (on-policy
distillation, OPD) and weights the reverse KL by the *visual advantage*: how much the teacher's
log-probability of each sampled token drops when the image is degraded. It claims that this focuses
distillation on the tokens and rollouts that depend on the image. This study measures it on the
bundled setting:

1. **The teacher**: the fully trained bundled agent (``mapo-train``'s recipe, about 100 % held-out on
   ``MAPO-Tiles-v0``), trained here unless ``--teacher`` names one.
2. **The student**: the same recipe's grounded SFT stopped after ``--student-steps`` of its 700 steps
   (the weak cold start of ``compare_algorithms.py``: about 46 % held-out), unless ``--student``
   names one. The student has the teacher's architecture and tokenizer (token ids are checked equal).
3. **Training the student** with each method at its paper's defaults (``va_opd``: rollout weights
   softmax(z(ā)/τ), τ = 1, top 20 % tokens, λ = 0.5, degraded view = 10 % bilinear downsample;
   ``opd``: uniform weights, one KL; ``grpo``: RL from the task reward alone, no teacher), the same
   budget for all: ``--steps`` student steps of ``--questions-per-step`` questions x ``--group-size``
   rollouts, over ``--seeds``; held-out accuracy (greedy, ``--eval-episodes`` episodes, the same for
   every run) every ``--eval-every`` steps. Runs are independent one-thread processes, ``--jobs`` at a
   time, each writing ``<out>/<method>/seed<k>/result.json``; a rerun skips finished runs.

Usage::

    python examples/distillation_study.py                  # the study (trains teacher and student first)
    python examples/distillation_study.py --teacher runs/mapo-tiles/final --student runs/cold/final
    python examples/distillation_study.py --quick          # a smoke run (minutes)
    python examples/distillation_study.py --report-only --publish
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

from study import (
    add_budget_arguments,
    add_study_arguments,
    base_config,
    cell,
    load_runs,
    method_dir,
    paired_difference,
    parse_method,
    recipe_checkpoint,
    run_config,
    run_study,
    t_quantile,
    unfinished,
)

from mapo_agent.config import TrainConfig

METHODS = ("va_opd", "opd", "grpo")
TEACHERLESS = ("grpo",)

CHILD = r"""
import json, sys, time
from dataclasses import replace
from pathlib import Path
from mapo_agent.config import TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer

spec = json.loads(sys.argv[1])
config = TrainConfig.from_dict(spec["config"])
started = time.perf_counter()
Trainer(config).train()
seconds = time.perf_counter() - started
rows = read_metrics(Path(config.output_dir) / "metrics.jsonl")
curve = [[r["step"] + 1, r["eval/accuracy"]] for r in rows if r.get("eval/accuracy") is not None]
result = {"curve": curve, "final": curve[-1][1], "seconds": seconds}
Path(spec["result"]).write_text(json.dumps(result) + "\n")
"""

REFERENCE = r"""
import json, sys
from dataclasses import replace
from pathlib import Path
from mapo_agent.evaluation import evaluate
from mapo_agent.policy import HFPolicy

spec = json.loads(sys.argv[1])
result = {}
for name, path in spec["models"].items():
    report = evaluate(
        HFPolicy.from_pretrained(path), spec["env_id"], spec["eval_kwargs"], num_questions=spec["episodes"],
        seed=spec["eval_seed"],
    )
    result[name] = report.accuracy
Path(spec["result"]).write_text(json.dumps(result) + "\n")
"""


def run_spec(method: str, seed: int, teacher_dir: Path, student: Path, out: Path, base: TrainConfig, args) -> dict:
    run_dir = method_dir(out, method) / f"seed{seed}"
    teacher_kwargs = {} if parse_method(method)[0] in TEACHERLESS else {"teacher_model": str(teacher_dir)}
    config = run_config(
        base, method, seed, student, run_dir, args, eval_every=args.eval_every, algo_kwargs=teacher_kwargs
    )
    config = replace(config, eval_episodes=args.eval_episodes)
    return {"config": config.to_dict(), "result": str(run_dir / "result.json"), "label": f"{method} seed {seed}"}


def write_report(out: Path, runs: dict[str, dict[int, dict]], reference: dict, args) -> str:
    steps = sorted({step for by_seed in runs.values() for r in by_seed.values() for step, _ in r["curve"]})
    head = " | ".join(f"step {s}" for s in steps)
    lines = [
        f"| method | seeds | {head} | wall time / run |",
        "|---|---:|" + "---:|" * len(steps) + "---:|",
    ]
    for method, by_seed in runs.items():
        results = list(by_seed.values())
        cells = [cell([dict(r["curve"]).get(s) for r in results]) for s in steps]
        seconds = statistics.mean(r["seconds"] for r in results)
        lines.append(f"| {method} | {len(results)} | {' | '.join(cells)} | {seconds:.0f} s |")
    lines.append("")
    finals = {m: {s: r["final"] for s, r in by_seed.items()} for m, by_seed in runs.items()}
    for a, b in (("va_opd", "opd"), ("va_opd", "grpo"), ("opd", "grpo")):
        if a in finals and b in finals:
            lines.append(f"- final accuracy, {a} − {b}: {paired_difference(finals[a], finals[b])}")
    if reference:
        lines += [
            "",
            f"On the same episodes, before any student step: the student {reference['student']:.3f}, "
            f"the teacher {reference['teacher']:.3f}.",
        ]
    lines += [
        "",
        f"Held-out accuracy (greedy, {args.eval_episodes} episodes, the same for every run) after N student steps; "
        f"mean ± 95 % CI (t-interval) over seeds. Each step: {args.questions_per_step} questions x {args.group_size} "
        f"student rollouts, lr {args.lr:g} for every method.",
    ]
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps({"runs": runs, "reference": reference, "args": vars(args)}, indent=2) + "\n", encoding="utf-8"
    )
    plot(out, runs, reference)
    return text


def plot(out: Path, runs: dict[str, dict[int, dict]], reference: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for method, by_seed in runs.items():
        curves = [r["curve"] for r in by_seed.values()]
        steps = sorted(set.intersection(*(set(dict(c)) for c in curves)))
        start = [0] if reference else []
        series = np.array(
            [[reference.get("student", math.nan)] * len(start) + [dict(c)[s] for s in steps] for c in curves]
        )
        xs = start + steps
        mean = series.mean(axis=0)
        line = ax.plot(xs, mean, marker="o", label=f"{method} ({len(curves)} seeds)")[0]
        if len(curves) > 1:
            half = t_quantile(len(curves)) * series.std(axis=0, ddof=1) / math.sqrt(len(curves))
            ax.fill_between(xs, mean - half, mean + half, color=line.get_color(), alpha=0.12)
    if reference:
        ax.axhline(reference["teacher"], color="grey", linestyle="--", label="teacher")
    ax.set_xlabel("student step")
    ax.set_ylabel("held-out accuracy (mean, 95 % CI band)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_student_step.png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    add_budget_arguments(parser, steps=20, eval_episodes=100)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--student-steps", type=int, default=440, help="where the student's SFT stops (of 700)")
    parser.add_argument("--teacher", help="the teacher (default: train the bundled recipe into <out>/teacher)")
    parser.add_argument("--student", help="the student (default: the recipe's SFT stopped at --student-steps)")
    add_study_arguments(parser, "runs/distillation")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 steps, 8 episodes")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.eval_episodes, args.eval_every = [0], 2, 8, 1

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = base_config()
    teacher = Path(args.teacher) if args.teacher else recipe_checkpoint(out / "teacher", base)
    student = Path(args.student) if args.student else recipe_checkpoint(out / "student", base, args.student_steps)
    specs = [run_spec(m, s, teacher, student, out, base, args) for s in args.seeds for m in args.methods]
    reference_path = out / "reference" / "result.json"
    reference_spec = {
        "models": {"student": str(student), "teacher": str(teacher)},
        "env_id": base.env.id,
        "eval_kwargs": {**base.env.kwargs, **base.env.eval_kwargs},
        "episodes": args.eval_episodes,
        # the runs' held-out evaluations take the first --eval-episodes questions with reset seed (run seed + 1);
        # on Tiles the reset seed changes no pixel or option order, so these are the runs' episodes
        "eval_seed": base.seed + 1,
        "result": str(reference_path),
    }
    runs = [(CHILD, s, s["label"]) for s in unfinished(specs)]  # run_study skips them with --report-only
    run_study(
        "distillation",
        args,
        (REFERENCE, reference_spec, "teacher and student"),
        runs,
        lambda reference: write_report(out, load_runs(out, args.methods), reference, args),
        out / "accuracy_vs_student_step.png",
    )


if __name__ == "__main__":
    main()
