"""The headline claim, shortened: the default recipe makes the bundled tiny agent look (slow: ~15 min on one core).

The full claim (``docs/learning.md``): ``mapo-train`` with no arguments reaches >= 80% on 200 held-out
MAPO-Tiles-v0 episodes in under 30 minutes on 2 CPU cores, while the same checkpoint with the zoom
tool disabled stays at chance. This test runs the same recipe with fewer steps and checks, on the
same held-out episodes, that it beats the untrained model, finds the asked-for tile far above chance
(1 in 16 cells), and that its accuracy collapses to about chance without the zoom.
"""

from __future__ import annotations

import pytest

from mapo_agent.config import TrainConfig
from mapo_agent.evaluation import evaluate
from mapo_agent.policy import HFPolicy
from mapo_agent.trainer import Trainer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.usefixtures("one_thread"),
]

EPISODES = 100


def held_out(policy, config: TrainConfig, **env_kwargs):
    """Greedy evaluation on the trainer's held-out episodes (same questions, same seed)."""
    kwargs = {**config.env.kwargs, **config.env.eval_kwargs, **env_kwargs}
    return evaluate(policy, config.env.id, kwargs, questions=range(EPISODES), seed=config.seed + 1)


def test_a_short_default_run_learns_to_look(tmp_path):
    config = TrainConfig(
        steps=2,  # the default recipe's cold start in full, RL stage shortened; everything else is the default
        eval_every=0,
        eval_episodes=EPISODES,
        save_every=0,
        progress_bar=False,
        output_dir=str(tmp_path / "run"),
    )
    untrained = held_out(HFPolicy.from_pretrained(device="cpu"), config)
    summary = Trainer(config).train()
    trained = HFPolicy.from_pretrained(tmp_path / "run" / "final", device="cpu")
    after = held_out(trained, config)
    blind = held_out(trained, config, zoom_enabled=False)

    assert summary["avg@1"] == pytest.approx(after.accuracy)  # the trainer's own held-out number
    assert after.accuracy > untrained.accuracy + 0.3
    assert after.metrics["eval/target_hit_rate"] > 0.5  # chance is 1/16: the zoom finds the asked-for tile
    assert after.accuracy > 0.6
    assert blind.accuracy < 0.45  # without the zoom it is back near chance (25%): it answers by looking
