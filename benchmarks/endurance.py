"""Endurance: resident memory over many episodes and many training steps (no leaks), decode-once caching.

1. For every registered env: ``--episodes`` episodes of random actions (the action space's own sampler:
   valid zooms, answers and garbage), cycling over ``--scenes`` samples; RSS after a warm-up and at the
   end.
2. With real V* data (``--vstar DIR``): the same over the real images, with the image cache's
   hit/miss counters: every image is decoded once while it stays cached.
3. ``--train-steps N``: N steps of the tiny agent's default training recipe (first a fifth of them
   SFT, then RL, with a smaller batch); RSS every 50 steps after freeing the allocator's unused heap, and
   after the run.

Usage: ``python benchmarks/endurance.py [--episodes 10000] [--train-steps 500] [--vstar path/to/vstar_bench]
[--envs MAPO-Tiles-v0 ...]`` (``--envs`` with no id skips the random episodes).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import tempfile
import time
from dataclasses import replace

import gymnasium as gym

import mapo_env


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def random_episodes(env_id: str, episodes: int, scenes: int, warmup: int = 200, **kwargs) -> dict[str, float]:
    """Play random episodes; returns RSS after ``warmup`` episodes and at the end, and the step count."""
    env = gym.make(env_id, alignment="lexical", **kwargs)
    env.action_space.seed(0)
    steps, start_rss = 0, float("nan")
    started = time.perf_counter()
    for episode in range(episodes):
        if episode == warmup:
            gc.collect()
            start_rss = rss_mb()
        env.reset(seed=episode, options={"index": episode % scenes})
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            done = terminated or truncated
    gc.collect()
    env.close()
    return {"start_mb": start_rss, "end_mb": rss_mb(), "steps": steps, "seconds": time.perf_counter() - started}


def release_free_heap() -> None:
    """Collect garbage and hand free heap pages back to the OS (glibc ``malloc_trim``), so RSS shows live memory.

    Without it RSS is the allocator's high-water mark: one long batch raises it for good, which looks
    like a leak but is not one.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def training_rss(steps: int, questions: int, group_size: int, every: int = 50) -> dict[str, object]:
    """RSS every ``every`` steps of a ``steps``-step default run (cold start included), after freeing heap.

    The recipe's settings except the batch: ``questions`` x ``group_size`` rollouts per step (the recipe's
    32 x 4 makes 500 steps take an hour on 2 CPU cores; memory per step does not depend on the count of steps).
    """
    from mapo_agent.config import TrainConfig
    from mapo_agent.trainer import Trainer

    marks: dict[int, float] = {}

    class Probe:
        def on_step_end(self, trainer, step, metrics):
            if (step + 1) % every == 0:
                release_free_heap()
                marks[step + 1] = rss_mb()

    with tempfile.TemporaryDirectory() as tmp:
        recipe = TrainConfig()
        sft = min(recipe.sft_steps, steps // 5)
        rollout = replace(recipe.rollout, questions_per_step=questions, group_size=group_size)
        config = replace(recipe, steps=steps - sft, sft_steps=sft, output_dir=tmp, eval_every=0, eval_episodes=20,
                         save_every=100, progress_bar=False, threads=1, rollout=rollout)  # fmt: skip
        started = time.perf_counter()
        Trainer(config, callbacks=[Probe()]).train()
    release_free_heap()
    return {"marks": marks, "sft_steps": sft, "end_mb": rss_mb(), "steps": steps,
            "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=10_000, help="random episodes per env")
    parser.add_argument("--scenes", type=int, default=16, help="distinct samples cycled through")
    parser.add_argument("--vstar", help="real V* Bench folder (optional)")
    parser.add_argument("--envs", nargs="*", default=list(mapo_env.ENV_IDS), help="env ids (none: skip the envs)")
    parser.add_argument("--train-steps", type=int, default=0, help="training steps of the tiny agent (0 = skip)")
    parser.add_argument("--train-questions", type=int, default=8, help="questions per training step")
    parser.add_argument("--train-group-size", type=int, default=4, help="rollouts per question")
    args = parser.parse_args()

    print(f"Random episodes ({args.episodes} per env, {args.scenes} scenes cycled): resident memory")
    print(f"{'env':<22} {'steps':>7} {'RSS after warm-up':>18} {'RSS at end':>11} {'growth':>8} {'time':>7}")
    runs = [(env_id, {}) for env_id in args.envs]
    if args.vstar:
        runs.append(("MAPO-VStar-v0", {"data_dir": args.vstar}))
    for env_id, kwargs in runs:
        name = env_id + (" (real)" if kwargs else "")
        r = random_episodes(env_id, args.episodes, args.scenes, **kwargs)
        print(f"{name:<22} {r['steps']:>7} {r['start_mb']:>15.1f} MB {r['end_mb']:>8.1f} MB "
              f"{r['end_mb'] - r['start_mb']:>+6.1f}MB {r['seconds']:>6.0f}s")  # fmt: skip
    if args.vstar:
        from mapo_env.data.io import default_image_cache

        stats = default_image_cache().stats()
        print(f"\nV* image cache: {stats}  (misses = images decoded; each of the {args.scenes} scenes once)")
    if args.train_steps:
        r = training_rss(args.train_steps, args.train_questions, args.train_group_size)
        minutes = r["seconds"] / 60
        print(f"\nTraining {r['steps']} steps of the tiny agent ({r['sft_steps']} SFT, then RL; {minutes:.1f} min)")
        print("RSS after step: " + ", ".join(f"{step}: {mb:.0f} MB" for step, mb in r["marks"].items()))
        print(f"RSS after the run (final evaluation, save, plots): {r['end_mb']:.0f} MB")


if __name__ == "__main__":
    main()
