"""MAPO's exact advantage inside verl: the ``mapo`` estimator in verl's registry, and how to reach it.

Install with ``pip install "mapo-gym[verl]"``. Importing this module imports verl and registers
``mapo`` with ``verl.trainer.ppo.core_algos.register_adv_est`` (a no-op when done twice).

verl's ``compute_advantage`` hands a registered estimator only the token rewards, the response mask,
the group index and the algorithm config, not the per-rollout alignment scores MAPO needs (only its
built-in ``gdpo`` also gets ``non_tensor_batch``). Two routes:

- **No patch, near form**: ``algorithm.adv_estimator=gdpo`` with
  ``algorithm.gdpo_reward_keys=[outcome,semantic]`` and ``gdpo_reward_weights=[1.0,0.4]``: each
  reward z-scored in its group, summed with the weights, then whitened over the batch
  (``configs/verl/mapo_qwen25vl_7b.yaml`` has it commented in).
- **Exact**: ``algorithm.adv_estimator=mapo`` and :func:`install` run in every Ray worker (the
  config sets ``ray_kwargs.ray_init.runtime_env.worker_process_setup_hook`` to
  ``mapo_agent.integrations.verl.install``). :func:`install` registers the estimator and wraps
  ``compute_advantage`` in verl's trainer modules so that, for ``mapo`` only, the estimator also
  receives ``non_tensor_batch`` (whose ``tool_rewards`` are the zoom tool's alignment scores). Use
  the legacy trainer (``trainer.use_v1=false``): the v1 trainer fetches only tensor fields for the
  advantage, and :func:`compute_mapo_outcome_advantage` then refuses with a message that says so.

MAPO's settings come from ``algorithm.mapo`` (the fields of
:class:`~mapo_agent.algorithms.advantages.AdvantageConfig`, e.g. ``semantic_coef``, ``discount``);
absent, the defaults. A failed zoom's tool reward is 0, so it counts as s = 0
(``invalid_call_policy="zero"``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mapo_agent.algorithms.advantages import AdvantageConfig, compute_mapo_advantage
from mapo_agent.types import AdvantageInput
from mapo_env.errors import ConfigError, DependencyNotInstalled
from mapo_env.integrations.verl import INSTALL_HINT

try:
    from verl.trainer.ppo import core_algos
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise DependencyNotInstalled(f"mapo_agent.integrations.verl needs verl; run: {INSTALL_HINT}") from err

ESTIMATOR_NAME = "mapo"
"""The name ``algorithm.adv_estimator`` selects."""

TRAINER_MODULES = ("verl.trainer.ppo.ray_trainer", "verl.trainer.ppo.v1.utils")
"""verl modules whose ``compute_advantage`` :func:`install` wraps (each is optional)."""


def advantage_config(config: Any) -> AdvantageConfig:
    """MAPO's settings from verl's algorithm config (its ``mapo`` mapping), else the defaults.

    Raises:
        ConfigError: ``algorithm.mapo`` has an unknown field or a bad value.
    """
    getter = getattr(config, "get", None)
    section = getter("mapo", None) if callable(getter) else None
    if section is None:
        return AdvantageConfig()
    if not isinstance(section, Mapping) and not hasattr(section, "items"):
        raise ConfigError(f"algorithm.mapo must be a mapping of AdvantageConfig fields, got {section!r}")
    fields = {str(k): v for k, v in section.items()}
    try:
        return AdvantageConfig(**fields)
    except TypeError as err:
        raise ConfigError(
            f"algorithm.mapo has a field AdvantageConfig does not know ({err}); valid: "
            f"{sorted(AdvantageConfig.__dataclass_fields__)}"
        ) from err


def compute_mapo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    epsilon: float = 1e-6,
    config: Any = None,
    non_tensor_batch: Mapping[str, Any] | None = None,
    alignment_scores: list[list[float | None]] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAPO's advantage in verl's estimator signature (registered as ``"mapo"``).

    The outcome reward of rollout i is ``token_level_rewards[i].sum()`` (``compute_score``'s
    ``score``: keep its ``semantic_coef`` at 0 here, MAPO adds the semantic term itself); the groups
    are the distinct values of ``index`` (verl's ``uid``); the alignment scores are
    ``alignment_scores`` or, as :func:`install` passes them, ``non_tensor_batch["tool_rewards"]``.
    Then :func:`~mapo_agent.algorithms.advantages.compute_mapo_advantage` with
    :func:`advantage_config` (``epsilon`` is unused: ``std_eps`` comes from there), broadcast over
    the response tokens.

    Args:
        token_level_rewards: (bs, response_length).
        response_mask: (bs, response_length).
        index: (bs,) group id per rollout.
        epsilon: Unused (kept for verl's signature).
        config: verl's algorithm config (reads ``mapo``).
        non_tensor_batch: verl's non-tensor batch (reads ``tool_rewards``).
        alignment_scores: Per rollout, the alignment of each zoom (overrides ``non_tensor_batch``).
        **kwargs: Ignored (verl passes estimator-specific extras).

    Returns:
        ``(advantages, returns)``, both (bs, response_length), equal (outcome-only, as GRPO).

    Raises:
        ConfigError: neither ``alignment_scores`` nor ``non_tensor_batch["tool_rewards"]`` is given
            (verl called the estimator without :func:`install`'s wrapper, or from the v1 trainer).
    """
    if alignment_scores is None:
        tool_rewards = None if non_tensor_batch is None else non_tensor_batch.get("tool_rewards")
        if tool_rewards is None:
            raise ConfigError(
                "the mapo estimator needs each rollout's zoom alignment scores (non_tensor_batch['tool_rewards']), "
                "which verl passes only through mapo_agent.integrations.verl.install's wrapper of compute_advantage "
                "in the legacy trainer: set ray_kwargs.ray_init.runtime_env.worker_process_setup_hook="
                "mapo_agent.integrations.verl.install and trainer.use_v1=false, or use the no-patch near form "
                "algorithm.adv_estimator=gdpo with gdpo_reward_keys=[outcome,semantic]"
            )
        alignment_scores = [[float(s) for s in (row if row is not None else [])] for row in tool_rewards]
    _, group_ids = np.unique(np.asarray(index, dtype=object).astype(str), return_inverse=True)
    rewards = token_level_rewards.detach().sum(dim=-1).float().cpu()  # (bs,)
    count = rewards.numel()
    inp = AdvantageInput(
        rewards=rewards,
        group_ids=torch.as_tensor(group_ids, dtype=torch.long),
        correct=torch.zeros(count, dtype=torch.bool),
        alignment_scores=[list(row) for row in alignment_scores],
        num_tool_calls=torch.tensor([len(row) for row in alignment_scores], dtype=torch.long),
        response_lengths=response_mask.detach().sum(dim=-1).long().cpu(),
        truncated=torch.zeros(count, dtype=torch.bool),
    )
    advantages = compute_mapo_advantage(inp, advantage_config(config))  # (bs,)
    advantages = advantages.to(token_level_rewards.device).unsqueeze(-1) * response_mask  # (bs, T)
    return advantages, advantages


