"""Trainer throughput and memory: tokens/s and peak memory per configuration (group size, episode size).

Each configuration runs in its own process (so peak memory is its own): a few oracle-SFT steps of the
tiny agent (deterministic episodes: the oracle's turns) with 4 questions x ``group_size`` rollouts, on
MAPO-Tiles-v0 (2 turns, 112-px images: 16 image tokens each) and on MAPO-VStar-v0 at 448 px (2-3 turns,
up to 256 image tokens per image). Reports the median forward+backward tokens/s, the median episode
length in tokens, and the peak resident memory (CPU) or peak allocated GPU memory.

Usage: ``python benchmarks/trainer.py [--steps 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CONFIGS = [("MAPO-Tiles-v0", g) for g in (2, 4, 8, 16)] + [("MAPO-VStar-v0", g) for g in (2, 4, 8)]

CHILD = r"""
import json, resource, statistics, sys, tempfile, torch
from dataclasses import replace
from mapo_agent.config import TrainConfig, RolloutConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer
env_id, group_size, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    recipe = TrainConfig()
    env = recipe.env if env_id == recipe.env.id else replace(
        recipe.env, id=env_id, kwargs={"alignment": "lexical", "max_pixels": 448 * 448, "crop_max_pixels": 448 * 448})
    config = replace(recipe, steps=0, sft_steps=steps, output_dir=tmp, eval_every=0, eval_episodes=1, save_every=0,
                     progress_bar=False, threads=1, rollout=replace(recipe.rollout, questions_per_step=4,
                     group_size=group_size), env=env)
    Trainer(config).train()
    rows = read_metrics(f"{tmp}/metrics.jsonl")
tokens = statistics.median(r["train/tokens_per_s"] for r in rows)
length = statistics.median(r["train/tokens_per_s"] * r["time/update_s"] / (4 * group_size) for r in rows)
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"tokens_per_s": tokens, "episode_tokens": length, "peak_mb": peak}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"{'env':<16} {'questions x group':>18} {'tokens/episode':>15} {'tokens/s':>9} {'peak memory':>12}")
    for env_id, group_size in CONFIGS:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, env_id, str(group_size), str(args.steps)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        batch = f"4 x {group_size}"
        print(
            f"{env_id:<16} {batch:>18} {r['episode_tokens']:>15.0f} {r['tokens_per_s']:>9.0f} {r['peak_mb']:>9.0f} MB"
        )


if __name__ == "__main__":
    main()
