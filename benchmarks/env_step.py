"""Environment speed: a zoom step vs a bare OpenCV crop+resize of the same region, reset time, growth.

Prints tables of ratios measured in one run (no thresholds: machines are noisy):

1. zoom ``step`` (alignment off) vs ``cv2.resize(image[region])`` to the same output size, for 1K, 4K
   (4000x3000) and 8K images; the step includes parsing, validation, the crop, the observation copy
   and the info dict;
2. ``reset`` time per registered env (first draw of a procedural scene, and a cached reset as in a
   GRPO group);
3. how step time grows with the number of crops already in the observation (turns).

Usage: ``python benchmarks/env_step.py [--repeats 200]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import gymnasium as gym
import numpy as np

import mapo_env
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.data.base import ListDataset
from mapo_env.geometry import resize_interpolation, smart_resize
from mapo_env.types import VQASample

SIZES = {"1K": (1024, 768), "4K (4000x3000)": (4000, 3000), "8K (7680x4320)": (7680, 4320)}


def _sample(width: int, height: int) -> VQASample:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image.flags.writeable = False
    return VQASample("bench", "Q?", ("a", "b"), 0, "bench", lambda: image, (width, height))


def _rewind(env: ThinkWithImagesEnv, crops: int) -> None:
    """Undo the last zoom step so every timed step sees the same observation size."""
    episode = env._episode
    del episode.images[crops + 1 :], episode.frames[crops + 1 :], episode.crop_boxes[crops:]
    del episode.messages[2 + 2 * crops :]
    episode.turn = episode.num_tool_calls = crops


def _median_ms(fn, repeats: int, after=None) -> float:
    """Median wall time of ``fn()`` in ms; ``after()`` (untimed) runs after each call."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        if after is not None:
            after()
    return statistics.median(times)


def zoom_vs_opencv(repeats: int) -> list[tuple[str, float, float, float]]:
    """Median ms of a zoom step and of the bare crop+resize, per image size."""
    rows = []
    for name, (width, height) in SIZES.items():
        env = ThinkWithImagesEnv(ListDataset("bench", [_sample(width, height)]), alignment=None, max_turns=10**6)
        env.reset(seed=0)
        image = env.current_sample.load_image()
        region = (width // 3, height // 3, width // 3 + width // 4, height // 3 + height // 4)
        out_h, out_w = smart_resize(
            region[3] - region[1], region[2] - region[0], 28, env.crop_min_pixels, env.crop_max_pixels
        )
        call = mapo_env.actions.format_tool_call(env.image_frames[0].from_original(region, "pixel"), label="object")

        def step(env=env, call=call):
            env.step(call)

        def bare(image=image, region=region, size=(out_w, out_h)):
            x1, y1, x2, y2 = region
            interpolation = resize_interpolation((x2 - x1, y2 - y1), size)  # the env's own rule
            cv2.resize(image[y1:y2, x1:x2], size, interpolation=interpolation)

        for _ in range(5):  # warm-up
            step()
            _rewind(env, 0)
            bare()
        step_ms = _median_ms(step, repeats, after=lambda env=env: _rewind(env, 0))
        bare_ms = _median_ms(bare, repeats)
        rows.append((name, step_ms, bare_ms, step_ms / bare_ms))
    return rows


def reset_times(repeats: int) -> list[tuple[str, float, float]]:
    """Median ms of a reset on a new procedural scene, and of a reset on the same (cached) scene."""
    rows = []
    for env_id in mapo_env.ENV_IDS:
        env = gym.make(env_id, alignment=None)
        n = max(3, repeats // 40)
        indices = iter(range(1, 10**6))
        fresh = _median_ms(lambda env=env, indices=indices: env.reset(options={"index": next(indices)}), n)
        cached = _median_ms(lambda env=env: env.reset(options={"index": 0}), n)
        rows.append((env_id, fresh, cached))
    return rows


def step_vs_turns(repeats: int) -> list[tuple[int, float]]:
    """Median ms of a zoom step on a 4K image with k crops already in the observation."""
    env = ThinkWithImagesEnv(ListDataset("bench", [_sample(4000, 3000)]), alignment=None, max_turns=10**6)
    call = mapo_env.actions.format_tool_call((300, 200, 500, 400), label="object")
    rows = []
    for kept in (0, 2, 5, 10):
        env.reset(seed=0)
        for _ in range(kept):
            env.step(call)

        rows.append((kept, _median_ms(lambda env=env: env.step(call), repeats, after=lambda k=kept: _rewind(env, k))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="timed repetitions per measurement")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    cv2.setNumThreads(cv2.getNumThreads())

    zoom = zoom_vs_opencv(args.repeats)
    print("Zoom step vs bare OpenCV crop+resize of the same region (median ms)")
    print(f"{'image':<16} {'env.step':>9} {'cv2 crop+resize':>16} {'ratio':>6}")
    for name, step_ms, bare_ms, ratio in zoom:
        print(f"{name:<16} {step_ms:>9.3f} {bare_ms:>16.3f} {ratio:>6.2f}")

    resets = reset_times(args.repeats)
    print("\nreset() per environment (median ms)")
    print(f"{'env':<20} {'new scene':>10} {'same scene':>11}")
    for env_id, fresh, cached in resets:
        print(f"{env_id:<20} {fresh:>10.2f} {cached:>11.3f}")

    turns = step_vs_turns(args.repeats)
    print("\nZoom step on a 4000x3000 image vs crops already in the observation (median ms)")
    print(f"{'crops kept':>10} {'env.step':>9} {'vs 0 crops':>11}")
    for kept, ms in turns:
        print(f"{kept:>10} {ms:>9.3f} {ms / turns[0][1]:>11.2f}")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"zoom": zoom, "reset": resets, "turns": turns}, fh, indent=2)


if __name__ == "__main__":
    main()
