"""Wrappers: a tool budget, an episode recorder, discrete actions for classic RL agents, visual corruptions."""

from mapo_env.wrappers.budget import ToolBudget
from mapo_env.wrappers.corruption import VisualCorruption, corrupted_spec, make_corrupted
from mapo_env.wrappers.discrete import DiscreteZoomActions
from mapo_env.wrappers.record import RecordEpisodes

__all__ = [
    "DiscreteZoomActions",
    "RecordEpisodes",
    "ToolBudget",
    "VisualCorruption",
    "corrupted_spec",
    "make_corrupted",
]
