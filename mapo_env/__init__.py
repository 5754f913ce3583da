"""MAPO Gym environments: multimodal LLMs that think with images (zoom in, look, describe, answer).

Importing the package registers the environments with Gymnasium::

    import gymnasium as gym
    import mapo_env  # noqa: F401  (registers the MAPO-* ids)

    env = gym.make("MAPO-VStar-v0")
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step('<answer>A</answer>')

Nothing here imports torch or transformers; alignment scorers load their models on first use.
"""

from gymnasium.envs.registration import register

from mapo_env.actions import ParsedAction, ToolError, ZoomCall, parse_action
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.oracle import Oracle

__version__ = "0.1.0"

# ----------------------------------------------------------------- V* Bench
register(id="MAPO-VStar-v0", entry_point="mapo_env.envs.vstar:VStarEnv")

# ----------------------------------------------------------------- HR-Bench
register(id="MAPO-HRBench4K-v0", entry_point="mapo_env.envs.hrbench:HRBenchEnv", kwargs={"resolution": "4k"})
register(id="MAPO-HRBench8K-v0", entry_point="mapo_env.envs.hrbench:HRBenchEnv", kwargs={"resolution": "8k"})

# ----------------------------------------------------------------- MME-RealWorld style text spotting
register(id="MAPO-TextSpot-v0", entry_point="mapo_env.envs.textspot:TextSpotEnv")

# ----------------------------------------------------------------- small, fast env for CPU training
register(id="MAPO-Tiles-v0", entry_point="mapo_env.envs.tiles:TilesEnv")

ENV_IDS = ("MAPO-VStar-v0", "MAPO-HRBench4K-v0", "MAPO-HRBench8K-v0", "MAPO-TextSpot-v0", "MAPO-Tiles-v0")
"""Every id this package registers."""

__all__ = ["ENV_IDS", "Oracle", "ParsedAction", "ThinkWithImagesEnv", "ToolError", "ZoomCall", "parse_action"]
