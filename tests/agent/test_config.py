import re

import pytest

from mapo_agent.config import OptimConfig, RolloutConfig, TrainConfig
from mapo_env.errors import ConfigError, UnknownNameError


def test_defaults_are_the_bundled_recipe():
    config = TrainConfig()
    assert config.algo == "mapo" and config.sft_algo == "grounded_sft" and config.env.id == "MAPO-Tiles-v0"
    assert config.model.name_or_path is None


def test_stages_split_the_run():
    config = TrainConfig(steps=5, sft_steps=3)
    cold, rl = config.stages()
    assert (cold.name, cold.algo, cold.start, cold.length) == ("cold_start", "grounded_sft", 0, 3)
    assert (rl.name, rl.algo, rl.start, rl.length) == ("rl", "mapo", 3, 5)
    assert config.stage_at(2) is not None and config.stage_at(2).name == "cold_start"
    assert config.stage_at(3).name == "rl" and config.total_steps == 8
    with pytest.raises(ConfigError):
        config.stage_at(8)
    assert [s.name for s in TrainConfig(sft_steps=0).stages()] == ["rl"]


def test_cold_start_env_kwargs_are_merged():
    config = TrainConfig()
    config.env.kwargs["alignment"] = "lexical"
    config.env.sft_kwargs["max_turns"] = 2
    cold, rl = config.stages()
    assert cold.env_kwargs == {"alignment": "lexical", "max_turns": 2} and rl.env_kwargs == {"alignment": "lexical"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rollout": RolloutConfig(group_size=0)}, "group_size"),
        ({"optim": OptimConfig(minibatches=99)}, "minibatches"),
        ({"steps": -1}, "steps"),
        ({"rollout": RolloutConfig(temperature=0)}, "temperature"),
    ],
)
def test_invalid_values_are_rejected_with_the_value(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_unknown_algorithm_lists_the_names():
    with pytest.raises(UnknownNameError, match="grpo"):
        TrainConfig(algo="gpro")


def test_json_round_trip(tmp_path):
    config = TrainConfig(algo="dapo", algo_kwargs={"kl_coef": 0.01}, optim=OptimConfig(betas=(0.8, 0.95)))
    config.save(tmp_path / "c.json")
    import json

    assert TrainConfig.from_dict(json.loads((tmp_path / "c.json").read_text())) == config


@pytest.mark.parametrize(
    ("field", "kwargs", "message"),
    [
        ("algo_kwargs", {"no_such_key": 1}, "MAPOConfig has no field(s) ['no_such_key']; known fields: ['advantage'"),
        ("algo_kwargs", {"clip_low": "0.2"}, "MAPOConfig.clip_low must be of type float, got '0.2' (str)"),
        ("algo_kwargs", {"kl_coef": True}, "MAPOConfig.kl_coef must be of type float, got True (bool)"),
        ("algo_kwargs", {"advantage": {"semantic_scal": "center"}}, "unexpected keyword argument 'semantic_scal'"),
        ("algo_kwargs", {"advantage": {"semantic_coef": None}}, "AdvantageConfig.semantic_coef must be of type float"),
        ("sft_kwargs", {"caption_coef": "high"}, "GroundedSFTConfig.caption_coef must be of type float"),
    ],
)
def test_algorithm_options_are_checked_when_the_config_is_built(field, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(**{field: kwargs})


def test_valid_algorithm_options_build():
    config = TrainConfig(
        algo="dapo", algo_kwargs={"clip_high": 1, "dynamic_sampling_max_rounds": 3, "dual_clip": None}
    )
    assert config.algo_kwargs["clip_high"] == 1


def test_the_vllm_backend_refuses_a_temperature_other_than_1_when_the_config_is_built() -> None:
    with pytest.raises(ConfigError, match="temperature 1 only"):
        TrainConfig(rollout=RolloutConfig(backend="vllm", temperature=0.7))
    assert TrainConfig(rollout=RolloutConfig(backend="vllm")).rollout.temperature == 1.0
