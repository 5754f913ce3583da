"""Wrappers: a tool budget, an episode recorder, and discrete actions for classic RL agents."""

from mapo_env.wrappers.budget import ToolBudget
from mapo_env.wrappers.discrete import DiscreteZoomActions
from mapo_env.wrappers.record import RecordEpisodes

__all__ = ["DiscreteZoomActions", "RecordEpisodes", "ToolBudget"]
