import numpy as np
import pytest
import torch

from mapo_agent.algorithms import make_algorithm
from mapo_agent.diagnostics import gradient_noise

from .algorithms.fake_policy import FakePolicy, make_batch_trajectories


@pytest.fixture
def batch():
    policy = FakePolicy(seed=3)
    outcomes = [[True, False, False, True], [False, False, True, True], [True, True, False, False]] * 2
    trajectories = make_batch_trajectories(policy, outcomes, seed=1)
    rng = np.random.default_rng(0)
    for t in trajectories:
        t.alignment_scores = [float(rng.uniform())]
        t.num_tool_calls = 1
    return policy, trajectories


def test_identical_advantages_give_identical_noise(batch):
    policy, trajectories = batch
    algorithms = {"grpo": make_algorithm("grpo"), "mapo0": make_algorithm("mapo", advantage={"semantic_coef": 0.0})}
    noise = gradient_noise(policy, list(policy.parameters()), trajectories, algorithms, resamples=4)
    assert noise["grpo"].variance > 0
    assert noise["mapo0"].variance == pytest.approx(noise["grpo"].variance, rel=1e-9)
    assert noise["mapo0"].mean_norm == pytest.approx(noise["grpo"].mean_norm, rel=1e-9)


def test_noise_matches_a_direct_computation(batch):
    policy, trajectories = batch
    algorithm = make_algorithm("mapo")
    noise = gradient_noise(policy, list(policy.parameters()), trajectories, {"mapo": algorithm}, resamples=3, seed=5)
    assert all(p.grad is None for p in policy.parameters())  # the measurement leaves no gradient behind
    # recompute by hand with the same sub-batches
    groups = sorted({t.group_id for t in trajectories})
    rng = np.random.default_rng(5)
    subsets = [set(rng.choice(groups, size=round(0.5 * len(groups)), replace=False).tolist()) for _ in range(3)]
    advantages = algorithm.compute_advantages(algorithm.advantage_input(trajectories))
    grads = []
    for subset in subsets:
        rows = [i for i, t in enumerate(trajectories) if t.group_id in subset]
        policy.zero_grad()
        sub = algorithm.training_batch(policy, [trajectories[i] for i in rows], advantages[rows])
        with torch.no_grad():  # GRPO's KL to a reference taken at the measured weights (zero gradient)
            sub.ref_logprobs = policy.forward(sub).logprobs
        loss, _ = algorithm.loss(policy, sub)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in policy.parameters()]).double())
    g = torch.stack(grads)
    expected = float(((g - g.mean(0)) ** 2).sum(1).sum() / 2)
    assert noise["mapo"].variance == pytest.approx(expected, rel=1e-6)
    assert noise["mapo"].relative_variance == pytest.approx(expected / float(g.mean(0).pow(2).sum()), rel=1e-6)
