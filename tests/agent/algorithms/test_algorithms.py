"""Every registered algorithm through a name-agnostic update step, plus per-algorithm behaviour."""

import copy
import math
import re

import numpy as np
import pytest
import torch

from mapo_agent.algorithms import (
    ALGORITHMS,
    DAPO,
    GRPO,
    MAPO,
    OPD,
    SFT,
    DAPOConfig,
    GRPOConfig,
    MAPOConfig,
    PAPOConfig,
    RunContext,
    VGPOConfig,
    make_algorithm,
)
from mapo_agent.algorithms.base import Algorithm, GroupSelection, keep_mixed_groups
from mapo_env.errors import ConfigError, UnknownNameError
from tests.agent.algorithms.fake_policy import FakePolicy, make_batch_trajectories, make_trajectory

MIXED = [[True, False, True], [False, False, True, True], [True, True, True], [False, False]]
ORACLE_ALGORITHMS = ("sft", "grounded_sft")
DISTILLATION_ALGORITHMS = ("opd", "va_opd")  # no policy gradient: a reverse KL to a teacher
CONTEXT = RunContext(max_new_tokens=8, max_turns=2)


def update_step(algo: Algorithm, policy: FakePolicy, trajectories, reference: FakePolicy | None = None):
    """What a trainer does, without ever reading the algorithm's name."""
    if algo.context is None:
        algo.bind(CONTEXT)
    if isinstance(algo, OPD) and algo.teacher is None:
        algo.set_teacher(FakePolicy(seed=7))  # the distillation algorithms' teacher: another fake policy
    prepared = algo.prepare(trajectories)
    batch = algo.training_batch(policy, prepared.trajectories, prepared.advantages)
    if algo.needs_reference_model:
        with torch.no_grad():
            batch.ref_logprobs = (reference or policy).forward(batch).logprobs
    loss, metrics = algo.loss(policy, batch)
    return prepared, batch, loss, metrics


def test_all_bundled_algorithms_registered():
    assert ALGORITHMS.names() == [
        "dapo",
        "dr_grpo",
        "grounded_sft",
        "grpo",
        "mapo",
        "opd",
        "papo",
        "rloo",
        "roma",
        "sft",
        "va_opd",
        "vgpo",
    ]


