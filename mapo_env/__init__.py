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

_BUNDLED_ENVS: tuple[tuple[str, str, dict], ...] = (
    ("MAPO-VStar-v0", "mapo_env.envs.vstar:VStarEnv", {}),  # V* Bench
    ("MAPO-HRBench4K-v0", "mapo_env.envs.hrbench:HRBenchEnv", {"resolution": "4k"}),  # HR-Bench
    ("MAPO-HRBench8K-v0", "mapo_env.envs.hrbench:HRBenchEnv", {"resolution": "8k"}),
    ("MAPO-TextSpot-v0", "mapo_env.envs.textspot:TextSpotEnv", {}),  # MME-RealWorld-style text spotting
    ("MAPO-Tiles-v0", "mapo_env.envs.tiles:TilesEnv", {}),  # the small, fast env for CPU training
)
for _env_id, _entry_point, _kwargs in _BUNDLED_ENVS:
    register(id=_env_id, entry_point=_entry_point, kwargs=_kwargs)

ENV_IDS: tuple[str, ...] = tuple(env_id for env_id, _, _ in _BUNDLED_ENVS)
"""Every id this package registers (derived from the registrations above)."""


def registered_env_ids() -> list[str]:
    """Every ``MAPO-*`` id Gymnasium knows now: the bundled ones and any a user registered."""
    import gymnasium as gym

    return sorted(env_id for env_id in gym.registry if env_id.startswith("MAPO-"))


__all__ = [
    "ENV_IDS",
    "Oracle",
    "ParsedAction",
    "ThinkWithImagesEnv",
    "ToolError",
    "ZoomCall",
    "parse_action",
    "registered_env_ids",
]
