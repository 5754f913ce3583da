"""Compare MAPO with its peers on the same work, powered to tell them apart.

One command runs the whole study and writes the README's table and plots:

1. **A weak cold start**: the bundled recipe's grounded SFT on its own 700-step schedule, stopped
   after ``--cold-start-steps`` steps, in the window where localisation is emerging: the agent always
   zooms but lands on the target only part of the time, so outcome-only credit is noisy (a lucky
   answer after a wrong zoom is rewarded as much as a right one), which is what MAPO's semantic term
   is meant to correct.
2. **RL from that checkpoint** for every method with the same budget (``--steps`` RL steps of
   ``--questions-per-step`` questions x ``--group-size`` rollouts, each method at its paper's
   defaults), MAPO and GRPO over ``--seeds`` (5 by default), the other methods over the first
   ``--other-seeds`` of them (3). Runs are independent processes, ``--jobs`` at a time; each writes
   ``<out>/<method>/seed<k>/result.json`` as soon as it ends, and an interrupted study resumes
   where it stopped (finished runs are skipped).
3. **The report** (``results.md``, ``results.json``, ``accuracy_vs_step.png``,
   ``alignment_vs_step.png``): per method, the final held-out accuracy (mean ± 95 % CI over seeds,
   t-interval), alignment, the reasoning-action-gap metrics (misaligned share: a crop scoring below
   0.5 against its label; confident misses: answered although the last crop missed the target),
   tool calls, sample efficiency (the first RL step at which held-out accuracy reached
   ``--target-accuracy``, per seed), wall time; a paired test MAPO vs GRPO (same seed = same
   questions and held-out episodes: a paired t-test over seeds and an exact McNemar test over the
   pooled held-out episodes); and the gradient-noise ratio of MAPO's advantage to GRPO's on
   identical rollout batches, measured during the MAPO runs.

Usage::

    python examples/compare_algorithms.py                 # the full study (hours on 2 CPU cores; see --jobs)
    python examples/compare_algorithms.py --quick         # a smoke run (minutes)
    python examples/compare_algorithms.py --report-only   # rebuild the report from finished runs
    python examples/compare_algorithms.py --report-only --publish   # ... and write it into README.md

``--publish`` replaces the README's block between ``<!-- compare:begin -->`` and
``<!-- compare:end -->`` with ``results.md`` and copies the two plots to ``docs/images/``, so the
README's table is always this script's output.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from study import (
    add_study_arguments,
    base_config,
    cell,
    load_runs,
    mean_ci,
    method_dir,
    publish_block,
    recipe_checkpoint,
    run_config,
    run_jobs,
    t_quantile,
    unfinished,
)

from mapo_agent.config import TrainConfig

METHODS = ("mapo", "grpo", "dr_grpo", "dapo", "rloo", "papo", "vgpo")
REPORTED = ("eval/accuracy", "eval/alignment", "eval/tool_calls", "eval/misaligned_share", "eval/confident_miss_share")

CHILD = r"""
import json, sys, time
from dataclasses import replace
from pathlib import Path
from mapo_agent.config import TrainConfig
from mapo_agent.diagnostics import GradientNoiseCallback
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer

spec = json.loads(sys.argv[1])
config = TrainConfig.from_dict(spec["config"])
callbacks = []
if spec["variance_every"]:
    callbacks.append(GradientNoiseCallback(("grpo", "mapo"), every=spec["variance_every"]))
