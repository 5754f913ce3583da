"""``ToolBudget``: cap the number of zoom calls per episode."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from mapo_env.actions import ToolError
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError
from mapo_env.validation import check_bool, check_int


class ToolBudget(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Refuse zoom calls beyond ``max_tool_calls`` per episode.

    A refused call is answered like any tool error: the model gets a message saying the budget is
    spent and that it must answer (in the answer format of the environment's dialect),
    ``info["tool_error"] == "tool_budget_exceeded"``, and the turn counts. With ``truncate=True`` the
    episode is truncated at the first refused call instead.

    A turn is a zoom call when the environment's dialect parses it as one
    (``env.unwrapped.parse(action)``, see :mod:`mapo_env.dialects`): a Mini-o3 ``<grounding>``, a
    Pixel-Reasoner ``crop_image_normalized`` call or an OpenAI-style tool call is counted exactly as a
    DeepEyes ``<tool_call>`` is. Every call the dialect recognises counts against the budget, including
    one that the tool then rejects (a bad box, a missing label).

    Example:
        >>> import gymnasium as gym
        >>> import mapo_env
        >>> env = ToolBudget(gym.make("MAPO-Tiles-v0"), max_tool_calls=1)
    """

    def __init__(self, env: gym.Env, max_tool_calls: int, truncate: bool = False) -> None:
        max_tool_calls = check_int("max_tool_calls", max_tool_calls, minimum=0)
        truncate = check_bool("truncate", truncate)
        if not isinstance(env.unwrapped, ThinkWithImagesEnv):
            raise ConfigError(f"ToolBudget wraps MAPO environments, got {type(env.unwrapped).__name__}")
        gym.utils.RecordConstructorArgs.__init__(self, max_tool_calls=max_tool_calls, truncate=truncate)
        super().__init__(env)
        self.max_tool_calls = max_tool_calls
        self.truncate = truncate
        self._attempts = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and the budget."""
        self._attempts = 0
        return self.env.reset(**kwargs)

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Pass the turn through, unless it is a zoom call over budget."""
        base: ThinkWithImagesEnv = self.env.unwrapped  # type: ignore[assignment]
        if isinstance(action, str) and len(action) <= base.max_action_chars:
            if base.parse(action).kind == "tool_call":
                self._attempts += 1
                if self._attempts > self.max_tool_calls:
                    return base.reject_turn(
                        action,
                        ToolError.TOOL_BUDGET_EXCEEDED,
                        f"Error: no zoom calls left (budget {self.max_tool_calls}); "
                        f"answer with {base.dialect.answer_format}.",
                        truncate=self.truncate,
                    )
        return self.env.step(action)
