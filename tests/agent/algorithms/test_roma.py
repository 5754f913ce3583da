"""ROMA: the worst-view token KL, the clean-anchored auxiliary PG, the correctness gate (by hand), the views."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from mapo_agent.algorithms import ROMA, ROMAConfig, make_algorithm
from mapo_agent.algorithms import roma as roma_module
from mapo_agent.types import ForwardOutput, ForwardRequest, TrainBatch, Trajectory
from mapo_env.corruptions import SEEN_CORRUPTIONS
from mapo_env.errors import ConfigError
from tests.agent.algorithms.fake_policy import FakePolicy, make_batch_trajectories
from tests.agent.tiny_run import tiny_config

HALF, QUARTER, EIGHTH = math.log(0.5), math.log(0.25), math.log(0.125)
# Two rows, tokens 1-2 generated. Clean log-probs log .5 everywhere; view 0 and view 1 differ per token.
CLEAN = [[0.0, HALF, HALF], [0.0, HALF, HALF]]
VIEWS = {0: [[0.0, QUARTER, HALF]] * 2, 1: [[0.0, HALF, EIGHTH]] * 2}


class ViewTable:
    """A policy that returns fixed log-probs: the clean ones, or view k's when the request names view k."""

    def __init__(self) -> None:
        self.clean = torch.tensor(CLEAN, requires_grad=True)
        self.views = {k: torch.tensor(v, requires_grad=True) for k, v in VIEWS.items()}
        self.requests: list[ForwardRequest] = []

    def forward(self, batch: TrainBatch, request: ForwardRequest | None = None) -> ForwardOutput:
        request = request or ForwardRequest()
        self.requests.append(request)
        if request.images is None:
            logprobs = self.clean
        else:
            logprobs = self.views[int(request.view_key.split(":")[0].removeprefix("roma-view-"))]
        return ForwardOutput(logprobs=logprobs, entropy=torch.zeros(2, 3))


def table_batch(correct=(True, False), advantages=(1.0, -1.0)) -> TrainBatch:
    image = np.zeros((8, 8, 3), np.uint8)
    trajectories = [
        Trajectory([5, 6, 7], [0, 1, 1], [0.0, HALF, HALF], [image], group_id=0, sample_index=0, correct=ok)
        for ok in correct
    ]
    mask = torch.tensor([[0.0, 1.0, 1.0]] * 2)
    return TrainBatch(
        input_ids=torch.tensor([[5, 6, 7]] * 2),
        attention_mask=torch.ones(2, 3, dtype=torch.long),
        loss_mask=mask,
        old_logprobs=torch.tensor(CLEAN),
        group_ids=torch.zeros(2, dtype=torch.long),
        advantages=torch.tensor(advantages)[:, None] * mask,
        trajectories=trajectories,
    )


def roma(**overrides) -> ROMA:
    fields = {"kl_coef": 0.0, "loss_agg_mode": "token-mean", "consistency_coef": 1.0, "aux_pg_coef": 1.0}
    algo = ROMA(ROMAConfig(**{**fields, **overrides}))
    algo.aux_view = 1
    return algo


def k3(clean: float, view: float) -> float:
    return math.exp(view - clean) - (view - clean) - 1


def test_worst_view_kl_takes_the_max_over_views_at_each_token():
    policy, batch = ViewTable(), table_batch()
    out = policy.forward(batch)
    terms, metrics = roma().extra_loss_terms(policy, batch, out)
    token1 = max(k3(HALF, QUARTER), k3(HALF, HALF))  # view 0 is the worst here: 0.193147
    token2 = max(k3(HALF, HALF), k3(HALF, EIGHTH))  # view 1 is the worst here: 0.636294
    expected = (token1 + token2) / 4  # row 1 failed: 0 on its 2 tokens; token mean over all 4 loss tokens
    assert expected == pytest.approx(0.207360, abs=1e-6)
    assert terms["robust_kl_loss"].item() == pytest.approx(expected, rel=1e-6)
    assert metrics["train/robust_kl"] == pytest.approx(expected, rel=1e-6)
    mean_view = ((k3(HALF, QUARTER) + 0) / 2 + (0 + k3(HALF, EIGHTH)) / 2) / 4
    assert metrics["train/robust_kl_mean_view"] == pytest.approx(mean_view, rel=1e-6)
    assert [r.view_key.split(":")[0] for r in policy.requests[1:]] == ["roma-view-0", "roma-view-1"]
    assert all(len(r.images) == 2 for r in policy.requests[1:])  # one corrupted image per row


