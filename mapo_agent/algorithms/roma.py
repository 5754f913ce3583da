"""ROMA (arXiv 2605.09262): RL that stays right when the image is degraded, without rolling out on degraded images.

"Reinforcing Multimodal Reasoning Against Visual Degradation" (Liu et al., 2026). Rolling out on
corrupted images poisons the rewards (the model hallucinates on what it cannot see), so ROMA keeps
rollouts, rewards and advantages on the **clean** images and adds, per update, a *dual forward
pass*: the same trajectories teacher-forced on K corrupted views of their images. On top of the
base algorithm's loss (GRPO's PPO-clip and reference KL here, on any advantage estimator:
``advantage_estimator="mapo"`` gives ROMA on MAPO's advantages) it adds the four ingredients the
paper's abstract names (the formulas are our reading of them)::

    KL_t^(k)     = k3(log π(y_t | clean), log π(y_t | view k))      token-level surrogate KL, clean → view k
    robust_kl    = agg( g_i · max_k KL_t^(k) )                      the WORST view at each token
    aux_pg       = PPO-clip( log π(y_t | view j), old log-probs, g_i · Â_i )   one view j, CLEAN advantages
    loss         = base loss + consistency_coef · robust_kl + aux_pg_coef · aux_pg

- g_i is the **correctness gate** (``correctness_gate``): 1 for a trajectory whose answer was right,
  else 0; invariance is enforced only on successful trajectories (a wrong trajectory must not be
  made robust). Gated rows contribute 0 to both terms; the terms divide by all the batch's loss
  tokens (the micro-batch split stays exact, :class:`~mapo_agent.types.LossNormalizer`).
- The clean branch is the anchor: it is the base loss's own forward, detached inside the KL (the KL
  pulls the corrupted views towards it; ``clean_branch_gradient=True`` lets it move too).
- k3 is the sampled-token estimator of KL(π(·|clean) ‖ π(·|view)) on tokens sampled from the clean
  policy (the trajectories are), as PAPO's perception KL (:func:`~mapo_agent.algorithms.losses.k3_kl`).
- The auxiliary term's view j is drawn uniformly per batch; its ratio is π_θ(y | view j) / π_old(y |
  clean), clipped as the main loss (``aux_surrogate="reinforce"``: the plain −Â·log π(y | view j)).

**Views.** Each view is a corruption of :mod:`mapo_env.corruptions` from the *seen* set (the unseen
set is kept for evaluation; asking for an unseen name here raises), at a severity drawn from
``severities``, applied to the question image and every tool crop of a trajectory
(``corrupt_target="all"``; ``"view"``: the question image only). As PAPO's mask, the draw (name,
severity, seed) is made once per question group per batch in :meth:`ROMA.prepare` and shared by
the group's rollouts, micro-batches and epochs. The views are teacher-forced with
``ForwardRequest(images=...)``: the same token ids, other pixels.

**Coefficients (unverified).** Only the paper's abstract could be checked when this was written: it
names the four ingredients above (dual forward pass by teacher forcing, a token-level surrogate KL
against the worst-case augmentation, an auxiliary policy gradient anchored to clean-image advantages,
correctness-conditioned regularisation) and the setting (Qwen3-VL 4B/8B, GRPO baseline, seen and
unseen corruptions), but none of the numbers. The method and experiment sections, and any official
code, were not available to us, so the following are OUR choices, not the paper's, and no section
or equation of the paper is cited for them:

- ``num_views`` K = 2: the smallest K for which "worst-case augmentation" is a maximum over views;
  each view costs one extra teacher-forced forward pass per update.
- ``consistency_coef`` = 0.02: PAPO's γ (arXiv 2507.06448) for the same k3 sampled-token surrogate
  of a clean-vs-degraded KL; a KL on the worst of K views is larger than on one, so this is on the
  conservative side of that scale.
- ``aux_pg_coef`` = 0.5: the auxiliary term is a second copy of the clean-advantage policy gradient
  (on a corrupted view); half the main term's weight keeps the clean objective dominant, which the
  abstract requires ("while matching clean accuracy").
- ``severities`` 1-5 (all of ImageNet-C's scale) and the seen/unseen split of
  :mod:`mapo_env.corruptions`: the abstract reports seen and unseen corruptions but does not list
  them; ours is :data:`~mapo_env.corruptions.SEEN_CORRUPTIONS`.
- Also ours: the k3 estimator, the PPO-clip surrogate of the auxiliary term, one auxiliary view per
  batch, and gating on ``Trajectory.correct`` (the abstract says "successful trajectories").

Check them against the paper's method and experiment sections before quoting results as the paper's
setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from mapo_agent.algorithms.advantages import check_choice
from mapo_agent.algorithms.base import ALGORITHMS, PreparedRollouts
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.losses import aggregate, k3_kl, ppo_clip_loss
from mapo_agent.types import ForwardOutput, ForwardRequest, TrainablePolicy, TrainBatch, Trajectory
from mapo_env.corruptions import SEVERITIES, UNSEEN_CORRUPTIONS, corrupt, resolve_corruptions
from mapo_env.errors import ConfigError

CorruptTarget = Literal["all", "view"]
AuxSurrogate = Literal["ppo_clip", "reinforce"]


@dataclass(frozen=True)
class ViewDraw:
    """One corrupted view of one question group: which corruption, how strong, from which seed."""

    name: str
    severity: int
    seed: int


@dataclass
class ROMAConfig(GRPOConfig):
    """GRPO config plus ROMA's dual-pass terms (see the module docstring; GRPO's loss defaults kept).

    Attributes:
        num_views: K, corrupted views teacher-forced per update (2, ours; at least 1).
        corruptions: Seen corruptions the views draw from: ``"seen"`` (default) or names joined by
            commas (:func:`mapo_env.corruptions.resolve_corruptions`); unseen names are refused.
        severities: Severities (1-5) the views draw from, uniformly (all five).
        corrupt_target: ``"all"``: the question image and every tool crop; ``"view"``: the question
            image only.
        consistency_coef: Weight of the worst-view token KL (0.02, ours: see the module docstring).
        aux_pg_coef: Weight of the auxiliary clean-advantage policy gradient on one view (0.5, ours).
        aux_surrogate: ``"ppo_clip"`` (the main loss's clipped ratio on the view's log-probs) or
            ``"reinforce"`` (−Â·log π on the view).
        correctness_gate: Apply both terms only to trajectories whose answer was right (on, ROMA's
            correctness-conditioned regularisation); off: every trajectory (an ablation).
        clean_branch_gradient: Let the KL's gradient reach the clean branch too (off: the clean
            policy is the anchor).
        view_seed: Seed of the per-group view draws.
    """

    num_views: int = 2
    corruptions: str = "seen"
    severities: tuple[int, ...] = SEVERITIES
    corrupt_target: CorruptTarget = "all"
    consistency_coef: float = 0.02
    aux_pg_coef: float = 0.5
    aux_surrogate: AuxSurrogate = "ppo_clip"
    correctness_gate: bool = True
    clean_branch_gradient: bool = False
    view_seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.severities, list):
            self.severities = tuple(self.severities)
        super().__post_init__()
        if self.num_views < 1:
            raise ConfigError(f"num_views must be >= 1, got {self.num_views!r}; ROMA uses K >= 1 corrupted views.")
        unseen = [n for n in resolve_corruptions(self.corruptions) if n in UNSEEN_CORRUPTIONS]
        if unseen:
            raise ConfigError(
                f"corruptions={self.corruptions!r} includes unseen corruption(s) {unseen}; the unseen set is kept "
                "for evaluation. Use 'seen' or names from mapo_env.corruptions.SEEN_CORRUPTIONS."
            )
        if not self.severities or any(s not in SEVERITIES for s in self.severities):
            raise ConfigError(
                f"severities must be a non-empty tuple of values in {SEVERITIES}, got {self.severities!r}."
            )
        check_choice("corrupt_target", self.corrupt_target, CorruptTarget)
        check_choice("aux_surrogate", self.aux_surrogate, AuxSurrogate)
        for name in ("consistency_coef", "aux_pg_coef"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}; 0 turns the term off.")


@ALGORITHMS.register("roma")
class ROMA(GRPO):
    """GRPO (or any advantage) + worst-view token KL and a clean-advantage PG on corrupted views, gated by success."""

    config_class = ROMAConfig
    config: ROMAConfig
    summed_metrics = frozenset({"train/loss", "train/kl", "train/robust_kl", "train/robust_kl_mean_view"})

    def __init__(self, config: ROMAConfig | None = None) -> None:
        super().__init__(config)
        self._names = resolve_corruptions(self.config.corruptions)
        self._rng = np.random.default_rng(self.config.view_seed)
        self._draws: dict[int, tuple[ViewDraw, ...]] = {}
        self.aux_view = 0
        """Which view the auxiliary policy gradient reads (drawn per batch in :meth:`prepare`)."""
        self._cache: dict[tuple[int, int], tuple[Trajectory, list[np.ndarray]]] = {}

    def prepare(self, trajectories: list[Trajectory]) -> PreparedRollouts:
        """GRPO's preparation, plus fresh view draws for each question group and the auxiliary view of this batch."""
        prepared = super().prepare(trajectories)
        self._draws, self._cache = {}, {}
        for group in sorted({t.group_id for t in prepared.trajectories}):
            self._draws[group] = self._draw(self._rng)
        self.aux_view = int(self._rng.integers(self.config.num_views))
        return prepared

    def views_of(self, group_id: int) -> tuple[ViewDraw, ...]:
        """The K view draws of ``group_id`` in the current batch (drawn in :meth:`prepare`; else derived from it)."""
        if group_id not in self._draws:
            self._draws[group_id] = self._draw(np.random.default_rng([self.config.view_seed, group_id]))
        return self._draws[group_id]

    def view_images(self, batch: TrainBatch, view: int) -> tuple[np.ndarray, ...]:
        """Every image of the batch (placeholder order) as view ``view`` shows it."""
        images: list[np.ndarray] = []
        for t in batch.trajectories:
            key = (id(t), view)
            cached = self._cache.get(key)
            if cached is None or cached[0] is not t:  # (an id is only reused once its trajectory is gone)
                draw = self.views_of(t.group_id)[view]
                corrupted = [
                    corrupt(img, draw.name, draw.severity, np.random.default_rng([draw.seed, k]))
                    if k == 0 or self.config.corrupt_target == "all"
                    else img
                    for k, img in enumerate(t.images)
                ]
                cached = self._cache[key] = (t, corrupted)
            images += cached[1]
        return tuple(images)

    def view_request(self, batch: TrainBatch, view: int) -> ForwardRequest:
        """The teacher-forced pass of view ``view``: the main pass's request with the corrupted images."""
        names = sorted({self.views_of(t.group_id)[view].name for t in batch.trajectories})
        key = f"roma-view-{view}:{','.join(names)}"
        return self.forward_request().merge(ForwardRequest(images=self.view_images(batch, view), view_key=key))

    def extra_loss_terms(
        self, policy: TrainablePolicy, batch: TrainBatch, out: ForwardOutput
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """``robust_kl_loss`` (consistency_coef · worst-view KL) and ``aux_pg_loss`` (aux_pg_coef · view PG)."""
        cfg = self.config
        if not cfg.consistency_coef and not cfg.aux_pg_coef:
            return {}, {}
        gate = self.gate(batch).to(out.logprobs.device)  # (B,)
        clean = out.logprobs if cfg.clean_branch_gradient else out.logprobs.detach()
        view_logprobs = [policy.forward(batch, self.view_request(batch, k)).logprobs for k in range(cfg.num_views)]
        token_kl = torch.stack([k3_kl(clean, v) for v in view_logprobs])  # (K, B, T)
        worst = token_kl.max(dim=0).values * gate[:, None]  # (B, T)
        agg, length, norm = cfg.loss_agg_mode, self.norm_length, batch.normalizer
        robust_kl = aggregate(worst, batch.loss_mask, agg, length, normalizer=norm)
        aux_logprobs = view_logprobs[self.aux_view]
        gated_advantages = batch.advantages * gate[:, None]
        if cfg.aux_surrogate == "ppo_clip":
            aux_pg, _ = ppo_clip_loss(
                aux_logprobs,
                batch.old_logprobs,
                gated_advantages,
                batch.loss_mask,
                clip_low=cfg.clip_low,
                clip_high=cfg.clip_high,
                dual_clip=cfg.dual_clip,
                agg=agg,
                norm_length=length,
                normalizer=norm,
            )
        else:
            aux_pg = aggregate(-gated_advantages * aux_logprobs, batch.loss_mask, agg, length, normalizer=norm)
        with torch.no_grad():
            mean_view = aggregate(token_kl.mean(dim=0) * gate[:, None], batch.loss_mask, agg, length, normalizer=norm)
            metrics = {
                "train/robust_kl": float(robust_kl.item()),
                "train/robust_kl_mean_view": float(mean_view.item()),
                "train/robust_gated_frac": float(gate.mean().item()) if gate.numel() else 0.0,
            }
        terms = {"robust_kl_loss": cfg.consistency_coef * robust_kl, "aux_pg_loss": cfg.aux_pg_coef * aux_pg}
        return terms, metrics

    def gate(self, batch: TrainBatch) -> torch.Tensor:
        """(B,) float: 1 where the term applies (a correct trajectory, or every row with the gate off)."""
        rows = len(batch.trajectories) or batch.loss_mask.shape[0]
        if not self.config.correctness_gate or not batch.trajectories:
            return torch.ones(rows)
        return torch.tensor([float(t.correct) for t in batch.trajectories])

    def _draw(self, rng: np.random.Generator) -> tuple[ViewDraw, ...]:
        cfg = self.config
        return tuple(
            ViewDraw(
                name=self._names[int(rng.integers(len(self._names)))],
                severity=int(cfg.severities[int(rng.integers(len(cfg.severities)))]),
                seed=int(rng.integers(2**31 - 1)),
            )
            for _ in range(cfg.num_views)
        )
