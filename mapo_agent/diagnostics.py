"""Gradient-noise diagnostics: how noisy is the policy-gradient estimate under each algorithm's advantage?

MAPO's paper claims its coupled advantage lowers the variance of the policy gradient compared with
outcome-only GRPO. :func:`gradient_noise` measures it on *identical* rollouts: the same trajectories,
the same random sub-batches of question groups, only the advantage (and hence the loss) differs.

For each algorithm and each of ``resamples`` sub-batches (half of the groups, drawn once and shared by
all algorithms), it computes the gradient of the algorithm's loss and reports, over sub-batches,

- ``variance``: the trace of the covariance of the flattened gradient, ``E||g - E g||^2``;
- ``relative_variance``: ``variance / ||E g||^2``, the noise-to-signal ratio (scale-free: MAPO's
  advantage is a sum of two normalised terms, so its raw scale is larger by construction);
- ``mean_norm``: ``||E g||``.

It keeps ``resamples`` flattened gradients in memory: use it on small models, or pass a subset of the
parameters (e.g. one layer) for large ones.

:class:`GradientNoiseCallback` runs it every N steps of a training run and logs ``diag/*`` metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mapo_agent.algorithms import Algorithm, make_algorithm
from mapo_agent.types import TrainablePolicy, Trajectory

if TYPE_CHECKING:
    from mapo_agent.trainer import Trainer


@dataclass
class GradientNoise:
    """Gradient statistics of one algorithm over shared sub-batches (see the module docstring)."""

    variance: float
    relative_variance: float
    mean_norm: float


def gradient_noise(
    policy: TrainablePolicy,
    parameters: Sequence[torch.nn.Parameter],
    trajectories: list[Trajectory],
    algorithms: dict[str, Algorithm],
    *,
    resamples: int = 8,
    fraction: float = 0.5,
    seed: int = 0,
) -> dict[str, GradientNoise]:
    """Gradient noise of each algorithm on the same trajectories and the same sub-batches.

    Args:
        policy: The policy whose loss is differentiated (its parameters are not changed).
        parameters: The parameters whose gradient is measured.
        trajectories: One rollout batch (several question groups).
        algorithms: Name -> algorithm; their advantages are computed on the whole batch first (group
            statistics need whole groups), then sub-batches of groups are drawn.
        resamples: Number of sub-batches.
        fraction: Share of the groups in each sub-batch.
        seed: Seed of the sub-batch draws.
    """
    groups = sorted({t.group_id for t in trajectories})
    rng = np.random.default_rng(seed)
    size = max(1, round(fraction * len(groups)))
    subsets = [set(rng.choice(groups, size=size, replace=False).tolist()) for _ in range(resamples)]
    results = {}
    for name, algorithm in algorithms.items():
        advantages = algorithm.compute_advantages(algorithm.advantage_input(trajectories))
        grads = []
        for subset in subsets:
            rows = [i for i, t in enumerate(trajectories) if t.group_id in subset]
            batch = algorithm.training_batch(policy, [trajectories[i] for i in rows], advantages[rows])
            if algorithm.needs_reference_model:  # the reference is the policy being measured: its KL gradient is 0
                with torch.no_grad():
                    batch.ref_logprobs = policy.forward(batch).logprobs.detach()
            for p in parameters:
                p.grad = None
            loss, _ = algorithm.loss(policy, batch)
            loss.backward()
            flat = [(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in parameters]
            grads.append(torch.cat(flat))
        stacked = torch.stack(grads).double()  # (R, P)
        mean = stacked.mean(0)
        variance = float(((stacked - mean) ** 2).sum(1).mean() * len(grads) / max(len(grads) - 1, 1))
        norm_sq = float(mean.pow(2).sum())
        results[name] = GradientNoise(variance, variance / norm_sq if norm_sq > 0 else float("inf"), norm_sq**0.5)
    for p in parameters:
        p.grad = None
    return results


class GradientNoiseCallback:
    """Every ``every`` steps of RL, measure the gradient noise of several advantages on a fresh batch.

    Logs ``diag/grad_var/<name>``, ``diag/grad_rel_var/<name>`` and, for each name after the first,
    ``diag/grad_var_ratio/<name>_over_<first>`` and ``diag/grad_rel_var_ratio/...``.

    Args:
        names: Algorithms to compare (the first is the reference), e.g. ``("grpo", "mapo")``.
        every: Measure every N steps (cold-start steps are skipped).
        resamples: Sub-batches per measurement.
        algorithm_kwargs: Per-name config fields.
    """

    def __init__(
        self,
        names: Sequence[str] = ("grpo", "mapo"),
        every: int = 10,
        resamples: int = 8,
        algorithm_kwargs: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        kwargs = algorithm_kwargs or {}
        self.algorithms = {name: make_algorithm(name, **kwargs.get(name, {})) for name in names}
        self.names = list(names)
        self.every = every
        self.resamples = resamples
        self.history: list[dict[str, float]] = []

    def on_step_end(self, trainer: Trainer, step: int, metrics: dict[str, float]) -> None:
        """Measure when due (RL stage only) and add the ``diag/*`` metrics."""
        if trainer.config.stage_at(step).name != "rl" or (step + 1) % self.every:
            return
        # A fresh batch at the current weights: the next step's draw (collect is deterministic, so training
        # then draws this same batch again and the measurement does not perturb the run).
        trajectories = trainer.collect(min(step + 1, trainer.config.total_steps - 1))
        trainer.policy.train()
        noise = gradient_noise(
            trainer.policy,
            trainer.policy.trainable_parameters(),
            trajectories,
            self.algorithms,
            resamples=self.resamples,
            seed=trainer.config.seed + step,
        )
        row = {"step": float(step)}
        reference = noise[self.names[0]]
        for name, stats in noise.items():
            row[f"diag/grad_var/{name}"] = stats.variance
            row[f"diag/grad_rel_var/{name}"] = stats.relative_variance
            if name != self.names[0]:
                row[f"diag/grad_var_ratio/{name}_over_{self.names[0]}"] = stats.variance / reference.variance
                row[f"diag/grad_rel_var_ratio/{name}_over_{self.names[0]}"] = (
                    stats.relative_variance / reference.relative_variance
                )
        self.history.append(row)
        metrics.update({k: v for k, v in row.items() if k != "step"})
