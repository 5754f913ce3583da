"""``DiscreteZoomActions``: the MAPO loop for classic RL agents (Stable-Baselines3 and friends)."""

from __future__ import annotations

import re
import zlib
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mapo_env.actions import coordinate_decimals
from mapo_env.answers import MAX_OPTIONS, option_letters
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError, InvalidActionType
from mapo_env.geometry import written_box
from mapo_env.validation import check_bool, check_int, describe, is_int

_WORD = re.compile(r"[a-z0-9]+")


class DiscreteZoomActions(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Discrete actions and fixed-size observations over any MAPO environment.

    Actions (``Discrete(grid * grid + max_options)``):

    - ``a < grid*grid``: zoom into cell ``a`` of a ``grid x grid`` partition of the full image (row
      major), labelled ``label``;
    - ``a = grid*grid + k``: answer option ``k`` (an option the question does not have counts as a
      wrong answer).

    Observations (``Dict``):

    ============  ========================================  =====================================
    key           space                                     content
    ============  ========================================  =====================================
    ``view``      ``Box(0, 255, (S, S, 3), uint8)``         full view resized to S x S
    ``crop``      ``Box(0, 255, (S, S, 3), uint8)``         latest crop resized to S x S (zeros before)
    ``question``  ``Box(0, 1, (D,), float32)``              hashed bag of words of the question
    ``options``   ``Box(0, 1, (max_options, D), float32)``  hashed bag of words of each option
    ``progress``  ``Box(0, 1, (2,), float32)``              turn / max_turns, zooms / max_turns
    ============  ========================================  =====================================

    The text each action stands for (:meth:`action_text`) is written in the environment's dialect
    (``env.unwrapped.dialect``, see :mod:`mapo_env.dialects`): its call syntax, coordinate convention
    and answer format. In ``description_mode="post"`` every turn after the first crop opens with the
    dialect's description of the latest crop, which says ``label``.

    Rewards and info are the wrapped environment's. Running out of turns (the env's truncation) is
    reported as termination by default (``turn_limit_terminates``): the turn budget is part of the task
    the observation shows (``progress``), and an agent that bootstraps its value past it (as SB3 does
    on truncation) learns that never answering costs nothing.

    Example:
        >>> import gymnasium as gym
        >>> import mapo_env
        >>> env = DiscreteZoomActions(gym.make("MAPO-Tiles-v0"), grid=4)
        >>> obs, info = env.reset(seed=0)
        >>> obs["view"].shape
        (64, 64, 3)
    """

    def __init__(
        self,
        env: gym.Env,
        grid: int = 3,
        image_size: int = 64,
        max_options: int = 4,
        text_features: int = 64,
        label: str = "the object in question",
        turn_limit_terminates: bool = True,
    ) -> None:
        if not isinstance(env.unwrapped, ThinkWithImagesEnv):
            raise ConfigError(f"DiscreteZoomActions wraps MAPO environments, got {type(env.unwrapped).__name__}")
        grid = check_int("grid", grid, minimum=1)
        image_size = check_int("image_size", image_size, minimum=1)
        max_options = check_int("max_options", max_options, minimum=1, maximum=MAX_OPTIONS)
        text_features = check_int("text_features", text_features, minimum=1)
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"label must be a non-empty str (the zoom call's label), got {describe(label)}")
        turn_limit_terminates = check_bool("turn_limit_terminates", turn_limit_terminates)
        gym.utils.RecordConstructorArgs.__init__(
            self,
            grid=grid,
            image_size=image_size,
            max_options=max_options,
            text_features=text_features,
            label=label,
            turn_limit_terminates=turn_limit_terminates,
        )
        super().__init__(env)
        self.grid, self.image_size, self.max_options = grid, image_size, max_options
        self.text_features, self.label = text_features, label
        self.turn_limit_terminates = turn_limit_terminates
        image = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.action_space = spaces.Discrete(grid * grid + max_options)
        self.observation_space = spaces.Dict(
            {
                "view": image,
                "crop": image,
                "question": spaces.Box(0.0, 1.0, (text_features,), np.float32),
                "options": spaces.Box(0.0, 1.0, (max_options, text_features), np.float32),
                "progress": spaces.Box(0.0, 1.0, (2,), np.float32),
            }
        )

    @property
    def _base(self) -> ThinkWithImagesEnv:
        return self.env.unwrapped  # type: ignore[return-value]

    def reset(self, **kwargs: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset the wrapped env; returns the array observation."""
        obs, info = self.env.reset(**kwargs)
        return self._convert(obs, info), info

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Turn the discrete action into the model text the env expects, and step.

        Raises:
            InvalidActionType: ``action`` is not an integer (``float``, ``bool``, ``str``, ``None``, NaN
                and arrays of more than one element are refused; NumPy integers and 0-d integer arrays,
                as Stable-Baselines3 passes them, are accepted).
            ConfigError: ``action`` is outside ``[0, action_space.n)``.
        """
        obs, reward, terminated, truncated, info = self.env.step(self.action_text(action))
        if truncated and self.turn_limit_terminates:
            terminated, truncated = True, False
        return self._convert(obs, info), reward, terminated, truncated, info

    def action_text(self, action: int) -> str:
        """The text action that discrete ``action`` stands for (errors as in :meth:`step`)."""
        action = _as_action(action)
        if not 0 <= action < self.action_space.n:
            raise ConfigError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        base = self._base
        dialect = base.dialect
        # post mode: describe the latest crop (a description where none is due is ignored by the env)
        prefix = (
            dialect.format_description(self.label)
            if base.description_mode == "post" and len(base.image_frames) > 1
            else ""
        )
        cells = self.grid * self.grid
        if action >= cells:
            return dialect.compose(prefix, dialect.format_answer(option_letters(self.max_options)[action - cells]))
        row, col = divmod(action, self.grid)
        width, height = base.current_sample.image_size
        box = (
            col * width / self.grid,
            row * height / self.grid,
            (col + 1) * width / self.grid,
            (row + 1) * height / self.grid,
        )
        shown = written_box(base.image_frames[0].from_original(box, base.coords), base.coords)
        call = dialect.format_tool_call(shown, label=self.label, decimals=coordinate_decimals(base.coords))
        return dialect.compose(prefix, call)

    def _convert(self, obs: dict[str, Any], info: dict[str, Any]) -> dict[str, np.ndarray]:
        size = (self.image_size, self.image_size)
        images = obs["images"]
        view = cv2.resize(images[0], size, interpolation=cv2.INTER_AREA)
        crop = cv2.resize(images[-1], size, interpolation=cv2.INTER_AREA) if len(images) > 1 else np.zeros_like(view)
        options = np.zeros((self.max_options, self.text_features), np.float32)
        for k, text in enumerate(self._base.shown_options[: self.max_options]):
            options[k] = self._hash_words(text)
        max_turns = self._base.max_turns
        zooms = info["num_tool_calls"] + info.get("num_disabled_tool_calls", 0)  # calls made, disabled ones too
        progress = np.array([info["turn"] / max_turns, min(1.0, zooms / max_turns)], np.float32)
        return {
            "view": view,
            "crop": crop,
            "question": self._hash_words(self._base.current_sample.question),
            "options": options,
            "progress": progress,
        }

    def _hash_words(self, text: str) -> np.ndarray:
        """Stable hashed bag of words (crc32), normalised to a maximum of 1."""
        vector = np.zeros(self.text_features, np.float32)
        for word in _WORD.findall(text.lower()):
            vector[zlib.crc32(word.encode()) % self.text_features] += 1.0
        peak = vector.max()
        return vector / peak if peak > 0 else vector


def _as_action(action: Any) -> int:
    """``action`` as a Python int: ints, NumPy integers and 0-d integer arrays; anything else is refused."""
    if isinstance(action, np.ndarray) and action.ndim == 0 and np.issubdtype(action.dtype, np.integer):
        action = action.item()
    if not is_int(action):
        raise InvalidActionType(
            f"DiscreteZoomActions.step() expects an int action in [0, n), got {describe(action)}; "
            "floats, bools and strings are refused (1.7 is not action 1)"
        )
    return int(action)
