"""Where the time of a training step goes: model (generate, forward/backward) vs everything else.

Runs a short tiny-agent training run (a brief oracle cold start so turns have realistic lengths, then
RL steps) and prints, per RL step, the median seconds of each phase and the share of wall time spent
outside model forward/generate: environment (crop, parsing, alignment scoring), tokenising observations
and encoding images, collating batches, and computing advantages. Target: under 10%.

Usage: ``python benchmarks/rollout.py [--steps 10] [--sft-steps 40] [--algo mapo] [--init CHECKPOINT]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace

from mapo_agent.config import TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer

PHASES = (
    ("generate (model)", "time/generate_s"),
    ("env: crop, parse, score", "time/env_s"),
    ("tokenise + encode images", "time/tokenize_s"),
    ("collate batches", "time/collate_s"),
    ("advantages, metrics", "time/prepare_s"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="RL steps measured")
    parser.add_argument("--sft-steps", type=int, default=40, help="oracle cold-start steps first (not measured)")
    parser.add_argument("--algo", default="mapo")
    parser.add_argument("--init", help="start from this checkpoint instead (then --sft-steps 0 is sensible)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        recipe = TrainConfig()
        config = replace(
            recipe,
            algo=args.algo,
            steps=args.steps,
            sft_steps=args.sft_steps,
            output_dir=tmp,
            eval_every=0,
            eval_episodes=8,
            save_every=0,
            progress_bar=False,
            threads=args.threads,
            model=replace(recipe.model, name_or_path=args.init),
        )
        Trainer(config).train()
        rows = [r for r in read_metrics(f"{tmp}/metrics.jsonl") if r.get("train/stage") == 0.0 and "time/env_s" in r]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    total = median("time/rollout_s") + median("time/prepare_s") + median("time/update_s")
    model_update = median("time/update_s") - median("time/collate_s")
    batch = f"{config.rollout.questions_per_step} questions x {config.rollout.group_size}"
    print(f"{len(rows)} RL steps of {args.algo}: {batch}")
    print(f"{'phase':<28} {'median s/step':>14} {'share':>7}")
    for name, key in PHASES:
        print(f"{name:<28} {median(key):>14.3f} {median(key) / total:>7.1%}")
    print(f"{'forward/backward (model)':<28} {model_update:>14.3f} {model_update / total:>7.1%}")
    shares = [r["time/step_outside_model_share"] for r in rows]
    print(f"\nshare of the step outside model forward/generate: median {statistics.median(shares):.1%}, "
          f"max {max(shares):.1%}")  # fmt: skip
    tokens = statistics.median(r["train/tokens_per_s"] for r in rows)
    print(f"training throughput: {tokens:.0f} tokens/s (forward+backward)")


if __name__ == "__main__":
    main()