started = time.perf_counter()
trainer = Trainer(config, callbacks=callbacks)
trainer.train()
seconds = time.perf_counter() - started
rows = read_metrics(Path(config.output_dir) / "metrics.jsonl")
evals = [r for r in rows if r.get("eval/accuracy") is not None]
episodes = [[t.sample_index, bool(t.correct)] for t in trainer.last_eval.trajectories]
result = {
    "final": {k: evals[-1].get(k) for k in spec["reported"]},
    "curve": [[r["step"] - config.sft_steps, r.get("eval/accuracy"), r.get("eval/alignment")] for r in evals],
    "episodes": episodes,
    "seconds": seconds,
    "variance": callbacks[0].history if callbacks else [],
}
Path(spec["result"]).write_text(json.dumps(result) + "\n")
"""


# ------------------------------------------------------------------------------------------ runs
def run_spec(method: str, seed: int, init: Path, out: Path, base: TrainConfig, args) -> dict:
    run_dir = method_dir(out, method) / f"seed{seed}"
    config = run_config(base, method, seed, init, run_dir, args, eval_every=args.eval_every)
    config = replace(config, rollout=replace(config.rollout, temperature=args.temperature))
    return {
        "config": config.to_dict(),
        "result": str(run_dir / "result.json"),
        "variance_every": args.variance_every if method == "mapo" else 0,
        "reported": list(REPORTED),
    }


# ---------------------------------------------------------------------------------------- report
def steps_to(curve: list[list[float]], target: float) -> float:
    """First RL step whose held-out accuracy reached ``target`` (inf if never)."""
    return next((step + 1 for step, acc, _ in curve if acc is not None and acc >= target), math.inf)


def paired_tests(mapo: dict[int, dict], grpo: dict[int, dict]) -> list[str]:
    """Paired t-test over seeds and exact McNemar over pooled held-out episodes, MAPO vs GRPO."""
    from scipy import stats

    seeds = sorted(set(mapo) & set(grpo))
    if len(seeds) < 2:
        return ["Paired test MAPO vs GRPO: fewer than 2 common seeds."]
    a = [mapo[s]["final"]["eval/accuracy"] for s in seeds]
    b = [grpo[s]["final"]["eval/accuracy"] for s in seeds]
    diff = [x - y for x, y in zip(a, b)]
    t = stats.ttest_rel(a, b)
    only_mapo = only_grpo = 0
    for s in seeds:
        right_g = {(i, q): c for i, (q, c) in enumerate(grpo[s]["episodes"])}
        for i, (q, c) in enumerate(mapo[s]["episodes"]):
            other = right_g.get((i, q))
            if other is None:
                continue
            only_mapo += c and not other
            only_grpo += other and not c
    discordant = only_mapo + only_grpo
    mcnemar = stats.binomtest(only_mapo, discordant, 0.5).pvalue if discordant else 1.0
    mean_d, half_d = mean_ci(diff)
    return [
        f"Paired test MAPO vs GRPO over {len(seeds)} seeds (same questions and held-out episodes per seed): "
        f"accuracy difference {mean_d:+.3f} ± {half_d:.3f} (95 % CI), paired t-test p = {t.pvalue:.3f}; "
        f"exact McNemar over the pooled held-out episodes: MAPO right where GRPO was wrong {only_mapo}, "
        f"the reverse {only_grpo}, p = {mcnemar:.3f}.",
    ]


def write_report(out: Path, results: dict[str, dict[int, dict]], baselines: dict, args) -> None:
    lines = [
        f"| method | seeds | held-out accuracy | steps to {args.target_accuracy:.0%} | alignment | misaligned share "
        "| confident misses | tool calls / episode | wall time / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, runs in results.items():
        finals = list(runs.values())
        reached = [steps_to(r["curve"], args.target_accuracy) for r in finals]
        reached_cell = f"{statistics.median(reached):.0f} (median; {sum(map(math.isfinite, reached))}/{len(reached)})"
        if not any(map(math.isfinite, reached)):
            reached_cell = f"not reached (0/{len(reached)})"
        cells = [cell([r["final"].get(k) for r in finals]) for k in REPORTED]
        lines.append(
            f"| {method} | {len(finals)} | {cells[0]} | {reached_cell} | {cells[1]} | {cells[3]} | {cells[4]} "
            f"| {cells[2]} | {statistics.mean(r['seconds'] for r in finals):.0f} s |"
        )
    for name, final in baselines.items():
        cells = [cell([final.get(k)]) for k in REPORTED]
        lines.append(f"| {name} | – | {cells[0]} | – | {cells[1]} | {cells[3]} | {cells[4]} | {cells[2]} | – |")
    variance = [row for r in results.get("mapo", {}).values() for row in r["variance"]]
    ratios = [v for row in variance for k, v in row.items() if k.startswith("diag/grad_var_ratio/")]
    rel = [v for row in variance for k, v in row.items() if k.startswith("diag/grad_rel_var_ratio/")]
    lines += ["", *paired_tests(results.get("mapo", {}), results.get("grpo", {})), ""]
    if ratios:
        lines.append(
            f"Gradient noise of MAPO's advantage vs GRPO's on identical rollout batches ({len(ratios)} measurements "
            f"during the MAPO runs): variance ratio {cell(ratios)} (median {statistics.median(ratios):.3f}); "
            f"noise-to-signal ratio {cell(rel)} (median {statistics.median(rel):.3f})."
        )
    lines.append(
        f"Mean ± 95 % CI (t-interval) over seeds; {args.steps} RL steps of {args.questions_per_step} questions x "
        f"{args.group_size} rollouts from the cold start; {args.eval_episodes} held-out episodes per evaluation."
    )
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps({"runs": results, "baselines": baselines, "args": vars(args)}, indent=2) + "\n", encoding="utf-8"
    )
    plot(out, results)
    print("\n".join(lines))


def plot(out: Path, results: dict[str, dict[int, dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for index, (stem, label) in enumerate((("accuracy", "held-out accuracy"), ("alignment", "alignment")), start=1):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        for method, runs in results.items():
            curves = [r["curve"] for r in runs.values()]
            length = min(len(c) for c in curves)
            steps = [c[0] for c in curves[0][:length]]
            series = np.array([[p[index] for p in c[:length]] for c in curves], dtype=float)
            if series.size == 0 or np.isnan(series).all():
                continue
            mean = np.nanmean(series, axis=0)
            line = ax.plot(steps, mean, label=f"{method} ({len(curves)} seeds)")[0]
            if len(curves) > 1:
                half = t_quantile(len(curves)) * np.nanstd(series, axis=0, ddof=1) / math.sqrt(len(curves))
                ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.12)
        ax.set_xlabel("RL step")
        ax.set_ylabel(f"{label} (mean, 95 % CI band)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{stem}_vs_step.png")
        plt.close(fig)


def publish(out: Path) -> None:
    """Write ``results.md`` into README's compare block and copy the two plots to ``docs/images/``."""
    figures = [out / f"{stem}_vs_step.png" for stem in ("accuracy", "alignment")]
    publish_block("compare", (out / "results.md").read_text(encoding="utf-8"), figures)


