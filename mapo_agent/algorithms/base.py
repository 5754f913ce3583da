"""The algorithm plug-in contract: what a trainer calls, and the registry that names algorithms.

A trainer drives any registered algorithm through the same calls and never looks at its name::

    algo = make_algorithm("mapo", kl_coef=0.0)            # or ALGORITHMS.get(name)(config)
    algo.bind(RunContext(max_new_tokens=64, max_turns=6))  # what the run's generation budget is
    trajectories = collect(source=algo.rollout_source)     # "policy" samples, "oracle" = scripted expert
    while algo.select_groups(trajectories) is short and rounds < algo.max_sampling_rounds:
        trajectories += collect(more questions)            # dynamic sampling refills the batch (DAPO)
    prepared = algo.prepare(trajectories)                  # select groups -> shape rewards -> advantages
    batch = algo.training_batch(policy, prepared.trajectories, prepared.advantages)  # collate + advantages
    if algo.needs_reference_model:
        batch.ref_logprobs = reference.forward(batch).logprobs.detach()
    loss, metrics = algo.loss(policy, batch)               # policy.forward(batch, ForwardRequest(...)) as needed
    loss.backward(); optimizer.step()

``prepare`` is a shortcut for ``select_groups`` -> ``advantage_input`` (which calls
``shape_rewards``) -> ``compute_advantages``; a trainer that over-samples to refill a batch after
dynamic sampling can call the steps one by one. Minibatches should keep each question group whole
(VGPO re-weights within groups of the batch it is given).

The policy collates tokens and images only; :meth:`Algorithm.training_batch` puts the advantages on
the loss mask. A loss that needs more from the model than log-probs (hidden states, another view of
the images) asks with a :class:`~mapo_agent.types.ForwardRequest`, never with a new keyword.

Adding an algorithm: one module with a config dataclass and a class decorated with
``@ALGORITHMS.register("name")``, imported in ``mapo_agent/algorithms/__init__.py``. No trainer edit.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from mapo_agent.algorithms.advantages import check_choice, check_field_types
from mapo_agent.algorithms.losses import LossAggMode, broadcast_advantages
from mapo_agent.registry import Registry
from mapo_agent.types import AdvantageInput, TrainablePolicy, TrainBatch, Trajectory
from mapo_env.errors import ConfigError

RolloutSource = Literal["policy", "oracle"]


@dataclass(frozen=True)
class RunContext:
    """What an algorithm may know about the run it trains in; the trainer binds it (:meth:`Algorithm.bind`).

    Attributes:
        max_new_tokens: Token cap of one generated turn.
        max_turns: The environment's turn limit.
    """

    max_new_tokens: int
    max_turns: int

    @property
    def generation_budget(self) -> int:
        """The most tokens one episode can generate: ``max_new_tokens * max_turns``."""
        return self.max_new_tokens * self.max_turns


@dataclass
class AlgorithmConfig:
    """Settings every algorithm has.

    Attributes:
        loss_agg_mode: How per-token losses become a scalar (see
            :data:`mapo_agent.algorithms.losses.LossAggMode`); ``"token-mean"`` by default.
        loss_norm_length: The constant L of ``"seq-mean-token-sum-norm"``; ``None`` (default) uses
            the run's generation budget (:attr:`RunContext.generation_budget`, Dr.GRPO's constant),
            never a batch's padded width.
    """

    loss_agg_mode: LossAggMode = "token-mean"
    loss_norm_length: int | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        check_choice("loss_agg_mode", self.loss_agg_mode, LossAggMode)
        if self.loss_norm_length is not None and self.loss_norm_length < 1:
            raise ConfigError(
                f"loss_norm_length must be >= 1 or None, got {self.loss_norm_length!r}; "
                "use the run's generation budget (None, Dr.GRPO) or a constant."
            )


class GroupSelection(list):
    """The trajectories an algorithm keeps for the update (a plain ``list``), plus what it dropped.

    Attributes:
        num_groups: Question groups offered.
        num_dropped_groups: Groups removed (e.g. DAPO dynamic sampling: all-correct or all-wrong).
    """

    def __init__(self, kept: Iterable[Trajectory], num_groups: int, num_dropped_groups: int = 0) -> None:
        super().__init__(kept)
        self.num_groups = num_groups
        self.num_dropped_groups = num_dropped_groups

    def metrics(self) -> dict[str, float]:
        """``rollout/groups``, ``rollout/groups_dropped`` and ``rollout/groups_dropped_frac``."""
        return {
            "rollout/groups": float(self.num_groups),
            "rollout/groups_dropped": float(self.num_dropped_groups),
            "rollout/groups_dropped_frac": self.num_dropped_groups / self.num_groups if self.num_groups else 0.0,
        }


def keep_mixed_groups(trajectories: list[Trajectory]) -> GroupSelection:
    """DAPO dynamic sampling: keep only groups with at least one correct and one wrong rollout.

    Equivalent to PAPO/VGPO's ``0.01 < mean accuracy < 0.99`` for groups under 100 rollouts. A
    group of one is all-correct or all-wrong and is dropped. Order within the batch is kept.
    """
    outcomes: dict[int, set[bool]] = {}
    for traj in trajectories:
        outcomes.setdefault(traj.group_id, set()).add(bool(traj.correct))
    mixed = {gid for gid, seen in outcomes.items() if len(seen) == 2}
    kept = [t for t in trajectories if t.group_id in mixed]
    return GroupSelection(kept, num_groups=len(outcomes), num_dropped_groups=len(outcomes) - len(mixed))


@dataclass
class PreparedRollouts:
    """What :meth:`Algorithm.prepare` hands to :meth:`Algorithm.training_batch`.

    Attributes:
        trajectories: The kept trajectories, in order.
        advantages: (B,) float32, one per kept trajectory.
        metrics: ``rollout/*`` metrics (groups dropped, reward and advantage statistics, ...).
    """

    trajectories: list[Trajectory]
    advantages: torch.Tensor
    metrics: dict[str, float]


class Algorithm(ABC):
    """Base class of every learning algorithm (SB3-style: narrow hooks, subclasses override few).

    Class attributes:
        config_class: The config dataclass this algorithm accepts (a subclass of
            :class:`AlgorithmConfig`).
        rollout_source: ``"policy"``: the trainer samples ``rollout.group_size`` trajectories per question
            from the policy; ``"oracle"``: it collects the environment's scripted expert trajectory instead
            (SFT), one per question: the expert is deterministic, so a group of copies would be the same
            token ids and images, the same gradient at ``group_size`` times the compute.
        needs_whole_groups: The loss compares rollouts of a question with each other (VGPO), so the
            trainer never splits a question group across micro-batches, even past the token budget.
        summed_metrics: Metrics that are a micro-batch's share of a minibatch quantity (terms divided
            by the batch's :class:`~mapo_agent.types.LossNormalizer`): the trainer sums them over
            micro-batches. Names ending in ``_loss`` are summed too; every other metric is averaged,
            weighted by loss tokens.
        loss_count_names: Extra sums the loss divides by (:meth:`loss_counts`); empty = none.

    Args:
        config: An instance of :attr:`config_class` (or of a subclass); ``None`` uses its defaults.

    Raises:
        ConfigError: ``config`` is of another algorithm's config class.
    """

    config_class: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    rollout_source: ClassVar[RolloutSource] = "policy"
    needs_whole_groups: ClassVar[bool] = False
    summed_metrics: ClassVar[frozenset[str]] = frozenset({"train/loss"})
    loss_count_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: AlgorithmConfig | None = None) -> None:
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} expects a {self.config_class.__name__}, got {type(config).__name__}; "
                f"build it with {type(self).__name__}.config_class(...) or make_algorithm(name, **fields)."
            )
        self.config = config
        self.context: RunContext | None = None

    def bind(self, context: RunContext) -> Algorithm:
        """Tell the algorithm about its run (generation budget); the trainer calls it before the first step."""
        self.context = context
        return self

    @property
    def norm_length(self) -> int | None:
        """The constant L of ``"seq-mean-token-sum-norm"``: ``loss_norm_length``, else the run's generation budget.

        Raises:
            ConfigError: The mode needs L, none is configured and no run context is bound.
        """
        length = getattr(self.config, "loss_norm_length", None)
        if length is not None or getattr(self.config, "loss_agg_mode", None) != "seq-mean-token-sum-norm":
            return length
        if self.context is None:
            raise ConfigError(
                f"{type(self).__name__} uses loss_agg_mode='seq-mean-token-sum-norm', whose divisor is a constant: "
                "set loss_norm_length, or bind the run's generation budget with algorithm.bind(RunContext(...)) "
                "(the Trainer does)."
            )
        return self.context.generation_budget

    @property
    def max_sampling_rounds(self) -> int:
        """Rollout rounds a trainer may draw per step to refill dropped groups (1 = no refill)."""
        return 1

    @property
    def needs_reference_model(self) -> bool:
        """Whether the trainer must fill ``TrainBatch.ref_logprobs`` (e.g. a KL penalty is on)."""
        return False

    def select_groups(self, trajectories: list[Trajectory]) -> GroupSelection:
        """The trajectories to train on (default: all); see :func:`keep_mixed_groups` for DAPO's filter."""
        return GroupSelection(trajectories, num_groups=len({t.group_id for t in trajectories}))

    def shape_rewards(self, trajectories: list[Trajectory]) -> torch.Tensor:
        """(B,) float32 rewards the advantage sees (default: the environment's episode rewards)."""
        return torch.tensor([t.reward for t in trajectories], dtype=torch.float32)

    def advantage_input(self, trajectories: list[Trajectory]) -> AdvantageInput:
        """:class:`AdvantageInput` of ``trajectories`` with rewards from :meth:`shape_rewards`."""
        inp = AdvantageInput.from_trajectories(trajectories)
        return dataclasses.replace(inp, rewards=self.shape_rewards(trajectories))

    @abstractmethod
    def compute_advantages(self, inp: AdvantageInput) -> torch.Tensor:
        """(B,) float32 advantage per trajectory."""

    @abstractmethod
    def loss(self, policy: TrainablePolicy, batch: TrainBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss to minimise for one (mini)batch, and ``train/*`` metrics (floats).

        When ``batch.normalizer`` is set, the batch is one micro-batch of a larger minibatch and every
        term divides by the minibatch's counts (pass ``normalizer=batch.normalizer`` to
        :func:`~mapo_agent.algorithms.losses.aggregate`), so the micro-batches' losses add up to it.
        """

    def loss_counts(self, policy: TrainablePolicy, batch: TrainBatch) -> dict[str, float]:
        """This batch's share of each extra denominator in :attr:`loss_count_names` (none by default).

        The trainer calls it on every micro-batch of a minibatch before any loss, sums the values (over
        processes too) and passes them as ``batch.normalizer.extra``.
        """
        return {}

    def training_batch(
        self, policy: TrainablePolicy, trajectories: list[Trajectory], advantages: torch.Tensor | None = None
    ) -> TrainBatch:
        """``policy.collate(trajectories)`` with ``advantages`` broadcast onto its loss mask.

        Args:
            policy: Collates the tokens and images.
            trajectories: Rows of the batch, in order.
            advantages: (B,) per trajectory (:meth:`compute_advantages`) or (B, T) per token of the
                padded batch; ``None`` leaves them 0.

        Raises:
            ConfigError: ``advantages`` has neither shape
                (:func:`~mapo_agent.algorithms.losses.broadcast_advantages`).
        """
        batch = policy.collate(trajectories)
        batch.advantages = broadcast_advantages(advantages, batch.loss_mask)
        return batch

    def rollout_metrics(self, inp: AdvantageInput, advantages: torch.Tensor) -> dict[str, float]:
        """``rollout/*`` statistics of the rewards the advantage saw and of the advantages."""
        if inp.rewards.numel() == 0:
            return {}
        return {
            "rollout/shaped_reward": float(inp.rewards.mean().item()),
            "rollout/advantage_mean": float(advantages.mean().item()),
            "rollout/advantage_abs_mean": float(advantages.abs().mean().item()),
            "rollout/advantage_zero_frac": float((advantages == 0).float().mean().item()),
        }

    def prepare(self, trajectories: list[Trajectory]) -> PreparedRollouts:
        """Select groups, shape rewards and compute advantages in one call (see the module docstring)."""
        selection = self.select_groups(trajectories)
        inp = self.advantage_input(list(selection))
        advantages = self.compute_advantages(inp) if len(selection) else torch.zeros(0)
        metrics = {**selection.metrics(), **self.rollout_metrics(inp, advantages)}
        return PreparedRollouts(trajectories=list(selection), advantages=advantages, metrics=metrics)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


def batch_on_device(batch: TrainBatch, like: torch.Tensor) -> TrainBatch:
    """``batch`` with its tensors on ``like``'s device (the batch itself when already there).

    A policy may move the batch to its device inside ``forward``; the loss must then read the
    batch's masks and advantages on that same device.
    """
    return batch if batch.loss_mask.device == like.device else batch.to(like.device)


ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")


def make_algorithm(name: str, config: AlgorithmConfig | None = None, **fields: Any) -> Algorithm:
    """Build the algorithm registered as ``name``.

    Args:
        name: A key of :data:`ALGORITHMS` (``"mapo"``, ``"grpo"``, ...).
        config: A ready config; mutually exclusive with ``fields``.
        **fields: Config fields overriding the algorithm's defaults (e.g. ``kl_coef=0.01``).

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the names).
        ConfigError: An unknown field, a bad value, or both ``config`` and ``fields``.
    """
    cls = ALGORITHMS.get(name)
    if config is not None and fields:
        raise ConfigError(
            f"pass either config or fields to make_algorithm({name!r}), not both (got fields {sorted(fields)})."
        )
    if config is None:
        known = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ConfigError(f"{cls.config_class.__name__} has no field(s) {unknown}; known fields: {sorted(known)}.")
        config = cls.config_class(**fields)
    return cls(config)
