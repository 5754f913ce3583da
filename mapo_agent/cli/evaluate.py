"""``mapo-eval``: Avg@k of any model (or the oracle) on any registered environment, real data included."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from mapo_agent.cli.args import parse_dataclass
from mapo_env.errors import MapoError

DESCRIPTION = """\
Evaluate a model on a MAPO environment with the protocol of the thinking-with-images papers:
every question is answered k times with its options reshuffled each time, and the report gives
Avg@k with a 95% confidence interval (questions as the unit), a per-category table, alignment,
tool use and target IoU. Writes <output-dir>/<stem>.json and <stem>.md.
"""

EPILOG = """\
examples:
  mapo-eval --model runs/mapo-tiles/final                                   # held-out Tiles episodes
  mapo-eval --model Qwen/Qwen2.5-VL-7B-Instruct --env MAPO-VStar-v0 --data-dir path/to/vstar_bench --k 8 \\
            --temperature 1.0 --max-new-tokens 1024
  mapo-eval --oracle --env MAPO-VStar-v0 --data-dir path/to/vstar_bench      # the upper bound
  mapo-eval --model runs/mapo-tiles/final --env-kwargs zoom_enabled=false    # tool-disabled ablation
"""


@dataclass
class EvalConfig:
    """Evaluate a model or the oracle on an environment."""

    model: str | None = None
    """Checkpoint folder (e.g. a run's final/) or hub id; None = the bundled (untrained) tiny agent."""
    env: str = "MAPO-Tiles-v0"
    """Registered environment id."""
    data_dir: str | None = None
    """Real benchmark folder/file for the env (V* folder, HR-Bench TSV, MME-RealWorld JSON); None = procedural."""
    split: str = "test"
    """Procedural data split (ignored with --data-dir)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra gym.make keyword arguments as KEY=VALUE (values read as JSON)."""
    num_questions: int = 200
    """Questions to evaluate (the first N of the dataset; all of it if smaller)."""
    k: int = 1
    """Episodes per question (Avg@k); options are reshuffled for each."""
    temperature: float = 0.0
    """0 = greedy decoding; > 0 samples at this temperature."""
    max_new_tokens: int = 256
    """Token budget of one generated turn."""
    oracle: bool = False
    """Evaluate the environment's scripted expert (the upper bound) instead of a model."""
    seed: int = 0
    """Seed of option shuffles and sampling."""
    output_dir: str = "eval"
    """Where the reports go."""
    stem: str = "eval"
    """File name stem of the reports."""
    cpu: bool = False
    """Force CPU."""


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print the Markdown report; returns the exit code."""
    logging.basicConfig(level=logging.WARNING)
    try:
        config = parse_dataclass(EvalConfig, argv, "mapo-eval", DESCRIPTION, EPILOG)
        report = run(config)
    except MapoError as error:
        print(f"mapo-eval: error: {error}", file=sys.stderr)
        return 2
    json_path, md_path = report.save(config.output_dir, config.stem)
    print(report.markdown())
    print(f"reports: {json_path} {md_path}")
    return 0


def run(config: EvalConfig):
    """Build the policy and the environment settings from ``config`` and evaluate."""
    from mapo_agent.evaluation import evaluate
    from mapo_agent.policy import HFPolicy

    env_kwargs = dict(config.env_kwargs)
    if config.data_dir is not None:
        env_kwargs["data_dir"] = config.data_dir
    else:
        env_kwargs.setdefault("split", config.split)
    policy = HFPolicy.from_pretrained(
        config.model,
        device="cpu" if config.cpu else None,
        temperature=config.temperature if config.temperature > 0 else 1.0,
        max_new_tokens=config.max_new_tokens,
    )
    generate = {"do_sample": config.temperature > 0}
    report = evaluate(
        policy,
        config.env,
        env_kwargs,
        num_questions=config.num_questions,
        k=config.k,
        actor="oracle" if config.oracle else "policy",
        generate_kwargs=generate,
        seed=config.seed,
    )
    report.settings["model"] = "oracle" if config.oracle else (config.model or "bundled tiny agent")
    return report


if __name__ == "__main__":
    sys.exit(main())
