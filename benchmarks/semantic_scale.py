"""How should MAPO scale its semantic term? Gradient noise of each candidate vs GRPO on identical rollouts.

MAPO's variance argument (arXiv 2604.06777, App. A.2, as summarised by its readers) needs the semantic
signal to vary less than the outcome (σ_Sem < σ_Out). Whether it does depends on how the centred
semantic score S − mean_G S is scaled before it is added to the outcome advantage. This script
measures each candidate on the *same* rollout batches of one checkpoint:

- ``center``: β·(S − mean_G S) (S in [0, 1] keeps the term small);
- ``std_floor``: β·(S − mean_G S) / max(std_G S, 0.1);
- ``zscore``: β·(S − mean_G S) / (std_G S + eps) (the earlier default);
- ``reward_mix``: norm_G((1 − β)·R + β·S); ``gate``: A_out·(1 + β·A_sem);
- and the rule choices: no-tool rollouts at S = 0 instead of left out; failed calls skipped instead
  of counted as s = 0.

For each batch it draws the same sub-batches of question groups for every candidate
(:func:`mapo_agent.diagnostics.gradient_noise`) and reports, over batches, the ratio of each
candidate's gradient variance to GRPO's and of its noise-to-signal ratio (variance / ‖E g‖²) to
GRPO's (median and mean ± std). The loss is the same for all (GRPO's PPO-clip at ratio 1, no KL:
the policy is the reference at the measurement), so only the advantage differs.

Usage::

    python benchmarks/semantic_scale.py --init runs/cold/final --batches 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mapo_agent.algorithms import RunContext, make_algorithm
from mapo_agent.diagnostics import gradient_noise
from mapo_agent.policy import HFPolicy
from mapo_agent.rollout import RolloutWorker

CANDIDATES: dict[str, dict] = {
    "grpo": {},
    "center": {"semantic_scale": "center"},
    "std_floor": {"semantic_scale": "std_floor", "semantic_std_floor": 0.1},
    "zscore": {"semantic_scale": "zscore"},
    "reward_mix": {"combine": "reward_mix"},
    "gate": {"combine": "gate", "semantic_scale": "zscore"},
    "center, no-tool S=0": {"semantic_scale": "center", "no_tool_policy": "zero"},
    "center, failed calls skipped": {"semantic_scale": "center", "invalid_call_policy": "skip"},
}


def build_algorithms(max_new_tokens: int, max_turns: int) -> dict:
    context = RunContext(max_new_tokens=max_new_tokens, max_turns=max_turns)
    algorithms = {}
    for name, advantage in CANDIDATES.items():
        algo = "grpo" if name == "grpo" else "mapo"
        kwargs = {"kl_coef": 0.0} | ({"advantage": advantage} if advantage else {})
        algorithms[name] = make_algorithm(algo, **kwargs).bind(context)
    return algorithms


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", required=True, help="checkpoint whose rollouts are measured (e.g. a cold start)")
    parser.add_argument("--env", default="MAPO-Tiles-v0")
    parser.add_argument("--env-kwargs", default="{}", help="JSON dict of gym.make kwargs")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--resamples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", default="runs/semantic_scale.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    policy = HFPolicy.from_pretrained(args.init, max_new_tokens=args.max_new_tokens)
    worker = RolloutWorker(args.env, json.loads(args.env_kwargs))
    max_turns = int(worker.envs_sample().unwrapped.max_turns)
    algorithms = build_algorithms(args.max_new_tokens, max_turns)
    rows = []
    started = time.perf_counter()
    for batch in range(args.batches):
        torch.manual_seed(batch)
        policy.eval()
        questions = [(batch * args.questions + q) * 7 % worker.dataset_size for q in range(args.questions)]
        trajectories = worker.run(policy, questions, args.group_size, seed=10_000 + batch * args.questions)
        policy.train()
        noise = gradient_noise(
            policy, policy.trainable_parameters(), trajectories, algorithms, resamples=args.resamples, seed=batch
        )
        ref = noise["grpo"]
        row = {
            "batch": batch,
            "accuracy": sum(t.correct for t in trajectories) / len(trajectories),
            "tool_calls": sum(t.num_tool_calls for t in trajectories) / len(trajectories),
            "variance_ratio": {n: s.variance / ref.variance for n, s in noise.items()},
            "noise_to_signal_ratio": {n: s.relative_variance / ref.relative_variance for n, s in noise.items()},
        }
        rows.append(row)
        print(
            f"batch {batch}: accuracy {row['accuracy']:.2f}, "
            + ", ".join(f"{n} {v:.3f}" for n, v in row["variance_ratio"].items())
        )
    table = {
        name: {
            "variance_ratio": summarise([r["variance_ratio"][name] for r in rows]),
            "noise_to_signal_ratio": summarise([r["noise_to_signal_ratio"][name] for r in rows]),
        }
        for name in CANDIDATES
    }
    lines = [
        f"Gradient noise vs GRPO on {len(rows)} identical rollout batches ({args.questions} questions x "
        f"{args.group_size} rollouts, {args.resamples} half-batch resamples each) of {args.init}, "
        f"{(time.perf_counter() - started) / 60:.1f} min:",
        "",
        "| advantage | variance / GRPO's (median; mean ± std) | noise-to-signal / GRPO's (median; mean ± std) |",
        "|---|---:|---:|",
    ]
    for name, stats in table.items():
        v, r = stats["variance_ratio"], stats["noise_to_signal_ratio"]
        lines.append(
            f"| {name} | {v['median']:.3f}; {v['mean']:.3f} ± {v['std']:.3f} "
            f"| {r['median']:.3f}; {r['mean']:.3f} ± {r['std']:.3f} |"
        )
    print("\n".join(lines))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "table": table, "args": vars(args)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
