"""``mapo-train``: train a multimodal policy to think with images (SFT cold start, then RL)."""

from __future__ import annotations

import logging
import sys

from mapo_agent.cli.args import parse_dataclass
from mapo_agent.config import TrainConfig
from mapo_env.errors import MapoError

DESCRIPTION = """\
Train a Hugging Face multimodal model (Qwen2-VL / Qwen2.5-VL family) to answer questions about large
images by zooming in: an optional SFT cold start on the environment oracle's trajectories, then RL
with MAPO (alignment of each crop's description with the crop, coupled with the task reward) or a
peer (grpo, dr_grpo, dapo, rloo, papo, vgpo).

With no arguments: the bundled tiny Qwen2.5-VL agent on MAPO-Tiles-v0 (CPU, a few minutes per
hundred steps), oracle SFT then MAPO. Writes config.json, metrics.jsonl, plots/, checkpoints/,
final/ (a loadable model folder), eval.json/eval.md and summary.json to --output-dir.
"""

EPILOG = """\
examples:
  mapo-train                                              # the bundled recipe
  mapo-train --algo grpo --output-dir runs/grpo           # a peer, same everything else
  mapo-train --algo mapo --algo-kwargs advantage='{"combine": "gate"}'
  mapo-train --env.id MAPO-VStar-v0 --model.name-or-path Qwen/Qwen2.5-VL-3B-Instruct --model.lora-rank 64 \\
             --sft-steps 0 --rollout.max-new-tokens 512
  mapo-train --resume --output-dir runs/mapo-tiles        # continue exactly where a run stopped
  accelerate launch --num_processes 2 --cpu -m mapo_agent.cli.train --steps 4   # several processes (DDP)
"""


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, print the summary; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("accelerate", "matplotlib", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        config = parse_dataclass(TrainConfig, argv, "mapo-train", DESCRIPTION, EPILOG)
        from mapo_agent.trainer import Trainer

        summary = Trainer(config).train()
    except MapoError as error:
        print(f"mapo-train: error: {error}", file=sys.stderr)
        return 2
    if summary.get("process_index", 0) != 0:  # one report per run, from the main process
        return 0
    accuracy = summary.get("avg@1")
    if accuracy is not None:
        ci, episodes = 100 * summary["ci95"], summary["num_questions"]
        print(f"held-out accuracy {100 * accuracy:.1f}% ± {ci:.1f} ({episodes} episodes)")
    print(f"run written to {config.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
