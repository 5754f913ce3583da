"""The few-second training run the trainer tests share: the real tiny Qwen2.5-VL agent on CPU."""

from __future__ import annotations

from pathlib import Path

from mapo_agent.config import EnvConfig, OptimConfig, RolloutConfig, TrainConfig


def tiny_config(tmp_path: Path, **overrides) -> TrainConfig:
    """A few-second run: 2 questions x 2 rollouts, short turns, 2 held-out episodes (MAPO, one SFT step)."""
    fields = dict(
        algo="mapo",
        steps=2,
        sft_steps=1,
        output_dir=str(tmp_path / "run"),
        eval_episodes=2,
        eval_every=0,
        save_every=0,
        progress_bar=False,
        cpu=True,
        env=EnvConfig(kwargs={"alignment": "lexical", "max_turns": 3}),
        rollout=RolloutConfig(questions_per_step=2, group_size=2, max_new_tokens=24),
        optim=OptimConfig(warmup_steps=0),
    )
    fields.update(overrides)
    return TrainConfig(**fields)
