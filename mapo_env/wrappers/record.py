"""``RecordEpisodes``: keep (and optionally write) a record of every episode: transcript, crops, scores."""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym

from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError
from mapo_env.render import EpisodeRecord, save_episode
from mapo_env.validation import check_choice, check_int, describe


class RecordEpisodes(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Record each finished episode as an :class:`~mapo_env.render.EpisodeRecord`.

    The last ``keep`` records stay in :attr:`episodes`. With ``directory`` set, each finished
    episode is appended to ``directory/episodes.jsonl`` (transcript, labels, scores, rewards, boxes; no
    pixels) and every ``picture_every``-th one is drawn to ``directory/episode_<n>.png`` (or ``.html``
    with ``picture_format="html"``).

    Each crop's text is what the model said about it, read from its turn in the environment's dialect
    (``env.unwrapped.parse``, see :mod:`mapo_env.dialects`): the call's ``label`` in ``"label"`` mode,
    the description of the turn that follows the crop in ``"post"`` mode.

    Example:
        >>> import gymnasium as gym
        >>> import mapo_env
        >>> env = RecordEpisodes(gym.make("MAPO-Tiles-v0"))
        >>> obs, info = env.reset(seed=0)
        >>> _ = env.step("<answer>A</answer>")
        >>> len(env.episodes)
        1
    """

    def __init__(
        self,
        env: gym.Env,
        directory: str | Path | None = None,
        *,
        keep: int = 100,
        picture_every: int = 1,
        picture_format: str = "png",
    ) -> None:
        if not isinstance(env.unwrapped, ThinkWithImagesEnv):
            raise ConfigError(f"RecordEpisodes wraps MAPO environments, got {type(env.unwrapped).__name__}")
        check_choice("picture_format", picture_format, ("png", "html"))
        keep = check_int("keep", keep, minimum=0)
        picture_every = check_int("picture_every", picture_every, minimum=0)
        if directory is not None and not isinstance(directory, str | os.PathLike):
            raise ConfigError(f"directory must be a path (str or os.PathLike) or None, got {describe(directory)}")
        gym.utils.RecordConstructorArgs.__init__(
            self, directory=directory, keep=keep, picture_every=picture_every, picture_format=picture_format
        )
        super().__init__(env)
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.picture_every = picture_every
        self.picture_format = picture_format
        self.episodes: deque[EpisodeRecord] = deque(maxlen=keep)
        self.num_episodes = 0
        self._texts: list[str] = []
        self._rewards: list[float] = []

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset and start a new record."""
        self._texts, self._rewards = [], []
        return self.env.reset(**kwargs)

    def step(self, action: str) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step, remember the crop text, and close the record when the episode ends."""
        base: ThinkWithImagesEnv = self.env.unwrapped  # type: ignore[assignment]
        crops_before = len(base.image_frames)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._rewards.append(float(reward))
        parsed = base.parse(action[: base.max_action_chars])
        if len(obs["images"]) > crops_before and parsed.tool_call is not None:
            self._texts.append(parsed.tool_call.label or "")
        if base.description_mode == "post" and info["alignment"] is not None:
            self._texts[len(info["alignment_scores"]) - 1] = parsed.description or ""
        if terminated or truncated:
            self._close(base, obs, info)
        return obs, reward, terminated, truncated, info

    def _close(self, base: ThinkWithImagesEnv, obs: dict[str, Any], info: dict[str, Any]) -> None:
        sample = base.current_sample
        record = EpisodeRecord(
            sample_id=sample.sample_id,
            question=sample.question,
            options=list(base.shown_options),
            answer_index=base.shown_answer_index,
            images=list(obs["images"]),
            frames=list(base.image_frames),
            crop_texts=list(self._texts),
            alignment_scores=list(info["alignment_scores"]),
            messages=obs["messages"],
            rewards=list(self._rewards),
            correct=info["correct"],
            target_boxes=[t.bbox for t in sample.targets],
            extras={"category": sample.category, "tool_errors": info["num_tool_errors"]},
        )
        self.episodes.append(record)
        self.num_episodes += 1
        if self.directory is None:
            return
        row = {k: v for k, v in record.__dict__.items() if k not in ("images", "frames")}
        row["crop_boxes"] = [f.region for f in record.frames[1:]]
        with (self.directory / "episodes.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, default=str) + "\n")
        if self.picture_every > 0 and (self.num_episodes - 1) % self.picture_every == 0:
            save_episode(record, self.directory / f"episode_{self.num_episodes:05d}.{self.picture_format}")
