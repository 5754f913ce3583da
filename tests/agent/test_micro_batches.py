"""Micro-batching by a token budget leaves the gradient unchanged, on the real tiny agent.

The same minibatch, accumulated under different token budgets (one pass; one sequence per micro-batch;
groups split and kept), must give the same gradient: every micro-batch's loss divides by the
minibatch's counts (:class:`~mapo_agent.types.LossNormalizer`), so the shares add up to the unsplit loss.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mapo_agent.algorithms import make_algorithm
from mapo_agent.cli import train
from mapo_agent.config import EnvConfig, ModelConfig, OptimConfig, RolloutConfig, TrainConfig
from mapo_agent.metrics import read_metrics
from mapo_agent.trainer import Trainer

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.usefixtures("one_thread")]


def make_trainer(tmp_path: Path, algo: str, sft: bool, checkpointing: bool = False) -> Trainer:
    config = TrainConfig(
        model=ModelConfig(gradient_checkpointing=checkpointing),
        algo=algo,
        sft_algo=algo if sft else "grounded_sft",
        steps=0 if sft else 1,
        sft_steps=1 if sft else 0,
        output_dir=str(tmp_path / ("run-gc" if checkpointing else "run")),
        eval_episodes=1,
        progress_bar=False,
        cpu=True,
        env=EnvConfig(kwargs={"alignment": "lexical", "max_turns": 3}),
        rollout=RolloutConfig(questions_per_step=3, group_size=3, max_new_tokens=12),
        optim=OptimConfig(warmup_steps=0),
    )
    return Trainer(config)


def minibatch(trainer: Trainer, sft: bool):
    """The step-0 trajectories (oracle for SFT, sampled otherwise) and, for RL, distinct advantages per row."""
    algorithm = trainer._algorithm(trainer.config.stage_at(0))
    if sft:  # the SFT algorithms keep one copy of each oracle episode
        prepared = algorithm.prepare(trainer.collect(0))
        return algorithm, prepared.trajectories, prepared.advantages
    trajectories = trainer.collect(0)  # every group (no dynamic-sampling filter: an untrained model fails them all)
    generator = torch.Generator().manual_seed(0)
    return algorithm, trajectories, torch.randn(len(trajectories), generator=generator)


def gradient(trainer: Trainer, algorithm, trajectories, advantages, budget):
    trainer.config.optim.max_tokens_per_micro_batch = budget
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.policy.train()
    metrics = trainer.accumulate_gradients(algorithm, trajectories, advantages)
    grads = [p.grad.detach().clone() for p in trainer.policy.trainable_parameters() if p.grad is not None]
    return grads, metrics


@pytest.mark.parametrize(
    ("algo", "sft"),
    [
        ("grounded_sft", True),  # NLL + caption + pointing terms with their own denominators
        ("sft", True),
        ("grpo", False),  # seq-mean-token-mean, k3 KL to a reference model
        ("dapo", False),  # token-mean
        ("dr_grpo", False),  # seq-mean-token-sum-norm
        ("mapo", False),
    ],
)
def test_the_gradient_does_not_depend_on_the_token_budget(tmp_path, algo, sft):
    trainer = make_trainer(tmp_path, algo, sft)
    algorithm, trajectories, advantages = minibatch(trainer, sft)
    if algorithm.needs_reference_model:  # a reference that differs from the policy, so the KL has a gradient
        trainer.reference = trainer.policy.frozen_copy()
        with torch.no_grad():
            generator = torch.Generator().manual_seed(1)
            for p in trainer.reference.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=generator))
    longest = max(len(t.input_ids) for t in trajectories)
    whole, whole_metrics = gradient(trainer, algorithm, trajectories, advantages, None)
    assert whole_metrics["train/micro_batches"] == 1
    for budget in (longest, 2 * longest, 4 * longest):  # one row per chunk; groups split; groups whole
        split, metrics = gradient(trainer, algorithm, trajectories, advantages, budget)
        assert metrics["train/micro_batch_tokens_max"] <= budget
        assert metrics["train/micro_batches"] > 1 or budget >= len(trajectories) * longest
        assert len(split) == len(whole) and any(g.abs().sum() > 0 for g in whole)
        for a, b in zip(split, whole):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        assert metrics["train/loss"] == pytest.approx(whole_metrics["train/loss"], rel=1e-4, abs=1e-6)


def test_vgpo_keeps_every_question_group_in_one_micro_batch(tmp_path):
    trainer = make_trainer(tmp_path, "vgpo", sft=False)
    algorithm, trajectories, _ = minibatch(trainer, sft=False)
    trainer.config.optim.max_tokens_per_micro_batch = 1  # every group is over the budget
    plan = trainer._micro_batches(algorithm, trajectories)
    groups = [{trajectories[r].group_id for r in rows} for rows in plan]
    assert all(len(g) == 1 for g in groups) and len(plan) == len({t.group_id for t in trajectories})
    assert len(trainer._micro_batches(make_algorithm("grpo"), trajectories)) == len(trajectories)  # GRPO splits


def test_two_processes_report_the_loss_and_gradient_norm_of_one(tmp_path):
    """DDP: each process divides by the counts summed over both and backpropagates its loss x 2 (DDP averages).

    The cold start's oracle episodes do not depend on how questions are split between processes, so one
    SFT step on 2 processes must see the loss and the gradient norm of the same step on 1 process.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    args = [
        "--steps", "0", "--sft-steps", "1", "--save-every", "0", "--eval-episodes", "2",
        "--rollout.questions-per-step", "4", "--rollout.group-size", "2",
        "--env.kwargs", "alignment=lexical", "max_turns=3", "--no-progress-bar", "--cpu",
    ]  # fmt: skip
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "mapo_agent.cli.train", *args, "--output-dir", str(tmp_path / "two"),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert train.main([*args, "--output-dir", str(tmp_path / "one")]) == 0
    two, one = (read_metrics(tmp_path / name / "metrics.jsonl")[0] for name in ("two", "one"))
    assert two["rollout/episodes"] * 2 == one["rollout/episodes"]  # each process played half the questions
    for key in ("train/loss", "train/grad_norm", "train/caption_loss", "train/pointing_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-4), key


def test_gradient_checkpointing_gives_the_same_gradient_even_with_attention_outputs(tmp_path):
    """Grounded SFT's pointing loss reads attention probabilities (an eager kernel for that pass): the
    backward's recomputation must run the same kernel, and the gradient must not change."""
    plain = make_trainer(tmp_path, "grounded_sft", sft=True)
    algorithm, trajectories, advantages = minibatch(plain, sft=True)
    budget = max(len(t.input_ids) for t in trajectories)  # one episode per micro-batch
    expected, _ = gradient(plain, algorithm, trajectories, advantages, budget)
    checkpointed = make_trainer(tmp_path, "grounded_sft", sft=True, checkpointing=True)
    got, metrics = gradient(checkpointed, algorithm, trajectories, advantages, budget)
    assert metrics["train/pointing_loss"] > 0 and metrics["train/micro_batches"] > 1
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
