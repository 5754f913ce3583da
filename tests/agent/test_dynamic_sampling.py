"""The trainer's side of the algorithms' contract: dynamic sampling refills the batch; the run context is bound."""

from __future__ import annotations

import numpy as np
import pytest

from mapo_agent.config import EnvConfig, RolloutConfig, TrainConfig
from mapo_agent.trainer import Trainer

from .algorithms.fake_policy import make_trajectory
from .test_pipeline_fake import CANNED, CannedPolicy


def trainer_for(tmp_path, algo: str, **algo_kwargs) -> Trainer:
    config = TrainConfig(
        algo=algo,
        algo_kwargs=algo_kwargs,
        steps=1,
        sft_steps=0,
        output_dir=str(tmp_path / "run"),
        progress_bar=False,
        cpu=True,
        env=EnvConfig(kwargs={"alignment": "lexical", "max_turns": 3}),
        rollout=RolloutConfig(questions_per_step=4, group_size=2, max_new_tokens=16),
    )
    return Trainer(config, policy=CannedPolicy(CANNED))


def rounds_of(outcomes_per_round: list[list[list[bool]]]):
    """A fake ``collect``: round r returns one group per entry, ids continuing across rounds as the trainer's do."""
    rng = np.random.default_rng(0)
    calls = []

    def collect(step: int, sampling_round: int = 0):
        calls.append(sampling_round)
        groups = outcomes_per_round[sampling_round]
        first = sampling_round * 4
        return [make_trajectory(rng, first + g, c, [0.5]) for g, outcome in enumerate(groups) for c in outcome]

    return collect, calls


def test_dapo_draws_more_rounds_until_the_batch_holds_enough_mixed_groups(tmp_path):
    trainer = trainer_for(tmp_path, "dapo")
    algorithm = trainer._algorithm(trainer.config.stage_at(0))
    mixed, right, wrong = [True, False], [True, True], [False, False]
    trainer.collect, calls = rounds_of([[mixed, right, wrong, mixed], [wrong, mixed, mixed, mixed], [mixed] * 4])
    kept, metrics = trainer._collect_until_full(0, algorithm)
    assert calls == [0, 1]  # 2 mixed groups, then 3 more: enough after the second round
    assert sorted({t.group_id for t in kept}) == [0, 3, 5, 6]  # the first 4 kept groups, surplus trimmed
    assert metrics == {
        "rollout/sampling_rounds": 2.0,
        "rollout/groups_offered": 8.0,
        "rollout/groups_dropped_total": 3.0,
        "rollout/groups_kept": 4.0,
    }


def test_dapo_stops_after_its_rounds_and_trains_on_what_it_kept(tmp_path, caplog):
    trainer = trainer_for(tmp_path, "dapo", dynamic_sampling_max_rounds=2)
    algorithm = trainer._algorithm(trainer.config.stage_at(0))
    uniform = [[True, True]] * 4
    trainer.collect, calls = rounds_of([[[True, False]] + uniform[:3], uniform])
    kept, metrics = trainer._collect_until_full(0, algorithm)
    assert calls == [0, 1] and {t.group_id for t in kept} == {0}
    assert metrics["rollout/groups_kept"] == 1.0 and "kept 1 of 4 groups after 2 rounds" in caplog.text


def test_without_dynamic_sampling_one_round_and_nothing_dropped(tmp_path):
    trainer = trainer_for(tmp_path, "grpo")
    algorithm = trainer._algorithm(trainer.config.stage_at(0))
    trainer.collect, calls = rounds_of([[[True, True]] * 4])
    kept, metrics = trainer._collect_until_full(0, algorithm)
    assert calls == [0] and len(kept) == 8 and metrics == {}


@pytest.mark.parametrize("algo", ["dr_grpo", "dapo"])
def test_the_trainer_binds_the_generation_budget(tmp_path, algo):
    trainer = trainer_for(tmp_path, algo)
    algorithm = trainer._algorithm(trainer.config.stage_at(0))
    assert algorithm.context.generation_budget == 16 * 3  # max_new_tokens x the env's max_turns
    if algo == "dr_grpo":
        assert algorithm.norm_length == 48
    else:
        assert algorithm.overlong_limits() == (48, 10)  # L_cache = 20 % of L_max


def test_refill_rounds_draw_new_questions_and_new_group_ids(tmp_path):
    trainer = trainer_for(tmp_path, "dapo")
    first = trainer.collect(0)
    again = trainer.collect(0)
    second = trainer.collect(0, sampling_round=1)
    assert [t.sample_index for t in first] == [t.sample_index for t in again]  # deterministic per (seed, step)
    assert {t.group_id for t in first} == {0, 1, 2, 3} and {t.group_id for t in second} == {4, 5, 6, 7}
    assert [t.sample_index for t in first] != [t.sample_index for t in second]