core_algos.register_adv_est(ESTIMATOR_NAME)(compute_mapo_outcome_advantage)


def _with_non_tensor_batch(original: Any) -> Any:
    """``compute_advantage`` that, for ``mapo``, calls our estimator with the batch's non-tensor data."""
    if getattr(original, "__mapo_wrapped__", False):
        return original
    signature = inspect.signature(original)

    @functools.wraps(original)
    def compute_advantage(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        estimator = bound.arguments["adv_estimator"]
        if getattr(estimator, "value", estimator) != ESTIMATOR_NAME:
            return original(*args, **kwargs)
        data = bound.arguments["data"]
        if "response_mask" not in data.batch.keys():
            from verl.trainer.ppo.ray_trainer import compute_response_mask

            data.batch["response_mask"] = compute_response_mask(data)
        advantages, returns = compute_mapo_outcome_advantage(
            token_level_rewards=data.batch["token_level_rewards"],
            response_mask=data.batch["response_mask"],
            index=data.non_tensor_batch["uid"],
            config=bound.arguments.get("config"),
            non_tensor_batch=data.non_tensor_batch,
        )
        data.batch["advantages"] = advantages
        data.batch["returns"] = returns
        return data

    compute_advantage.__mapo_wrapped__ = True  # type: ignore[attr-defined]
    return compute_advantage


def install() -> None:
    """Register ``mapo`` and let verl's ``compute_advantage`` pass it the non-tensor batch (idempotent).

    Meant as Ray's ``worker_process_setup_hook`` (runs in every worker, the trainer's included);
    harmless to call in the driver too. Modules of :data:`TRAINER_MODULES` that fail to import
    (missing optional dependencies) are skipped.
    """
    import importlib

    core_algos.register_adv_est(ESTIMATOR_NAME)(compute_mapo_outcome_advantage)
    for name in TRAINER_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "compute_advantage"):
            module.compute_advantage = _with_non_tensor_batch(module.compute_advantage)


def main() -> None:
    """``python -m mapo_agent.integrations.verl <hydra overrides>``: :func:`install`, then verl's ``main_ppo``."""
    install()
    from verl.trainer.main_ppo import main as verl_main

    verl_main()


if __name__ == "__main__":
    main()