def reference_rows(init: Path, base: TrainConfig, episodes: int) -> dict:
    """The cold-start checkpoint without RL, and the oracle (upper bound), on the same held-out episodes."""
    from mapo_agent.evaluation import evaluate
    from mapo_agent.policy import HFPolicy

    policy = HFPolicy.from_pretrained(str(init))
    eval_kwargs = {**base.env.kwargs, **base.env.eval_kwargs}
    rows = {}
    for name, actor in (("cold-start checkpoint (no RL)", "policy"), ("oracle (upper bound)", "oracle")):
        report = evaluate(policy, base.env.id, eval_kwargs, num_questions=episodes, actor=actor, seed=base.seed + 1)
        rows[name] = {**report.metrics, "eval/accuracy": report.accuracy}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="seeds of MAPO and GRPO")
    parser.add_argument("--other-seeds", type=int, default=3, help="the other methods run the first N seeds")
    parser.add_argument("--steps", type=int, default=50, help="RL steps per run")
    parser.add_argument("--questions-per-step", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument(
        "--lr",
        type=float,
        default=3e-5,
        help="peak RL learning rate, the same for every method (1e-4 and 2e-4 cost every method ~10 points)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="rollout sampling temperature, the same for every method (log-probs use it too)",
    )
    parser.add_argument("--warmup-steps", type=int, default=3, help="RL warm-up steps (short runs: a short warm-up)")
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--variance-every", type=int, default=25, help="gradient-noise period of the MAPO runs")
    parser.add_argument("--target-accuracy", type=float, default=0.6, help="sample efficiency: steps to reach it")
    parser.add_argument(
        "--cold-start-steps",
        type=int,
        default=440,
        help="where the weak cold start stops the recipe's 700-step grounded SFT",
    )
    parser.add_argument("--init", help="use this checkpoint as the cold start instead of training one")
    add_study_arguments(parser, "runs/compare")
    parser.add_argument("--quick", action="store_true", help="smoke run: MAPO and GRPO, 1 seed, a few steps")
    args = parser.parse_args()
    if args.quick:
        args.methods, args.seeds, args.steps, args.eval_episodes = ["mapo", "grpo"], [0], 4, 20
        args.eval_every, args.variance_every, args.cold_start_steps = 2, 2, 10

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base = base_config(eval_episodes=args.eval_episodes)
    init = Path(args.init) if args.init else recipe_checkpoint(out / "cold_start", base, args.cold_start_steps)
    if not args.report_only:
        specs = []
        for method in args.methods:
            seeds = args.seeds if method in ("mapo", "grpo") else args.seeds[: args.other_seeds]
            specs += [run_spec(method, seed, init, out, base, args) for seed in seeds]
        # MAPO and GRPO first, seed by seed, so that a cut-short study still has its main pair
        specs.sort(key=lambda s: (s["config"]["algo"] not in ("mapo", "grpo"), s["config"]["seed"]))
        run_jobs(
            [(CHILD, s, f"{s['config']['algo']} seed {s['config']['seed']}") for s in unfinished(specs)], args.jobs
        )
    reference = out / "reference_rows.json"
    if not reference.is_file():
        reference.write_text(json.dumps(reference_rows(init, base, args.eval_episodes)) + "\n")
    results = load_runs(out, args.methods)
    write_report(out, results, json.loads(reference.read_text()), args)
    if args.publish:
        publish(out)
    print(f"total wall time of this invocation: {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
