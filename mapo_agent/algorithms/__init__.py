"""Learning algorithms: advantage estimators, losses, and the algorithm classes, each behind a registry.

Importing this package registers every bundled algorithm in :data:`ALGORITHMS` and every estimator
in :data:`ADVANTAGE_ESTIMATORS`. Build one by name with :func:`make_algorithm` (``"mapo"``,
``"grpo"``, ``"dr_grpo"``, ``"dapo"``, ``"rloo"``, ``"papo"``, ``"vgpo"``, ``"roma"``, ``"opd"``,
``"va_opd"``, ``"sft"``, ``"grounded_sft"``).
"""

from mapo_agent.algorithms.advantages import ADVANTAGE_ESTIMATORS, AdvantageConfig
from mapo_agent.algorithms.base import (
    ALGORITHMS,
    Algorithm,
    AlgorithmConfig,
    GroupSelection,
    PreparedRollouts,
    RunContext,
    make_algorithm,
)
from mapo_agent.algorithms.dapo import DAPO, DAPOConfig
from mapo_agent.algorithms.distillation import OPD, VAOPD, OPDConfig, VAOPDConfig
from mapo_agent.algorithms.dr_grpo import DrGRPO, DrGRPOConfig
from mapo_agent.algorithms.grounding import GroundedSFT, GroundedSFTConfig
from mapo_agent.algorithms.grpo import GRPO, GRPOConfig
from mapo_agent.algorithms.mapo import MAPO, MAPOConfig
from mapo_agent.algorithms.papo import PAPO, PAPOConfig
from mapo_agent.algorithms.rloo import RLOO, RLOOConfig
from mapo_agent.algorithms.roma import ROMA, ROMAConfig
from mapo_agent.algorithms.sft import SFT, SFTConfig
from mapo_agent.algorithms.vgpo import VGPO, VGPOConfig

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "ALGORITHMS",
    "DAPO",
    "GRPO",
    "MAPO",
    "OPD",
    "PAPO",
    "RLOO",
    "ROMA",
    "SFT",
    "VAOPD",
    "VGPO",
    "AdvantageConfig",
    "Algorithm",
    "AlgorithmConfig",
    "DAPOConfig",
    "DrGRPO",
    "DrGRPOConfig",
    "GRPOConfig",
    "GroundedSFT",
    "GroundedSFTConfig",
    "GroupSelection",
    "MAPOConfig",
    "OPDConfig",
    "PAPOConfig",
    "PreparedRollouts",
    "RLOOConfig",
    "ROMAConfig",
    "RunContext",
    "SFTConfig",
    "VAOPDConfig",
    "VGPOConfig",
    "make_algorithm",
]