@pytest.mark.parametrize("name", ALGORITHMS.names())
def test_one_optimizer_step_changes_parameters_and_loss_is_finite(name):
    policy = FakePolicy(seed=1)
    trajectories = make_batch_trajectories(policy, MIXED, seed=2)
    algo = make_algorithm(name)
    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    prepared, batch, loss, metrics = update_step(algo, policy, trajectories)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    changed = [k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, f"{name}: no parameter moved"
    assert "head.weight" in changed
    assert metrics["train/loss"] == pytest.approx(loss.item())
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics
    assert all(k.startswith("rollout/") for k in prepared.metrics)
    assert prepared.advantages.shape == (len(prepared.trajectories),)


@pytest.mark.parametrize(
    "name", [n for n in ALGORITHMS.names() if n not in ORACLE_ALGORITHMS + DISTILLATION_ALGORITHMS]
)
def test_policy_gradient_metrics_present(name):
    policy = FakePolicy()
    _, _, _, metrics = update_step(make_algorithm(name), policy, make_batch_trajectories(policy, MIXED))
    for key in ("train/loss", "train/pg_loss", "train/kl", "train/entropy", "train/clip_frac", "train/approx_kl"):
        assert key in metrics
    assert metrics["train/clip_frac"] == 0.0  # ratio is exactly 1 at the first step
    assert metrics["train/approx_kl"] == pytest.approx(0.0, abs=1e-6)


def test_rollout_source_and_reference_flags():
    assert all(make_algorithm(n).rollout_source == "oracle" for n in ORACLE_ALGORITHMS)
    assert all(make_algorithm(n).rollout_source == "policy" for n in ALGORITHMS.names() if n not in ORACLE_ALGORITHMS)
    with_kl = {"grpo", "mapo", "papo", "roma"}  # the papers' reference KL (GRPO 0.04, PAPO-G 0.01; ROMA on GRPO)
    assert {n for n in ALGORITHMS.names() if make_algorithm(n).needs_reference_model} == with_kl
    assert not make_algorithm("grpo", kl_coef=0.0).needs_reference_model


def test_defaults_follow_the_spec():
    def loss_settings(name):
        c = make_algorithm(name).config
        return (c.clip_low, c.clip_high, c.kl_coef, c.loss_agg_mode)

    assert loss_settings("grpo") == (0.2, 0.2, 0.04, "seq-mean-token-mean")  # arXiv 2402.03300 Eq. 3
    assert loss_settings("mapo") == loss_settings("grpo")  # MAPO differs from GRPO by its advantage only
    assert loss_settings("dr_grpo") == (0.2, 0.2, 0.0, "seq-mean-token-sum-norm")
    assert loss_settings("dapo") == (0.2, 0.28, 0.0, "token-mean")
    assert loss_settings("papo") == (0.2, 0.3, 0.01, "token-mean")  # PAPO-G, Table 1
    assert loss_settings("vgpo") == (0.2, 0.28, 0.0, "token-mean")
    assert loss_settings("rloo") == (0.2, 0.28, 0.0, "token-mean")
    mapo = make_algorithm("mapo").config
    assert mapo.advantage_estimator == "mapo"
    assert (mapo.advantage.discount, mapo.advantage.semantic_coef, mapo.advantage.combine) == (0.95, 0.4, "adv_sum")
    assert make_algorithm("dapo").config.dynamic_sampling and make_algorithm("vgpo").config.dynamic_sampling
    assert make_algorithm("dapo").max_sampling_rounds == 10 and make_algorithm("grpo").max_sampling_rounds == 1
    papo = make_algorithm("papo").config
    assert (papo.image_patch_mask_ratio, papo.dual_clip, papo.perception_kl_coef, papo.mask_fill) == (
        0.6,
        3.0,
        0.02,
        "black",
    )


# ---------------------------------------------------------------------------- make_algorithm / config errors


def test_make_algorithm_errors():
    with pytest.raises(UnknownNameError, match=re.escape("Unknown algorithm 'mapoo'; registered: 'dapo'")):
        make_algorithm("mapoo")
    with pytest.raises(UnknownNameError, match=re.escape("Did you mean 'mapo'?")):
        make_algorithm("mapoo")
    with pytest.raises(ConfigError, match=re.escape("MAPOConfig has no field(s) ['clip_hgh']; known fields:")):
        make_algorithm("mapo", clip_hgh=0.3)
    with pytest.raises(ConfigError, match=re.escape("not both")):
        make_algorithm("mapo", MAPOConfig(), kl_coef=0.1)
    assert make_algorithm("mapo", MAPOConfig(kl_coef=0.1)).config.kl_coef == 0.1


def test_wrong_config_class_rejected():
    with pytest.raises(ConfigError, match=re.escape("PAPO expects a PAPOConfig, got GRPOConfig")):
        ALGORITHMS.get("papo")(GRPOConfig())
    assert isinstance(GRPO(MAPOConfig()).config, MAPOConfig)  # a subclass config is accepted


def test_advantage_config_from_dict_and_unknown_estimator():
    cfg = MAPOConfig(advantage={"semantic_coef": 0.2, "combine": "gate"})
    assert (cfg.advantage.semantic_coef, cfg.advantage.combine) == (0.2, "gate")
    with pytest.raises(UnknownNameError, match=re.escape("Unknown advantage estimator 'grop'")):
        GRPOConfig(advantage_estimator="grop")


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (GRPOConfig, {"clip_low": 1.0}, "clip_low must be in [0, 1), got 1.0"),
        (GRPOConfig, {"clip_high": -0.1}, "clip_high must be >= 0, got -0.1"),
        (GRPOConfig, {"dual_clip": 1.0}, "dual_clip must be > 1 or None, got 1.0"),
        (GRPOConfig, {"kl_coef": -1.0}, "kl_coef must be >= 0, got -1.0"),
        (GRPOConfig, {"loss_agg_mode": "mean"}, "loss_agg_mode must be one of ['token-mean', 'seq-mean-token-mean'"),
        (GRPOConfig, {"loss_norm_length": 0}, "loss_norm_length must be >= 1 or None, got 0"),
        (
            DAPOConfig,
            {"max_response_tokens": 2048, "overlong_buffer": 4096},
            "got overlong_buffer=4096, max_response_tokens=2048",
        ),
        (DAPOConfig, {"overlong_penalty_factor": -1.0}, "overlong_penalty_factor must be >= 0, got -1.0"),
        (PAPOConfig, {"image_patch_mask_ratio": 0.0}, "image_patch_mask_ratio must be in (0, 1], got 0.0"),
        (PAPOConfig, {"perception_kl_coef": -0.01}, "perception_kl_coef must be >= 0, got -0.01"),
        (PAPOConfig, {"perception_kl_clip": 0.0}, "perception_kl_clip must be > 0 or None, got 0.0"),
        (VGPOConfig, {"compensation_start": 1.0}, "compensation_start must be in [0, 1), got 1.0"),
        (VGPOConfig, {"compensation_top_ratio": 0.0}, "compensation_top_ratio must be in (0, 1], got 0.0"),
        (
            VGPOConfig,
            {"focus_normalization": "zscore"},
            "focus_normalization must be one of ['batch_minmax', 'affine']",
        ),
        (
            VGPOConfig,
            {"inter_factor_min": 1.5},
            "need 0 <= inter_factor_min <= 1 <= inter_factor_max, got 1.5 and 2.0",
        ),
    ],
)
def test_config_validation(cls, kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        cls(**kwargs)


# ---------------------------------------------------------------------------- group selection / rewards


def test_dapo_dynamic_sampling_drops_uniform_groups():
    trajectories = make_batch_trajectories(FakePolicy(), MIXED)
    selection = make_algorithm("dapo").select_groups(trajectories)
    assert isinstance(selection, GroupSelection) and isinstance(selection, list)
    assert [t.group_id for t in selection] == [0, 0, 0, 1, 1, 1, 1]  # groups 2 (all right), 3 (all wrong) dropped
    assert (selection.num_groups, selection.num_dropped_groups) == (4, 2)
    assert selection.metrics()["rollout/groups_dropped_frac"] == 0.5


def test_default_selection_keeps_everything_and_singletons_are_dropped_by_dapo():
    trajectories = make_batch_trajectories(FakePolicy(), MIXED + [[True]])
    assert len(make_algorithm("grpo").select_groups(trajectories)) == len(trajectories)
    assert make_algorithm("grpo", dynamic_sampling=True).select_groups(trajectories).num_dropped_groups == 3
    assert keep_mixed_groups([]).num_groups == 0


def test_prepare_with_everything_dropped_gives_empty_batch():
    dapo = make_algorithm("dapo").bind(CONTEXT)
    prepared = dapo.prepare(make_batch_trajectories(FakePolicy(), [[True, True], [False]]))
    assert prepared.trajectories == [] and prepared.advantages.shape == (0,)
    assert prepared.metrics["rollout/groups_dropped"] == 2.0


def test_dapo_overlong_shaping_from_generated_tokens():
    rng = np.random.default_rng(0)
    trajectories = [make_trajectory(rng, 0, True, [], gen_tokens=n) for n in (1, 4, 10)]  # + 2 answer tokens
    lengths = [t.num_generated_tokens for t in trajectories]
    assert lengths == [3, 6, 12]
    algo = DAPO(DAPOConfig(max_response_tokens=8, overlong_buffer=4))
    # no penalty up to 4 tokens, (4 - 6) / 4 = -0.5 at 6, -1 past 8
    assert algo.shape_rewards(trajectories).tolist() == pytest.approx([1.0, 0.5, 0.0])
    off = DAPO(DAPOConfig(max_response_tokens=8, overlong_buffer=4, overlong_shaping=False))
    assert off.shape_rewards(trajectories).tolist() == [1.0, 1.0, 1.0]
    inp = algo.advantage_input(trajectories)
    assert inp.rewards.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert algo.compute_advantages(inp)[0] > 0 > algo.compute_advantages(inp)[2]


def test_mapo_uses_alignment_and_reports_semantic_metrics():
    rng = np.random.default_rng(0)
    trajectories = [
        make_trajectory(rng, 0, True, [0.9]),
        make_trajectory(rng, 0, True, [0.1]),
        make_trajectory(rng, 0, True, []),
    ]
    prepared = MAPO().prepare(trajectories)
    assert prepared.advantages[0] > prepared.advantages[1]  # same reward, better description
    assert torch.equal(GRPO().prepare(trajectories).advantages, torch.zeros(3))
    assert prepared.metrics["rollout/no_tool_frac"] == pytest.approx(1 / 3)
    assert prepared.metrics["rollout/semantic_score_mean"] == pytest.approx(0.5)
    # default "center": A_sem = ±0.4 for the two tool users, 0 for the no-tool rollout (left out)
    assert prepared.advantages.tolist() == pytest.approx([0.16, -0.16, 0.0])
    assert prepared.metrics["rollout/semantic_dominant_frac"] == pytest.approx(2 / 3)
    assert prepared.metrics["rollout/semantic_usable_frac"] == pytest.approx(2 / 3)
    assert prepared.metrics["rollout/semantic_all_zero"] == 0.0


def test_mapo_says_when_its_semantic_term_is_all_zero(caplog):
    rng = np.random.default_rng(0)
    no_zoom = [make_trajectory(rng, 0, c, []) for c in (True, False)]
    algo = MAPO()
    prepared = algo.prepare(no_zoom)
    assert prepared.metrics["rollout/semantic_all_zero"] == 1.0
    assert prepared.metrics["rollout/semantic_usable_frac"] == 0.0
    assert torch.equal(prepared.advantages, GRPO().prepare(no_zoom).advantages)
    assert "equals GRPO's" in caplog.text and "no rollout has a scored tool call" in caplog.text
    caplog.clear()
    algo.prepare(no_zoom)  # the second such batch in a row is counted, not repeated
    assert "equals GRPO's" not in caplog.text


# ---------------------------------------------------------------------------- KL, entropy, SFT


def test_reference_kl_term():
    policy = FakePolicy(seed=3)
    trajectories = make_batch_trajectories(policy, MIXED)
    algo = make_algorithm("grpo", kl_coef=0.5)
    _, batch, loss_same, metrics_same = update_step(algo, policy, trajectories)
    assert metrics_same["train/kl"] == pytest.approx(0.0, abs=1e-6)  # reference == policy
    other = copy.deepcopy(policy)
    with torch.no_grad():
        other.head.bias.add_(torch.linspace(-1, 1, other.head.bias.numel()))
    _, _, loss_far, metrics_far = update_step(algo, policy, trajectories, reference=other)
    assert metrics_far["train/kl"] > 0.01
    assert loss_far.item() - loss_same.item() == pytest.approx(0.5 * metrics_far["train/kl"], rel=1e-4)
    batch.ref_logprobs = None
    with pytest.raises(ConfigError, match=re.escape("kl_coef=0.5 needs batch.ref_logprobs, got None")):
        algo.loss(policy, batch)


def test_entropy_coef_adds_bonus():
    policy = FakePolicy()
    trajectories = make_batch_trajectories(policy, MIXED)
    token_mean = {"loss_agg_mode": "token-mean", "kl_coef": 0.0}
    _, _, base, metrics = update_step(make_algorithm("grpo", **token_mean), policy, trajectories)
    _, _, bonus, _ = update_step(make_algorithm("grpo", entropy_coef=0.1, **token_mean), policy, trajectories)
    assert bonus.item() == pytest.approx(base.item() - 0.1 * metrics["train/entropy"], rel=1e-5)


def test_sft_is_token_mean_nll_and_ignores_advantages():
    policy = FakePolicy()
    trajectories = make_batch_trajectories(policy, MIXED)
    algo = SFT()
    batch = algo.training_batch(policy, trajectories, torch.randn(len(trajectories)))
    loss, metrics = algo.loss(policy, batch)
    with torch.no_grad():
        out = policy.forward(batch)
    mask = batch.loss_mask.bool()
    assert loss.item() == pytest.approx(-out.logprobs[mask].mean().item(), rel=1e-6)
    batch.advantages = torch.zeros_like(batch.advantages)
    assert algo.loss(policy, batch)[0].item() == pytest.approx(loss.item())
    assert metrics["train/nll"] == pytest.approx(loss.item())
    assert torch.equal(algo.compute_advantages(algo.advantage_input(trajectories)), torch.zeros(len(trajectories)))


def test_sft_steps_reduce_nll():
    policy = FakePolicy()
    trajectories = make_batch_trajectories(policy, MIXED)
    batch = policy.collate(trajectories)
    optimizer = torch.optim.Adam(policy.parameters(), lr=0.05)
    first = None
    for _ in range(20):
        loss, _ = SFT().loss(policy, batch)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.8 * first
