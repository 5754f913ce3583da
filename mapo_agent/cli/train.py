"""``mapo-train``: train a multimodal policy to think with images (SFT cold start, then RL)."""

from __future__ import annotations

import logging
import os
import sys

from mapo_agent.cli import checks
from mapo_agent.cli.checks import report_error
from mapo_agent.config import TrainConfig
from mapo_env.errors import ConfigError, MapoError

PROG = "mapo-train"

DESCRIPTION = """\
Train a Hugging Face multimodal model (Qwen2-VL / Qwen2.5-VL family) to answer questions about large
images by zooming in: an optional SFT cold start on the environment oracle's trajectories, then RL
with MAPO (alignment of each crop's description with the crop, coupled with the task reward) or any
other algorithm of the registry (listed with their options at the end).

With no arguments: the bundled tiny Qwen2.5-VL agent on MAPO-Tiles-v0 (CPU), oracle SFT then MAPO,
written to runs/mapo-tiles/ (--output-dir): config.json, metrics.jsonl, plots/, checkpoints/, final/
(a loadable model folder), eval.json/eval.md and summary.json. The progress bar shows the stage; in
the SFT stage the model's SFT loss (the rollouts are the oracle's demonstrations, so their reward
says nothing about the model), in the RL stage the reward and accuracy of the model's own rollouts,
and the last held-out accuracy.

Overwrite rule (the same for mapo-eval, mapo-viz and mapo-train): a run already in --output-dir is
never replaced silently; pass --resume to continue it, --overwrite to replace it, or another
--output-dir. Every argument, the environment and its kwargs, the model path and the output folder
are checked before the model is loaded; errors are one line and exit code 2.
"""

EPILOG = """\
examples:
  mapo-train                                              # the bundled recipe, into runs/mapo-tiles
  mapo-train --algo grpo --output-dir runs/grpo           # a peer, same everything else
  mapo-train --algo mapo --algo-kwargs advantage='{"combine": "gate"}' --output-dir runs/gate
  mapo-train --env.id MAPO-VStar-v0 --model.name-or-path Qwen/Qwen2.5-VL-3B-Instruct --model.lora-rank 64 \\
             --sft-steps 0 --rollout.max-new-tokens 512 --output-dir runs/vstar-3b
  mapo-train --resume --output-dir runs/mapo-tiles        # continue exactly where a run stopped
  mapo-train --overwrite                                  # start runs/mapo-tiles again from scratch
  accelerate launch --num_processes 2 --cpu -m mapo_agent.cli.train --steps 4   # several processes (DDP)
"""


def algorithm_options() -> str:
    """Every registered algorithm's options with their defaults (for ``--algo-kwargs`` / ``--sft-kwargs``)."""
    import dataclasses
    import textwrap

    from mapo_agent.algorithms import ALGORITHMS, AdvantageConfig

    def fields(cls: type) -> str:
        items = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            items.append(f"{f.name}=" + ("{...}" if dataclasses.is_dataclass(default) else repr(default)))
        return ", ".join(items)

    lines = ["", "algorithm options (--algo-kwargs KEY=VALUE ...; checked before anything loads):"]
    for name in ALGORITHMS.names():
        text = f"{name}: {fields(ALGORITHMS.get(name).config_class)}"
        lines += textwrap.wrap(text, 110, initial_indent="  ", subsequent_indent="      ")
    text = 'advantage (the estimators\' settings, e.g. advantage=\'{"semantic_scale": "center"}\'): ' + fields(
        AdvantageConfig
    )
    lines += textwrap.wrap(text, 110, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


RUN_ENTRIES = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "eval.json",
    "eval.md",
    "checkpoints",
    "final",
    "plots",
    "tensorboard",
)
"""What a run writes into its output folder (``--overwrite`` deletes exactly these)."""


def main(argv: list[str] | None = None) -> int:
    """Parse and check the arguments, train, print the summary; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("accelerate", "matplotlib", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    config = checks.parse_command_line(TrainConfig, argv, PROG, DESCRIPTION, EPILOG + algorithm_options())
    if isinstance(config, int):
        return config
    try:
        preflight(config)
        from mapo_agent.trainer import Trainer

        with checks.model_loading("--model.name-or-path", config.model.name_or_path):
            trainer = Trainer(config)
        try:
            summary = trainer.train()
        finally:
            trainer.close()
    except MapoError as error:
        return report_error(PROG, error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue from the last checkpoint with --resume", file=sys.stderr)
        return 130
    if summary.get("process_index", 0) != 0:  # one report per run, from the main process
        return 0
    accuracy = summary.get("avg@1")
    if accuracy is not None:
        ci, episodes = 100 * summary["ci95"], summary["num_questions"]
        print(f"held-out accuracy {100 * accuracy:.1f}% ± {ci:.1f} ({episodes} episodes)")
    if "peak_rss_mb" in summary:
        print(
            f"memory: micro-batches of <= {summary['max_tokens_per_micro_batch']} tokens, generation chunks of <= "
            f"{summary['max_tokens_per_generation']} tokens; peak RSS {summary['peak_rss_mb'] / 1024:.2f} GB"
        )
    print(f"run written to {config.output_dir}")
    return 0


def preflight(config: TrainConfig) -> None:
    """Every check that needs no model: algorithms, environments of every stage, model, output folder.

    With ``--overwrite`` (on the main process) the earlier run's entries are deleted here, once
    everything else passed. Raises a :class:`MapoError`.
    """
    from mapo_agent.algorithms import make_algorithm

    for flag, name, kwargs, used in (
        ("--algo-kwargs", config.algo, config.algo_kwargs, config.steps > 0),
        ("--sft-kwargs", config.sft_algo, config.sft_kwargs, config.sft_steps > 0),
    ):
        if used:
            try:
                make_algorithm(name, **kwargs)
            except ConfigError as error:
                raise ConfigError(f"{flag} ({name}): {error}") from error
    env = config.env
    checks.check_env(env.id, dict(env.kwargs), "--env.kwargs")
    if config.sft_steps > 0 and env.sft_kwargs:
        checks.check_env(env.id, {**env.kwargs, **env.sft_kwargs}, "--env.sft-kwargs")
    checks.check_env(env.id, {**env.kwargs, **env.eval_kwargs}, "--env.eval-kwargs")
    checks.check_model(config.model.name_or_path, "--model.name-or-path")
    checks.check_output_dir(config.output_dir)
    if config.resume and config.overwrite:
        raise ConfigError("--resume continues the run in --output-dir and --overwrite replaces it: give one")
    if os.environ.get("RANK", "0") != "0" or config.resume:  # one process decides; --resume continues the run
        return
    if config.overwrite:
        checks.remove_outputs(config.output_dir, RUN_ENTRIES)
    else:
        checks.refuse_overwrite(config.output_dir, RUN_ENTRIES, ", --resume to continue it")


if __name__ == "__main__":
    sys.exit(main())
