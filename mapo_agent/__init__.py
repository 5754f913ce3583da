"""The MAPO agent: train a Hugging Face multimodal model to think with images on the ``mapo_env`` suite.

The public face (everything else is reachable through its module)::

    from mapo_agent import ALGORITHMS, HFPolicy, TrainConfig, Trainer, make_algorithm

    config = TrainConfig(algo="mapo", steps=30)          # the bundled recipe; every field has --help text
    summary = Trainer(config).train()                    # or: mapo-train --algo mapo --steps 30
    ALGORITHMS.names()                                   # mapo, grpo, dr_grpo, dapo, rloo, papo, vgpo, roma, opd, ...

Adding an algorithm is one module with a config dataclass and a class decorated with
``@ALGORITHMS.register("name")`` (see :mod:`mapo_agent.algorithms.base`); the trainer never looks at names.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ADVANTAGE_ESTIMATORS": "mapo_agent.algorithms",
    "ALGORITHMS": "mapo_agent.algorithms",
    "Algorithm": "mapo_agent.algorithms",
    "AlgorithmConfig": "mapo_agent.algorithms",
    "make_algorithm": "mapo_agent.algorithms",
    "TrainConfig": "mapo_agent.config",
    "HFPolicy": "mapo_agent.policy",
    "Trainer": "mapo_agent.trainer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the public names on first use, so ``mapo-eval --help`` and its refusals stay fast."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mapo_agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
