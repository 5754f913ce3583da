"""The registered environments: one module per benchmark family, each a thin subclass of the core env."""

from mapo_env.envs.hrbench import HRBenchEnv
from mapo_env.envs.textspot import TextSpotEnv
from mapo_env.envs.tiles import TilesEnv
from mapo_env.envs.vstar import VStarEnv

__all__ = ["HRBenchEnv", "TextSpotEnv", "TilesEnv", "VStarEnv"]
