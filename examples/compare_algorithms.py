"""Compare MAPO with its peers on the same work: same SFT checkpoint, same budget, several seeds.

One command trains every algorithm (``mapo``, ``grpo``, ``dr_grpo``, ``dapo``, ``rloo``, ``papo``, ``vgpo``)
from one cold-start checkpoint with the same number of RL steps, rollouts and evaluation episodes, over
several seeds, plus a Stable-Baselines3 PPO baseline through the discrete-action wrapper and the oracle
as the upper bound. It measures, during the MAPO runs, the gradient noise of MAPO's advantage against
GRPO's on identical rollout batches. Outputs in ``--out``:

- ``results.md`` / ``results.json``: per algorithm, final held-out accuracy (mean ± std over seeds),
  alignment, tool calls per episode, misaligned share (a crop whose label scores below 0.5), confident
  misses (answered although the last crop missed the target, IoU < 0.1), wall time; the gradient-noise
  ratio with its spread;
- ``accuracy_vs_step.png``, ``alignment_vs_step.png``: one line per algorithm, band = min..max over seeds;
- one run directory per algorithm and seed (metrics, plots, final model).

Usage::

    python examples/compare_algorithms.py                       # the full comparison (about an hour on 2 CPU cores)
    python examples/compare_algorithms.py --quick               # a smoke run (minutes)
    python examples/compare_algorithms.py --init runs/mapo-tiles/final --algos mapo grpo --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mapo_agent.config import TrainConfig
from mapo_agent.diagnostics import GradientNoiseCallback
from mapo_agent.evaluation import evaluate
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer

ALGOS = ("mapo", "grpo", "dr_grpo", "dapo", "rloo", "papo", "vgpo")
REPORTED = ("eval/accuracy", "eval/alignment", "eval/tool_calls", "eval/misaligned_share", "eval/confident_miss_share")


class StopAfter:
    """Trainer callback: end the run after ``step`` (0-based)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        trainer.should_stop = step >= self.step


def cold_start(out: Path, base: TrainConfig, stop_after: int) -> Path:
    """Run the recipe's cold-start stage once, stopped after ``stop_after`` steps; every algorithm starts there.

    The recipe's full cold start already saturates the task (100% held-out), which would leave RL nothing
    to show; stopping it part-way, on the recipe's own learning-rate schedule, leaves room.
    """
    config = replace(base, steps=0, output_dir=str(out / "cold_start"))
    callbacks = [StopAfter(stop_after - 1)] if stop_after < config.sft_steps else []
    Trainer(config, callbacks=callbacks).train()
    return out / "cold_start" / "final"


