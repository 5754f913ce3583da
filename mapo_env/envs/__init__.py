"""The registered environments: one module per benchmark family, each a :class:`BenchmarkEnv` keyed by its data."""

from mapo_env.envs.common import BenchmarkEnv
from mapo_env.envs.hrbench import HRBenchEnv
from mapo_env.envs.textspot import TextSpotEnv
from mapo_env.envs.tiles import TilesEnv
from mapo_env.envs.vstar import VStarEnv

__all__ = ["BenchmarkEnv", "HRBenchEnv", "TextSpotEnv", "TilesEnv", "VStarEnv"]
