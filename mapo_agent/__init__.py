"""The MAPO agent: train a Hugging Face multimodal model to think with images on the ``mapo_env`` suite.

The public face (everything else is reachable through its module)::

    from mapo_agent import ALGORITHMS, HFPolicy, TrainConfig, Trainer, make_algorithm

    config = TrainConfig(algo="mapo", steps=30)          # the bundled recipe; every field has --help text
    summary = Trainer(config).train()                    # or: mapo-train --algo mapo --steps 30
    ALGORITHMS.names()                                   # mapo, grpo, dr_grpo, dapo, rloo, papo, vgpo, sft, ...

Adding an algorithm is one module with a config dataclass and a class decorated with
``@ALGORITHMS.register("name")`` (see :mod:`mapo_agent.algorithms.base`); the trainer never looks at names.
"""

from mapo_agent.algorithms import ADVANTAGE_ESTIMATORS, ALGORITHMS, Algorithm, AlgorithmConfig, make_algorithm
from mapo_agent.config import TrainConfig
from mapo_agent.policy import HFPolicy
from mapo_agent.trainer import Trainer

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "ALGORITHMS",
    "Algorithm",
    "AlgorithmConfig",
    "HFPolicy",
    "TrainConfig",
    "Trainer",
    "make_algorithm",
]