def run_algorithm(algo: str, seed: int, init: Path, out: Path, base: TrainConfig, args) -> dict:
    """Train one algorithm from ``init``; returns its final metrics, curve and wall time."""
    config = replace(
        base,
        algo=algo,
        seed=seed,
        steps=args.steps,
        sft_steps=0,
        eval_every=max(1, args.steps // args.eval_points),
        output_dir=str(out / algo / f"seed{seed}"),
        model=replace(base.model, name_or_path=str(init)),
        rollout=replace(base.rollout, questions_per_step=args.questions_per_step, group_size=args.group_size),
    )
    callbacks = [GradientNoiseCallback(("grpo", "mapo"), every=args.variance_every)] if algo == "mapo" else []
    started = time.perf_counter()
    Trainer(config, callbacks=callbacks).train()
    seconds = time.perf_counter() - started
    rows = read_metrics(Path(config.output_dir) / "metrics.jsonl")
    evals = [r for r in rows if r.get("eval/accuracy") is not None]
    return {
        "final": {k: evals[-1].get(k) for k in REPORTED},
        "curve": [(r["step"], r.get("eval/accuracy"), r.get("eval/alignment")) for r in evals],
        "seconds": seconds,
        "variance": callbacks[0].history if callbacks else [],
    }


def run_ppo(seed: int, args, env_id: str) -> dict:
    """SB3 PPO through DiscreteZoomActions; held-out accuracy on the test split."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from mapo_env.wrappers import DiscreteZoomActions

    def make(split: str):
        return DiscreteZoomActions(gym.make(env_id, split=split, alignment="lexical"), grid=4, image_size=64)

    started = time.perf_counter()
    model = PPO("MultiInputPolicy", make("train"), n_steps=512, batch_size=128, ent_coef=0.01, seed=seed, verbose=0)
    model.learn(total_timesteps=args.ppo_timesteps)
    env = make("test")
    correct, calls, episodes = 0, 0, args.eval_episodes
    for episode in range(episodes):
        obs, info = env.reset(seed=50_000 + episode, options={"index": episode})
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(int(model.predict(obs, deterministic=True)[0]))
            done = terminated or truncated
        correct += bool(info["correct"])
        calls += info["num_tool_calls"]
    return {
        "final": {"eval/accuracy": correct / episodes, "eval/tool_calls": calls / episodes},
        "seconds": time.perf_counter() - started,
    }


def mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None and not np.isnan(v)]
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def write_report(out: Path, results: dict, extra_rows: dict, variance: list[dict], total_seconds: float) -> None:
    """results.md, results.json and the two plots."""
    lines = [
        "| method | held-out accuracy | alignment | tool calls / episode | misaligned share | confident misses "
        "| wall time / run |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in {**results, **extra_rows}.items():
        cells = [mean_std([r["final"].get(k) for r in runs]) for k in REPORTED]
        seconds = statistics.mean(r["seconds"] for r in runs)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds:.0f} s |")
    ratios = [v for row in variance for k, v in row.items() if k.startswith("diag/grad_var_ratio/")]
    rel = [v for row in variance for k, v in row.items() if k.startswith("diag/grad_rel_var_ratio/")]
    lines += [
        "",
        "Gradient noise of MAPO's advantage vs GRPO's on identical rollout batches "
        f"({len(ratios)} measurements over the MAPO runs):",
        f"- variance ratio MAPO / GRPO: {mean_std(ratios)} (median {statistics.median(ratios):.3f})" if ratios else "",
        f"- noise-to-signal ratio MAPO / GRPO: {mean_std(rel)} (median {statistics.median(rel):.3f})" if rel else "",
        "",
        f"Total wall time: {total_seconds / 60:.1f} min.",
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(
            {"runs": results, "baselines": extra_rows, "variance": variance, "seconds": total_seconds}, indent=2
        )
        + "\n",
        encoding="utf-8",
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for index, (stem, label) in enumerate((("accuracy", "held-out accuracy"), ("alignment", "alignment")), start=1):
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        for name, runs in results.items():
            steps = [s for s, *_ in runs[0]["curve"]]
            series = np.array([[point[index] for point in r["curve"]] for r in runs], dtype=float)  # None -> nan
            if series.size == 0 or np.isnan(series).all():
                continue
            line = ax.plot(steps, np.nanmean(series, axis=0), label=name)[0]
            ax.fill_between(
                steps, np.nanmin(series, axis=0), np.nanmax(series, axis=0), color=line.get_color(), alpha=0.15
            )
        ax.set_xlabel("RL step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{stem}_vs_step.png")
        plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), help="algorithms to compare")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=30, help="RL steps per run")
    parser.add_argument("--questions-per-step", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--eval-points", type=int, default=3, help="evaluations per run (the last at the end)")
    parser.add_argument("--variance-every", type=int, default=5, help="gradient-noise measurement period (MAPO runs)")
    parser.add_argument("--ppo-timesteps", type=int, default=30_000)
    parser.add_argument("--init", help="cold-start checkpoint to start from (default: run the recipe's cold start)")
    parser.add_argument(
        "--cold-start-steps",
        type=int,
        default=470,
        help="stop that cold start after this many of the recipe's SFT steps (mid-way, so RL has room to improve)",
    )
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 algorithms, 1 seed, a few steps")
    args = parser.parse_args()
    if args.quick:
        args.algos, args.seeds, args.steps, args.eval_episodes = ["mapo", "grpo"], [0], 4, 20
        args.eval_points, args.variance_every, args.ppo_timesteps = 1, 2, 1024

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # the bundled recipe's defaults (env, cold start and its batch, optimiser); RL runs set their own rollout
    base = replace(TrainConfig(), eval_episodes=args.eval_episodes, save_every=0, progress_bar=False, threads=1)
    if args.quick:
        base, args.cold_start_steps = replace(base, sft_steps=20), 20
    init = Path(args.init) if args.init else cold_start(out, base, args.cold_start_steps)

    results = {algo: [run_algorithm(algo, seed, init, out, base, args) for seed in args.seeds] for algo in args.algos}
    baselines = {"sb3 ppo (discrete wrapper)": [run_ppo(seed, args, base.env.id) for seed in args.seeds]}

    from mapo_agent.policy import HFPolicy

    policy = HFPolicy.from_pretrained(str(init))
    eval_kwargs = {**base.env.kwargs, **base.env.eval_kwargs}
    for name, actor in (("cold-start checkpoint (no RL)", "policy"), ("oracle (upper bound)", "oracle")):
        t0 = time.perf_counter()
        report = evaluate(policy, base.env.id, eval_kwargs, num_questions=args.eval_episodes, actor=actor, seed=1)
        final = {**report.metrics, "eval/accuracy": report.accuracy}
        baselines[name] = [{"final": final, "seconds": time.perf_counter() - t0}]
    variance = [row for run in results.get("mapo", []) for row in run["variance"]]
    write_report(out, results, baselines, variance, time.perf_counter() - started)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