def test_the_kl_moves_the_corrupted_views_towards_the_clean_anchor():
    policy, batch = ViewTable(), table_batch()
    terms, _ = roma(aux_pg_coef=0.0).extra_loss_terms(policy, batch, policy.forward(batch))
    terms["robust_kl_loss"].backward()
    assert policy.clean.grad is None  # the clean branch is the anchor (detached)
    grad = policy.views[1].grad
    # d k3 / d view = exp(view − clean) − 1 at the worst view's token, / 4 tokens; row 1 gated out
    assert grad[0, 2].item() == pytest.approx((0.25 - 1) / 4, rel=1e-6) and grad[1].abs().sum() == 0
    assert policy.views[0].grad[0, 1].item() == pytest.approx((0.5 - 1) / 4, rel=1e-6)
    free = ViewTable()
    terms, _ = roma(aux_pg_coef=0.0, clean_branch_gradient=True).extra_loss_terms(free, batch, free.forward(batch))
    terms["robust_kl_loss"].backward()
    assert free.clean.grad is not None and free.clean.grad[0, 2].item() != 0


def test_auxiliary_pg_weights_one_view_by_the_clean_advantages():
    policy, batch = ViewTable(), table_batch()
    out = policy.forward(batch)
    terms, _ = roma(consistency_coef=0.0, aux_surrogate="reinforce").extra_loss_terms(policy, batch, out)
    # view 1's log-probs times the clean advantage (+1 on row 0; row 1 failed and is gated): −Σ A·log π / 4
    assert terms["aux_pg_loss"].item() == pytest.approx(-(HALF + EIGHTH) / 4, rel=1e-6)  # 0.693147
    terms, _ = roma(consistency_coef=0.0).extra_loss_terms(policy, batch, out)
    # PPO-clip against the clean generation log-probs: ratios 1 and .125/.5 = .25 (A > 0: min(r, clip) = .25)
    assert terms["aux_pg_loss"].item() == pytest.approx(-(1.0 + 0.25) / 4, rel=1e-6)
    negative = table_batch(correct=(True, True), advantages=(1.0, -2.0))
    terms, _ = roma(consistency_coef=0.0, aux_surrogate="reinforce").extra_loss_terms(policy, negative, out)
    assert terms["aux_pg_loss"].item() == pytest.approx(-(HALF + EIGHTH) * (1 - 2) / 4, rel=1e-6)


def test_correctness_gate_restricts_both_terms_to_successful_trajectories():
    policy = ViewTable()
    out = policy.forward(table_batch())
    everything, _ = roma(correctness_gate=False).extra_loss_terms(policy, table_batch(), out)
    both_right, _ = roma().extra_loss_terms(policy, table_batch(correct=(True, True)), out)
    none_right, metrics = roma().extra_loss_terms(policy, table_batch(correct=(False, False)), out)
    worst = k3(HALF, QUARTER) + k3(HALF, EIGHTH)
    assert everything["robust_kl_loss"].item() == pytest.approx(2 * worst / 4, rel=1e-6)
    assert both_right["robust_kl_loss"].item() == pytest.approx(2 * worst / 4, rel=1e-6)
    assert none_right["robust_kl_loss"].item() == 0 and none_right["aux_pg_loss"].item() == 0
    assert metrics["train/robust_gated_frac"] == 0.0


