"""``mapo-viz``: pictures of trajectories (one PNG or HTML per episode) and a run's learning curves."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mapo_agent.cli.args import parse_dataclass
from mapo_env.errors import MapoError

DESCRIPTION = """\
Draw episodes: a model (or the oracle) plays N episodes of an environment and each episode is saved
as one picture: the full view with every crop box numbered (ground truth dashed in green), each
crop with its label or description and alignment score, and the dialogue. With --run, redraw the
learning-curve plots of a training run instead.
"""

EPILOG = """\
examples:
  mapo-viz --model runs/mapo-tiles/final --episodes 4 --output-dir viz
  mapo-viz --oracle --env MAPO-VStar-v0 --format html
  mapo-viz --run runs/mapo-tiles                          # redraw runs/mapo-tiles/plots/*.png
"""


@dataclass
class VizConfig:
    """Draw trajectories or a run's curves."""

    model: str | None = None
    """Checkpoint folder or hub id; None = the bundled tiny agent."""
    oracle: bool = False
    """Draw the environment's scripted expert instead of a model."""
    env: str = "MAPO-Tiles-v0"
    """Registered environment id."""
    data_dir: str | None = None
    """Real benchmark data for the env; None = procedural."""
    env_kwargs: dict[str, Any] = field(default_factory=lambda: {"split": "test"})
    """gym.make keyword arguments as KEY=VALUE."""
    episodes: int = 4
    """Episodes to draw."""
    seed: int = 0
    """Seed of the episodes."""
    temperature: float = 0.0
    """0 = greedy; > 0 samples."""
    format: str = "png"
    """png or html."""
    output_dir: str = "viz"
    """Where the pictures go."""
    run: str | None = None
    """A training run directory: redraw its plots/ from metrics.jsonl and exit."""


def main(argv: list[str] | None = None) -> int:
    """Draw and print where the files are; returns the exit code."""
    logging.basicConfig(level=logging.WARNING)
    try:
        config = parse_dataclass(VizConfig, argv, "mapo-viz", DESCRIPTION, EPILOG)
        paths = run(config)
    except MapoError as error:
        print(f"mapo-viz: error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def run(config: VizConfig) -> list[Path]:
    """Draw what ``config`` asks for; returns the written files."""
    if config.run is not None:
        from mapo_agent.plots import plot_run

        return plot_run(config.run)
    import gymnasium as gym
    import torch

    import mapo_env  # noqa: F401
    from mapo_agent.policy import HFPolicy
    from mapo_env.oracle import Oracle
    from mapo_env.wrappers import RecordEpisodes

    env_kwargs = dict(config.env_kwargs)
    if config.data_dir is not None:
        env_kwargs["data_dir"] = config.data_dir
        env_kwargs.pop("split", None)
    out = Path(config.output_dir)
    env = RecordEpisodes(gym.make(config.env, **env_kwargs), out, picture_format=config.format)
    policy = None if config.oracle else HFPolicy.from_pretrained(config.model, max_new_tokens=256)
    oracle = Oracle(env) if config.oracle else None
    torch.manual_seed(config.seed)
    for episode in range(config.episodes):
        obs, _ = env.reset(seed=config.seed + episode)
        state = policy.start_episode(obs) if policy is not None else None
        done = False
        while not done:
            if oracle is not None:
                text = oracle.act(obs)
            else:
                sample = config.temperature > 0
                kwargs = {"temperature": config.temperature} if sample else {}
                text = policy.generate([state], do_sample=sample, **kwargs)[0]
            obs, _, terminated, truncated, _ = env.step(text)
            done = terminated or truncated
            if not done and policy is not None:
                policy.observe(state, obs)
    return sorted(out.glob(f"episode_*.{config.format}"))


if __name__ == "__main__":
    sys.exit(main())
