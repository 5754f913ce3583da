"""Alignment scoring throughput: descriptions per second per scorer, batched vs one by one.

Builds requests from real environment crops (procedural V*-style scenes: oracle zooms, each with its
truthful label) and times each scorer on a cold cache (every text new) and a warm cache (texts seen
before: the common case in RL, where labels repeat). Model loading is excluded (done once per process).

Usage: ``python benchmarks/alignment.py [--requests 256] [--scorers lexical annotation clip:tiny]``
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import mapo_env  # noqa: F401
from mapo_env.alignment import AlignmentRequest, make_scorer
from mapo_env.oracle import Oracle


def crops(n: int) -> list[AlignmentRequest]:
    """``n`` requests: oracle crops of procedural V* scenes, each described by a label made unique."""
    env = gym.make("MAPO-VStar-v0", alignment=None)
    oracle = Oracle(env)
    requests = []
    scene = 0
    while len(requests) < n:
        obs, _ = env.reset(seed=scene, options={"index": scene})
        obs, *_ = env.step(oracle.act(obs))
        base = env.unwrapped
        target = base.current_sample.targets[0]
        requests.append(
            AlignmentRequest(
                text=f"{target.name} number {scene}",  # distinct texts: a cold cache
                crop=obs["images"][1],
                crop_box=base.image_frames[1].region,
                objects_in_crop=base.objects_in(1),
                question=base.current_sample.question,
            )
        )
        scene += 1
    return requests


def rate(scorer, requests: list[AlignmentRequest], batch: int) -> float:
    """Requests per second scoring in batches of ``batch``."""
    started = time.perf_counter()
    for i in range(0, len(requests), batch):
        scorer.score_batch(requests[i : i + batch])
    return len(requests) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--scorers", nargs="+", default=["lexical", "annotation", "clip:tiny"])
    args = parser.parse_args()
    requests = crops(args.requests)
    print(f"{len(requests)} oracle crops of procedural V* scenes; descriptions scored per second")
    print(f"{'scorer':<12} {'one by one':>11} {'batch of 64':>12} {'batched speed-up':>17} {'warm cache (64)':>16}")
    for spec in args.scorers:
        single = make_scorer(spec)
        single.score_batch(requests[:2])  # load the model outside the timing
        one = rate(single, requests[: len(requests) // 2], 1)
        batched_scorer = make_scorer(spec)
        batched_scorer.score_batch(requests[:2])
        batched = rate(batched_scorer, requests[len(requests) // 2 :], 64)
        warm = rate(batched_scorer, requests[len(requests) // 2 :], 64)  # same texts again
        print(f"{spec:<12} {one:>11.0f} {batched:>12.0f} {batched / one:>16.1f}x {warm:>16.0f}")


if __name__ == "__main__":
    main()
