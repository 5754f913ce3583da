"""OPD and VA-OPD: a_t, the rollout weights, the grouped KL and the reverse KL by hand; the teacher's passes."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from mapo_agent.algorithms import OPD, VAOPD, OPDConfig, VAOPDConfig, make_algorithm
from mapo_agent.algorithms.distillation import (
    TokenMismatch,
    degrade_image,
    grouped_token_kl,
    reverse_kl,
    rollout_weights,
    visual_advantage,
)
from mapo_agent.types import ForwardRequest, LossNormalizer
from mapo_env.errors import ConfigError
from tests.agent.algorithms.fake_policy import FakePolicy, make_batch_trajectories
from tests.agent.tiny_run import tiny_config

MIXED = [[True, False, True], [False, True]]


def test_visual_advantage_is_the_positive_part_of_the_teacher_gap():
    full = torch.tensor([[0.0, -1.0, -2.0, -0.5]])
    degraded = torch.tensor([[0.0, -1.5, -1.0, -0.5]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    assert torch.equal(visual_advantage(full, degraded, mask), torch.tensor([[0.0, 0.5, 0.0, 0.0]]))


def test_rollout_weights_reproduce_the_papers_example():
    weights = rollout_weights(torch.tensor([0.045, 0.03, 0.02, 0.01]), torch.zeros(4, dtype=torch.long))
    assert weights.tolist() == pytest.approx([0.656, 0.206, 0.095, 0.044], abs=5e-4)  # population std
    interleaved = rollout_weights(torch.tensor([0.045, 7.0, 0.03, 7.0, 0.02, 0.01]), torch.tensor([0, 1, 0, 2, 0, 0]))
    assert interleaved[[0, 2, 4, 5]].tolist() == pytest.approx(weights.tolist(), rel=1e-6)  # groups by id
    assert interleaved[[1, 3]].tolist() == [1.0, 1.0]  # a group of one
    assert rollout_weights(torch.full((4,), 0.2), torch.zeros(4, dtype=torch.long)).tolist() == [0.25] * 4


def test_grouped_kl_splits_the_top_fifth_of_tokens_by_visual_advantage():
    kl = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    a = torch.tensor([[9.0, 0.3, 0.1, 0.3, 0.0, 0.2]])  # position 0 is the prompt: ignored
    # ⌈0.2 · 5⌉ = 1 high token: a = 0.3 at positions 1 and 3, the earlier wins; the rest: 2, 3, 4, 5
    assert grouped_token_kl(kl, a, mask, 0.2, 0.5).item() == pytest.approx(0.5 * 1.0 + 0.5 * 3.5)
    # ⌈0.4 · 5⌉ = 2 high tokens (positions 1 and 3): means 2 and 11/3; λ = 0.7
    assert grouped_token_kl(kl, a, mask, 0.4, 0.7).item() == pytest.approx(0.7 * 2.0 + 0.3 * 11 / 3)
    single = grouped_token_kl(kl[:, :2], a[:, :2], mask[:, :2], 0.2, 0.5)
    assert single.item() == pytest.approx(1.0)  # no low group: all the mass on the high one
    assert grouped_token_kl(kl, a, torch.zeros_like(mask), 0.2, 0.5).item() == 0.0


def test_reverse_kl_over_the_vocabulary():
    student = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    teacher = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]]))
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.143841
    assert reverse_kl(student, teacher).tolist() == pytest.approx([expected, 0.0], abs=1e-6)


def test_degraded_image_is_ten_percent_resolution_upsampled_by_nearest_neighbour():
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    low = degrade_image(image)
    assert low.shape == image.shape and low.dtype == np.uint8
    blocks = low.reshape(4, 10, 6, 10, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()  # constant 10 x 10 blocks: a 4 x 6 image blown up


def distillation_setup(name: str, **config):
    student, teacher = FakePolicy(seed=0), FakePolicy(seed=3)
    trajectories = make_batch_trajectories(student, MIXED)
    algo = make_algorithm(name, **config).set_teacher(teacher)
    prepared = algo.prepare(trajectories)
    return student, teacher, algo, algo.training_batch(student, prepared.trajectories, prepared.advantages)


def by_hand(student, teacher, batch, variant: str) -> float:
    """The paper's loss recomputed from the two policies' distributions with the functions above."""
    request = ForwardRequest(log_distributions=True)
    mask = batch.loss_mask > 0
    with torch.no_grad():
        s = student.forward(batch, request)
        t = teacher.forward(batch, request)
        degraded = [degrade_image(tr.images[0]) for tr in batch.trajectories]
        t_low = teacher.forward(batch, ForwardRequest(images=degraded))
    kl = torch.zeros_like(s.logprobs).masked_scatter(mask, reverse_kl(s.log_distributions, t.log_distributions))
    groups = batch.group_ids
    total = 0.0
    for g in torch.unique(groups):
        rows = (groups == g).nonzero().flatten().tolist()
        if variant == "opd":
            total += sum(float(kl[r][mask[r]].mean()) for r in rows) / len(rows)
            continue
        a = visual_advantage(t.logprobs, t_low.logprobs, batch.loss_mask)
        means = torch.tensor([float(a[r][mask[r]].mean()) for r in rows])
        z = (means - means.mean()) / (means.std(correction=0) + 1e-6)
        w = torch.softmax(z, dim=0)
        for weight, r in zip(w.tolist(), rows):
            n = int(mask[r].sum())
            top = math.ceil(0.2 * n)
            values = kl[r][mask[r]]
            order = sorted(range(n), key=lambda i: -float(a[r][mask[r]][i]))
            high, rest = values[order[:top]], values[order[top:]]
            total += weight * (0.5 * float(high.mean()) + 0.5 * float(rest.mean()))
    return total / len(torch.unique(groups))


@pytest.mark.parametrize("name", ["opd", "va_opd"])
def test_loss_is_the_papers_weighted_grouped_reverse_kl(name):
    student, teacher, algo, batch = distillation_setup(name)
    loss, metrics = algo.loss(student, batch)
    rows = len(batch.trajectories)
    # the teacher's full and degraded passes are one batched forward (2B rows), without gradient
    assert [(c["rows"], c["grad_enabled"]) for c in teacher.calls] == [(2 * rows if name == "va_opd" else rows, False)]
    assert loss.item() == pytest.approx(by_hand(student, teacher, batch, name), rel=1e-5)
    assert metrics["train/distill_kl"] == pytest.approx(loss.item()) and loss.item() > 0
    loss.backward()
    assert student.head.weight.grad is not None and teacher.head.weight.grad is None
    assert ("train/visual_advantage_mean" in metrics) == (name == "va_opd")
    assert torch.equal(algo.compute_advantages(algo.advantage_input(batch.trajectories)), torch.zeros(rows))


def test_teacher_and_student_must_tokenise_alike():
    class ShiftedTeacher(FakePolicy):
        def collate(self, trajectories):
            batch = super().collate(trajectories)
            batch.input_ids = batch.input_ids.roll(1, dims=1)
            return batch

    student = FakePolicy()
    trajectories = make_batch_trajectories(student, MIXED)
    algo = VAOPD().set_teacher(ShiftedTeacher(seed=3))
    batch = algo.training_batch(student, trajectories)
    with pytest.raises(
        TokenMismatch, match=re.escape("the teacher's token ids differ from the student's (full pass)")
    ):
        algo.loss(student, batch)


def test_micro_batches_add_up_to_the_minibatch_loss():
    student, _, algo, batch = distillation_setup("va_opd")
    whole, _ = algo.loss(student, batch)
    normalizer = LossNormalizer(tokens=1.0, sequences_with_tokens=1.0, sequences=1.0, extra={"prompts": 2.0})
    parts = []
    for group in (0, 1):
        rows = [i for i, t in enumerate(batch.trajectories) if t.group_id == group]
        part = algo.training_batch(student, [batch.trajectories[i] for i in rows])
        assert algo.loss_counts(student, part) == {"prompts": 1.0}
        part.normalizer = normalizer
        parts.append(algo.loss(student, part)[0])
    assert sum(p.item() for p in parts) == pytest.approx(whole.item(), rel=1e-5)
    assert algo.needs_whole_groups and algo.loss_count_names == ("prompts",)


def test_defaults_and_misuse():
    va, opd = make_algorithm("va_opd").config, make_algorithm("opd").config
    assert (va.degrade_scale, va.weight_temperature, va.top_ratio, va.high_weight) == (0.1, 1.0, 0.2, 0.5)
    assert (va.rollout_weighting, va.token_grouping) == ("visual_advantage", "visual_advantage")
    assert (opd.rollout_weighting, opd.token_grouping, opd.teacher_model) == ("uniform", "none", None)
    assert isinstance(make_algorithm("va_opd"), OPD) and not make_algorithm("opd").needs_reference_model
    with pytest.raises(ConfigError, match="loss_agg_mode must be 'seq-mean-token-mean'"):
        OPDConfig(loss_agg_mode="token-mean")
    with pytest.raises(ConfigError, match="degrade_scale must be in \\(0, 1\\)"):
        VAOPDConfig(degrade_scale=1.5)
    with pytest.raises(ConfigError, match="rollout_weighting"):
        OPDConfig(rollout_weighting="softmax")
    with pytest.raises(ConfigError, match="has no from_pretrained"):
        OPD().load_teacher(object())


def test_two_trainer_steps_distil_the_bundled_agent_into_a_perturbed_student(tmp_path):
    from mapo_agent.policy import HFPolicy
    from mapo_agent.trainer import Trainer

    # teacher_model None: the bundled (untrained) tiny agent, a perturbed copy is the student
    config = tiny_config(tmp_path, algo="va_opd", sft_steps=0)
    student = HFPolicy.from_pretrained(device="cpu", max_new_tokens=24)
    torch.manual_seed(0)
    with torch.no_grad():  # a student that differs from its teacher
        for p in student.trainable_parameters():
            p.add_(0.05 * p.std() * torch.randn_like(p))
    trainer = Trainer(config, policy=student)
    rows = [trainer._train_step(step) for step in range(2)]
    algorithm = trainer.algorithms["rl"]
    assert isinstance(algorithm, VAOPD) and algorithm.teacher is not None
    assert all(not p.requires_grad for p in algorithm.teacher.parameters())
    for metrics in rows:
        assert metrics["train/distill_kl"] > 0 and math.isfinite(metrics["train/loss"])
        assert metrics["train/visual_advantage_mean"] >= 0 and 0 < metrics["train/rollout_weight_max"] <= 1
