"""``mapo-viz``: pictures of trajectories (one PNG or HTML per episode) and a run's learning curves."""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mapo_agent.cli import checks
from mapo_agent.cli.checks import report_error
from mapo_env.errors import ConfigError, MapoError

PROG = "mapo-viz"

DESCRIPTION = """\
Draw episodes: a model (or the oracle) plays N episodes of an environment and each episode is saved
as one picture: the full view with every crop box numbered (ground truth dashed in green), each
crop with its label or description and alignment score, and the dialogue; episodes.jsonl holds
their transcripts. With --run, redraw the learning-curve plots of a training run instead.

Overwrite rule (the same for mapo-eval, mapo-viz and mapo-train): pictures and episodes.jsonl of an
earlier call are never replaced or appended to silently; the command refuses to start if
--output-dir holds any, unless --overwrite is given, which deletes them (episode_*.png,
episode_*.html, episodes.jsonl; nothing else) before drawing. --run redraws <run>/plots/ in place:
they are derived from the run's metrics.jsonl, as the trainer itself redraws them. Every argument,
the model path and the output folder are checked before the model is loaded; errors are one line
and exit code 2.
"""

EPILOG = """\
examples:
  mapo-viz --model runs/mapo-tiles/final --episodes 4 --output-dir viz
  mapo-viz --model runs/mapo-tiles/final --episodes 4 --output-dir viz --overwrite   # replace them
  mapo-viz --oracle --env MAPO-VStar-v0 --format html --output-dir viz-oracle
  mapo-viz --run runs/mapo-tiles                          # redraw runs/mapo-tiles/plots/*.png
"""

EPISODE_FILES = ("episodes.jsonl", "episode_*.png", "episode_*.html")
"""What drawing episodes writes into --output-dir (the overwrite rule covers exactly these)."""


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
    """gym.make keyword arguments as KEY=VALUE (split is dropped with --data-dir)."""
    episodes: int = 4
    """Episodes to draw (>= 1)."""
    seed: int = 0
    """Seed of the episodes: episode i is reset with seed + i (which question, and the option order)."""
    temperature: float = 0.0
    """0 = greedy; > 0 samples at this temperature."""
    max_new_tokens: int = 256
    """Token budget of one generated turn."""
    format: Literal["png", "html"] = "png"
    """Picture format."""
    output_dir: str = "viz"
    """Where the pictures and episodes.jsonl go."""
    overwrite: bool = False
    """Delete the pictures and episodes.jsonl of an earlier call in output_dir first (default: refuse to start)."""
    run: str | None = None
    """A training run directory: redraw its plots/ from metrics.jsonl and exit."""

    def __post_init__(self) -> None:
        for name, minimum in (("episodes", 1), ("seed", 0), ("max_new_tokens", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= {minimum}, got {value!r}")
        temperature = self.temperature
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not math.isfinite(temperature)
        ):
            raise ConfigError(f"--temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
        if temperature < 0:
            raise ConfigError(f"--temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
        if self.format not in ("png", "html"):
            raise ConfigError(f"--format must be png or html, got {self.format!r}")


def main(argv: list[str] | None = None) -> int:
    """Check the arguments, draw, and print where the files are; returns the exit code."""
    logging.basicConfig(level=logging.WARNING)
    config = checks.parse_command_line(VizConfig, argv, PROG, DESCRIPTION, EPILOG)
    if isinstance(config, int):
        return config
    try:
        paths = run(config)
    except MapoError as error:
        return report_error(PROG, error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the episodes finished so far are in place", file=sys.stderr)
        return 130
    for path in paths:
        print(path)
    return 0


def preflight(config: VizConfig) -> dict[str, Any]:
    """Every check that needs no model; returns the ``gym.make`` kwargs. Raises a :class:`MapoError`."""
    if config.run is not None:
        run_dir = Path(config.run).expanduser()
        if not (run_dir / "metrics.jsonl").is_file():
            raise ConfigError(f"--run {config.run!r} is not a training run folder (it has no metrics.jsonl)")
        checks.check_output_dir(run_dir / "plots", "--run")
        return {}
    env_kwargs = dict(config.env_kwargs)
    if config.data_dir is not None:
        env_kwargs["data_dir"] = config.data_dir
        env_kwargs.pop("split", None)
    checks.check_env(config.env, env_kwargs)
    if not config.oracle:
        checks.check_model(config.model)
    checks.check_output_dir(config.output_dir)
    if not config.overwrite:
        checks.refuse_overwrite(config.output_dir, EPISODE_FILES)
    return env_kwargs


def run(config: VizConfig) -> list[Path]:
    """Check, then draw what ``config`` asks for; returns the written files."""
    env_kwargs = preflight(config)
    if config.run is not None:
        from mapo_agent.plots import plot_run

        return plot_run(config.run)
    import gymnasium as gym
    import torch

    import mapo_env  # noqa: F401
    from mapo_agent.policy import HFPolicy
    from mapo_env.oracle import Oracle
    from mapo_env.wrappers import RecordEpisodes

    policy = None
    if not config.oracle:
        with checks.model_loading("--model", config.model):
            policy = HFPolicy.from_pretrained(config.model, max_new_tokens=config.max_new_tokens)
    out = Path(config.output_dir)
    if config.overwrite:
        checks.remove_outputs(out, EPISODE_FILES)
    env = RecordEpisodes(gym.make(config.env, **env_kwargs), out, picture_format=config.format)
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
    env.close()
    return sorted(out.glob(f"episode_*.{config.format}"))


if __name__ == "__main__":
    sys.exit(main())
