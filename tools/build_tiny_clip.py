"""Build the bundled tiny CLIP (``mapo_env/assets/tiny_clip``): train it on the procedural scenes and evaluate it.

Recipe of the shipped model (one CPU thread)::

    python tools/build_tiny_clip.py --out mapo_env/assets/tiny_clip --threads 1

What it does (see :mod:`tools.tiny_clip`): 30,085 crops of 3,450 train-split scenes of the four
procedural families (Tiles 2,000, V*-like 700, HR-Bench-like 500, TextSpot 250), 3,000 contrastive steps
of 96 crops at 112 px, model selection on 80 unseen train-split scenes per family, CLIPScore calibration,
then the held-out evaluation on the first 300 test-split scenes of each family.

Measured for the shipped model (``mapo_env/assets/tiny_clip/training_report.json``):

- time: 1,384 CPU seconds on one thread (about 23 minutes: crops 208 s, training 1,062 s, evaluation
  114 s); on two cores shared with other jobs it took 46 minutes of wall-clock time;
- truthful caption vs the caption of another object of the same scene, held out: Tiles 100 %, V*-like
  100 %, HR-Bench-like 100 %, TextSpot 98 %;
- truthful caption vs the same caption with one attribute changed, held out: 100 % for colour, kind and
  tile pattern on Tiles, V*-like and HR-Bench-like scenes; TextSpot 77 % (colour) and 76 % (kind).

``--steps 0`` writes a random, untrained model (a second); ``--evaluate-only`` re-measures the held-out
rates of the model in ``--out`` and updates its report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.tiny_clip.model import build_tiny_clip  # noqa: E402
from tools.tiny_clip.train import TrainConfig, evaluate_folder, train_tiny_clip  # noqa: E402


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
    parser.add_argument(
        "--evaluate-only", action="store_true", help="only (re)measure the held-out rates of the model in --out"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.evaluate_only:
        report_path = args.out / "training_report.json"
        report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
        report |= evaluate_folder(args.out, args.eval_scenes)
        report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        logging.getLogger(__name__).info("held-out: %s", json.dumps(report["heldout_same_scene"]))
        return
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
