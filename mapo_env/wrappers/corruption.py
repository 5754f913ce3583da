"""``VisualCorruption``: degrade what the agent sees (the full view, every crop) with a seeded corruption."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec, WrapperSpec

from mapo_env.core import ThinkWithImagesEnv
from mapo_env.corruptions import check_severity, corrupt, resolve_corruptions
from mapo_env.errors import ConfigError
from mapo_env.validation import check_choice, describe

CorruptionTarget = Literal["all", "view", "crops"]
CORRUPTION_TARGETS: tuple[str, ...] = ("all", "view", "crops")
"""Which images :class:`VisualCorruption` degrades: every image, the full view only, or the crops only."""

_SALT = 0x5EED_C0DE  # keeps the wrapper's stream apart from the env's own np_random under one seed


class VisualCorruption(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Degrade the images of every observation with a corruption of :mod:`mapo_env.corruptions`.

    ## Description

    The agent sees a corrupted copy of each image in ``obs["images"]``: the full view (``images[0]``)
    and/or every crop the zoom tool returned (``images[1:]``), chosen by ``target``. Everything else is
    the wrapped environment's, computed on the CLEAN images:

    - the tool's geometry: a zoom box is read against the clean frame of the image it names and cut
      from the clean full-resolution original, then corrupted; only what the agent receives is
      degraded, never the scene it is cut from (``info["crop_box"]`` and the frames are unchanged);
    - the alignment score (``info["alignment"]``): the scorer rates descriptions against the clean
      crop, so the reward is not poisoned by the corruption;
    - the answer, rewards, ``info``, ``messages`` and the dataset's sample order: the wrapper draws from
      its own random stream, never from the environment's ``np_random``.

    An image is corrupted once, when it first appears, and then handed out unchanged (a fresh copy) at
    every later step, as the environment does with clean images. ``render()`` in ``"rgb_array"`` mode
    draws the crop boxes on the corrupted full view (when the view is a target).

    ## Corruptions

    ``corruption`` is one name of :data:`~mapo_env.corruptions.CORRUPTIONS` (e.g. ``"jpeg"``), a group
    (``"seen"``, ``"unseen"``, ``"all"``), or several names joined by commas or given as a list. With more
    than one name, each episode draws one uniformly (the same for all its images);
    ``info["corruption"]`` says which. ``severity`` is 1 (mild) ... 5 (severe), ImageNet-C's scale.
    Keep the *unseen* set (:data:`~mapo_env.corruptions.UNSEEN_CORRUPTIONS`) for evaluation.

    ## Seeding

    ``reset(seed=s)`` also seeds the wrapper: episode ``i`` after a seeded reset draws its corruption
    name and one episode key from the wrapper's generator, and image ``k`` of the episode is corrupted
    with ``np.random.default_rng([key, k])``. The same seed therefore gives identical pixels,
    whatever the order of the zoom calls. Without any seeded reset the stream starts from fresh entropy.

    ## Info

    Adds ``corruption`` (the name used this episode), ``corruption_severity`` and ``corruption_target``.

    ## Arguments

    ``env`` (a MAPO environment, possibly wrapped), ``corruption`` (see Corruptions), ``severity``
    (1..5, default 3), ``target`` (``"all"`` | ``"view"`` | ``"crops"``, default ``"all"``). A bad name,
    severity or target raises at construction: :class:`~mapo_env.errors.UnknownNameError` listing the
    seen and unseen names, or :class:`~mapo_env.errors.ConfigError`.

    With ``gym.make``: :func:`make_corrupted` (``make_corrupted("MAPO-Tiles-v0", "jpeg", 3, split="test")``)
    or :func:`corrupted_spec`, an :class:`~gymnasium.envs.registration.EnvSpec` carrying the wrapper that
    ``gym.make`` (and code that takes an env id) accepts; ``gym.make(env.spec)`` rebuilds a wrapped env.

    Example:
        >>> import gymnasium as gym
        >>> import mapo_env
        >>> env = VisualCorruption(gym.make("MAPO-Tiles-v0", alignment="lexical"), "gaussian_blur", severity=2)
        >>> obs, info = env.reset(seed=0)
        >>> info["corruption"], info["corruption_severity"], obs["images"][0].dtype
        ('gaussian_blur', 2, dtype('uint8'))
    """

    def __init__(
        self,
        env: gym.Env,
        corruption: str | Sequence[str],
        severity: int = 3,
        *,
        target: CorruptionTarget = "all",
    ) -> None:
        if not isinstance(env.unwrapped, ThinkWithImagesEnv):
            raise ConfigError(f"VisualCorruption wraps MAPO environments, got {type(env.unwrapped).__name__}")
        names, spec_kwargs = _checked_kwargs(corruption, severity, target)
        gym.utils.RecordConstructorArgs.__init__(self, **spec_kwargs)
        super().__init__(env)
        self.corruptions: tuple[str, ...] = names
        self.severity: int = spec_kwargs["severity"]
        self.target: CorruptionTarget = target
        self._rng: np.random.Generator | None = None
        self._name = names[0]
        self._key = 0
        self._shown: list[np.ndarray] = []

    @property
    def corruption(self) -> str:
        """The corruption of the current (or last) episode."""
        return self._name

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env, then draw this episode's corruption and key (see Seeding) and corrupt the view."""
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([int(seed), _SALT])
        elif self._rng is None:
            self._rng = np.random.default_rng()
        self._name = self.corruptions[int(self._rng.integers(len(self.corruptions)))]
        self._key = int(self._rng.integers(2**63))
        self._shown = []
        return self._degrade(obs), self._info(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; corrupt the images that are new this step, hand out the others as before."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._degrade(obs), reward, terminated, truncated, self._info(info)

    def render(self) -> Any:
        """``"rgb_array"``: the crop boxes on the full view as the agent saw it; other modes: the env's."""
        base: ThinkWithImagesEnv = self.env.unwrapped  # type: ignore[assignment]
        if base.render_mode != "rgb_array" or not self._shown or self.target == "crops":
            return self.env.render()
        from mapo_env.render import draw_crop_boxes

        frames = base.image_frames
        return draw_crop_boxes(self._shown[0], frames[0], [f.region for f in frames[1:]])

    def corrupt_image(self, image: np.ndarray, index: int) -> np.ndarray:
        """Image ``index`` of the current episode as the agent sees it (a new array; clean if not a target)."""
        if (self.target == "view" and index > 0) or (self.target == "crops" and index == 0):
            return np.array(image, copy=True)
        return corrupt(image, self._name, self.severity, np.random.default_rng([self._key, index]))

    def _degrade(self, obs: dict[str, Any]) -> dict[str, Any]:
        images = obs["images"]
        if len(images) < len(self._shown):  # not produced by the env; stay consistent with what it returned
            self._shown = self._shown[: len(images)]
        out = []
        for index, image in enumerate(images):
            if index < len(self._shown) and self._shown[index].shape == image.shape:
                out.append(self._shown[index].copy())
            else:
                shown = self.corrupt_image(image, index)
                self._shown[index:] = [shown]
                out.append(shown)
        return {**obs, "images": tuple(out)}

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        return {
            **info,
            "corruption": self._name,
            "corruption_severity": self.severity,
            "corruption_target": self.target,
        }


def _checked_kwargs(corruption: Any, severity: Any, target: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The corruption names and the wrapper's spec kwargs, once every argument is checked."""
    names = _names(corruption)
    severity = check_severity(severity)
    check_choice("target", target, CORRUPTION_TARGETS)
    spec_corruption = corruption if isinstance(corruption, str) else list(names)
    return names, {"corruption": spec_corruption, "severity": severity, "target": target}


def _names(corruption: Any) -> tuple[str, ...]:
    if isinstance(corruption, str):
        return resolve_corruptions(corruption)
    if isinstance(corruption, Sequence) and corruption and all(isinstance(c, str) for c in corruption):
        return resolve_corruptions(",".join(corruption))
    raise ConfigError(
        f"corruption must be a name, a group ('seen', 'unseen', 'all') or a non-empty list of names, "
        f"got {describe(corruption)}"
    )


def corrupted_spec(
    env_id: str | EnvSpec, corruption: str | Sequence[str], severity: int = 3, *, target: CorruptionTarget = "all"
) -> EnvSpec:
    """The spec of ``env_id`` with :class:`VisualCorruption` added: pass it to ``gym.make`` like an id.

    The arguments are checked now (the same errors as the wrapper's). ``gym.make(spec, **kwargs)`` builds
    the env with ``kwargs`` and wraps it last (after ``TimeLimit`` and the env checker), as Gymnasium
    applies a spec's ``additional_wrappers``.

    Example:
        >>> import gymnasium as gym
        >>> import mapo_env
        >>> env = gym.make(corrupted_spec("MAPO-Tiles-v0", "jpeg", 4), split="test", alignment="lexical")
        >>> type(env).__name__, env.severity
        ('VisualCorruption', 4)
    """
    _, kwargs = _checked_kwargs(corruption, severity, target)
    spec = env_id if isinstance(env_id, EnvSpec) else gym.spec(env_id)
    wrapper = WrapperSpec(name="VisualCorruption", entry_point=f"{__name__}:VisualCorruption", kwargs=kwargs)
    return dataclasses.replace(spec, additional_wrappers=(*spec.additional_wrappers, wrapper))


def make_corrupted(
    env_id: str,
    corruption: str | Sequence[str],
    severity: int = 3,
    *,
    target: CorruptionTarget = "all",
    **kwargs: Any,
) -> VisualCorruption:
    """``gym.make(env_id, **kwargs)`` wrapped in :class:`VisualCorruption` (``corruption``, ``severity``, ``target``).

    Example:
        >>> import mapo_env
        >>> env = make_corrupted("MAPO-Tiles-v0", "unseen", 5, alignment="lexical")
        >>> env.corruptions[:2]
        ('motion_blur', 'defocus_blur')
    """
    return gym.make(corrupted_spec(env_id, corruption, severity, target=target), **kwargs)  # type: ignore[return-value]
