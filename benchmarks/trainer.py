"""Trainer throughput and memory: tokens/s and peak memory per configuration (group size, turns, image size).

Each configuration runs in its own process (so peak memory is its own): a few GRPO steps of the
untrained tiny agent with 4 questions x ``group_size`` rollouts. An untrained model never answers, so
every episode runs all ``max_turns`` turns at the full token budget (32 new tokens per turn): episode
length is set by the configuration, not by luck. Environments: MAPO-Tiles-v0 (112-px images: 16 image
tokens each) and MAPO-VStar-v0 at 448 px (up to 256 image tokens per image). Reports the median
episode length in tokens, the forward+backward tokens/s of the update, the median seconds of the
update and of generation per step, and the peak resident memory (CPU) or peak allocated GPU memory.

Usage: ``python benchmarks/trainer.py [--steps 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CONFIGS = (
    [("MAPO-Tiles-v0", g, 2) for g in (2, 4, 8, 16)]
    + [("MAPO-Tiles-v0", 4, t) for t in (1, 4, 8)]
    + [("MAPO-VStar-v0", g, 2) for g in (2, 4, 8)]
)

CHILD = r"""
import json, resource, statistics, sys, tempfile, torch
from mapo_agent.config import EnvConfig, RolloutConfig, TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer
env_id, group_size, turns, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
kwargs = {"alignment": "lexical", "max_turns": turns}
if env_id != "MAPO-Tiles-v0":
    kwargs.update(max_pixels=448 * 448, crop_max_pixels=448 * 448)
with tempfile.TemporaryDirectory() as tmp:
    config = TrainConfig(algo="grpo", steps=steps, sft_steps=0, output_dir=tmp, eval_every=0, eval_episodes=1,
                         save_every=0, progress_bar=False, threads=1, env=EnvConfig(id=env_id, kwargs=kwargs),
                         rollout=RolloutConfig(questions_per_step=4, group_size=group_size, max_new_tokens=32))
    Trainer(config).train()
    rows = [r for r in read_metrics(f"{tmp}/metrics.jsonl") if "train/sequences" in r]
median = lambda key: statistics.median(r[key] for r in rows)
length = statistics.median(r["train/tokens_per_s"] * r["time/update_s"] / r["train/sequences"] for r in rows)
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"tokens_per_s": median("train/tokens_per_s"), "episode_tokens": length, "peak_mb": peak,
                  "update_s": median("time/update_s"), "generate_s": median("time/generate_s")}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    header = f"{'env':<16} {'questions x group':>18} {'turns':>5} {'tokens/episode':>15} {'tokens/s':>9}"
    print(header + f" {'update s':>9} {'generate s':>11} {'peak memory':>12}")
    for env_id, group_size, turns in CONFIGS:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, env_id, str(group_size), str(turns), str(args.steps)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        batch = f"4 x {group_size}"
        print(
            f"{env_id:<16} {batch:>18} {turns:>5} {r['episode_tokens']:>15.0f} {r['tokens_per_s']:>9.0f}"
            f" {r['update_s']:>9.2f} {r['generate_s']:>11.2f} {r['peak_mb']:>9.0f} MB"
        )


if __name__ == "__main__":
    main()