def test_views_are_seen_corruptions_drawn_per_group_and_kept_for_the_batch():
    policy = FakePolicy()
    trajectories = make_batch_trajectories(policy, [[True, False, True], [False, True]])
    algo = ROMA(ROMAConfig(num_views=3, kl_coef=0.0))
    prepared = algo.prepare(trajectories)
    batch = algo.training_batch(policy, prepared.trajectories, prepared.advantages)
    draws = {g: algo.views_of(g) for g in (0, 1)}
    assert all(len(d) == 3 and {v.name for v in d} <= set(SEEN_CORRUPTIONS) for d in draws.values())
    first = algo.view_images(batch, 0)
    assert len(first) == 5 and all(a.shape == t.images[0].shape for a, t in zip(first, batch.trajectories))
    assert any((a != t.images[0]).any() for a, t in zip(first, batch.trajectories))
    same_group = [a for a, t in zip(first, batch.trajectories) if t.group_id == 0]
    originals = [t.images[0] for t in batch.trajectories if t.group_id == 0]
    assert len(same_group) == 3 and originals  # a group's rollouts share the draw (name, severity, seed)
    assert algo.views_of(0) == draws[0]  # every loss call of the batch sees the same views
    algo.prepare(trajectories)
    assert algo.views_of(0) != draws[0] or algo.views_of(1) != draws[1]  # fresh for the next batch
    _, metrics = algo.loss(policy, batch)
    assert math.isfinite(metrics["train/robust_kl"]) and "train/aux_pg_loss" in metrics
    assert [c["images"] is not None for c in policy.calls[-4:]] == [False, True, True, True]


def test_view_target_leaves_the_tool_crops_clean():
    policy = FakePolicy()
    trajectories = make_batch_trajectories(policy, [[True, False]])
    for t in trajectories:
        t.images = t.images * 2  # the question's image + one crop
    algo = ROMA(ROMAConfig(corrupt_target="view"))
    batch = policy.collate(algo.prepare(trajectories).trajectories)
    images = algo.view_images(batch, 0)
    assert np.array_equal(images[1], batch.trajectories[0].images[1])
    assert not np.array_equal(images[0], batch.trajectories[0].images[0])


def test_roma_composes_with_mapo_advantages_and_refuses_misuse():
    assert make_algorithm("roma", advantage_estimator="mapo").config.advantage_estimator == "mapo"
    defaults = make_algorithm("roma").config
    # ours, not the paper's: its method and experiment sections were not available (see roma's docstring)
    assert "Coefficients (unverified)" in (roma_module.__doc__ or "")
    assert (defaults.num_views, defaults.consistency_coef, defaults.aux_pg_coef, defaults.kl_coef) == (
        2,
        0.02,
        0.5,
        0.04,
    )
    with pytest.raises(ConfigError, match=re.escape("includes unseen corruption(s) ['fog']; the unseen set is kept")):
        ROMAConfig(corruptions="jpeg,fog")
    with pytest.raises(ConfigError, match="num_views must be >= 1"):
        ROMAConfig(num_views=0)
    with pytest.raises(ConfigError, match="severities must be a non-empty tuple"):
        ROMAConfig(severities=(0, 6))
    with pytest.raises(ConfigError, match="aux_pg_coef must be >= 0"):
        ROMAConfig(aux_pg_coef=-1.0)


def test_two_trainer_steps_on_the_bundled_tiny_agent(tmp_path):
    from mapo_agent.trainer import Trainer

    config = tiny_config(tmp_path, algo="roma", algo_kwargs={"num_views": 2, "consistency_coef": 0.02}, sft_steps=0)
    trainer = Trainer(config)
    before = [p.detach().clone() for p in trainer.policy.trainable_parameters()]
    rows = [trainer._train_step(step) for step in range(2)]
    for metrics in rows:
        for key in ("train/loss", "train/robust_kl", "train/robust_kl_loss", "train/aux_pg_loss", "train/pg_loss"):
            assert math.isfinite(metrics[key]), key
        assert 0.0 <= metrics["train/robust_gated_frac"] <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.trainable_parameters()))
