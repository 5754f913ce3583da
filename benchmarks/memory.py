"""Peak memory and step time of the tiny agent: env x stage (SFT, RL) x micro-batch token budget.

Each configuration runs in its own process, so its peak resident memory is its own: one training step
of the default recipe's batch (32 questions x 4 rollouts) with everything else at the run's defaults
(the tiny agent's per-env image sizes, turns and token caps, ``mapo_agent/agent_defaults.py``), then a
one-episode evaluation. ``sft``: one grounded-SFT step on the oracle's episodes; ``rl``: one MAPO step of
the *untrained* agent, whose turns run to ``max_new_tokens`` (the longest episodes RL will see). The
table gives the peak RSS of the process (``getrusage``, what ``summary.json`` reports), the seconds of
the step's rollout and update, the number of micro-batches and the largest one in padded tokens.

Usage: ``python benchmarks/memory.py [--envs MAPO-VStar-v0 ...] [--budgets 4096 8192 16384] [--stages sft rl]
[--gradient-checkpointing]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import mapo_env

CHILD = r"""
import json, sys, tempfile
from mapo_agent.config import EnvConfig, ModelConfig, OptimConfig, TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer
env_id, stage, budget, checkpointing = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
with tempfile.TemporaryDirectory() as tmp:
    config = TrainConfig(
        sft_steps=int(stage == "sft"), steps=int(stage == "rl"), output_dir=tmp, eval_episodes=1, save_every=0,
        progress_bar=False, threads=1, env=EnvConfig(id=env_id), optim=OptimConfig(max_tokens_per_micro_batch=budget),
        model=ModelConfig(gradient_checkpointing=checkpointing),
    )
    summary = Trainer(config).train()
    row = [r for r in read_metrics(f"{tmp}/metrics.jsonl") if "train/sequences" in r][0]
keys = ("time/rollout_s", "time/update_s", "train/micro_batches", "train/micro_batch_tokens_max", "train/sequences")
print(json.dumps({"peak_rss_mb": summary["peak_rss_mb"], **{k: row.get(k) for k in keys}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(mapo_env.ENV_IDS))
    parser.add_argument("--stages", nargs="+", default=["sft", "rl"], choices=["sft", "rl"])
    parser.add_argument("--budgets", nargs="+", type=int, default=[8192])
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print("| env | stage | budget (tokens) | peak RSS | rollout s | update s | micro-batches | largest | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for env_id in args.envs:
        for stage in args.stages:
            for budget in args.budgets:
                started = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, env_id, stage, str(budget), str(int(args.gradient_checkpointing))],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                wall = time.perf_counter() - started
                if out.returncode:
                    print(f"| {env_id} | {stage} | {budget} | failed: {out.stderr.strip().splitlines()[-1]} |||||")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"| {env_id} | {stage} | {budget} | {r['peak_rss_mb'] / 1024:.2f} GB | {r['time/rollout_s']:.0f} "
                    f"| {r['time/update_s']:.0f} | {r['train/micro_batches']:.0f} "
                    f"| {r['train/micro_batch_tokens_max']:.0f} | {wall:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
