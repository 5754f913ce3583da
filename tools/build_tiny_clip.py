"""Build the bundled tiny CLIP (``mapo_env/assets/tiny_clip``): train it on the procedural scenes and evaluate it.

Recipe of the shipped model (one CPU thread)::

    python tools/build_tiny_clip.py --out mapo_env/assets/tiny_clip --threads 1

Measured: see ``mapo_env/assets/tiny_clip/training_report.json`` (time, validation history, held-out
accuracies per scene family). ``--steps 0`` writes a random, untrained model (a second). See
:mod:`tools.tiny_clip` for what each part does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.tiny_clip.model import build_tiny_clip  # noqa: E402
from tools.tiny_clip.train import TrainConfig, train_tiny_clip  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Command line; ``--help`` lists the options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the model to")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="training steps (0: random model only)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of training scenes")
    parser.add_argument("--eval-scenes", type=int, default=TrainConfig.eval_scenes)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.steps == 0:
        build_tiny_clip(args.out, seed=args.seed)
        return
    scenes = {k: max(1, round(v * args.scale)) for k, v in TrainConfig().scenes.items()}
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, seed=args.seed, scenes=scenes, eval_scenes=args.eval_scenes
    )
    command = " ".join(["python tools/build_tiny_clip.py", *(argv if argv is not None else sys.argv[1:])])
    report = train_tiny_clip(args.out, config, command=command)
    logging.getLogger(__name__).info("held-out: %s", json.dumps(report["heldout_same_scene"]))


if __name__ == "__main__":
    main()
