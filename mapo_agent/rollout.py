"""Rollouts: G episodes per question through ``gym.make`` + ``reset`` / ``step``, batched across episodes.

:class:`RolloutWorker` owns one environment per concurrent episode (any registered id, any env
kwargs) and plays them in lock-step: each round, the policy generates one turn for every live
episode in a single batched call, then each environment steps. The environment's ``info`` gives the
per-turn alignment, the crop's ``target_iou``, tool errors and the outcome; they end up on the
:class:`~mapo_agent.types.Trajectory`.

The actor is either the policy (sampled turns, generation log-probs kept) or the environment's
scripted :class:`~mapo_env.oracle.Oracle` (cold-start SFT data): its text is tokenised into the same
episode state as if the model had written it, so SFT trains on exactly the tokens RL later samples.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import gymnasium as gym

import mapo_env  # noqa: F401  (registers the MAPO-* ids)
from mapo_agent.types import Trajectory
from mapo_env.actions import FAILED_CALL_ERRORS
from mapo_env.core import ThinkWithImagesEnv
from mapo_env.errors import ConfigError
from mapo_env.oracle import Oracle

Actor = Literal["policy", "oracle"]


class RolloutPolicy(Protocol):
    """The policy side of a rollout (implemented by :class:`mapo_agent.policy.HFPolicy`)."""

    def start_episode(self, obs: dict[str, Any]) -> Any:
        """Episode state from the first observation."""
        ...

    def generate(self, states: Sequence[Any], **kwargs: Any) -> list[str]:
        """One sampled turn per state (appended to it); returns their texts."""
        ...

    def force_turn(self, state: Any, text: str) -> None:
        """Append ``text`` as if the model had generated it (teacher forcing)."""
        ...

    def observe(self, state: Any, obs: dict[str, Any]) -> None:
        """Append the environment's reply."""
        ...

    def to_trajectory(self, state: Any, *, group_id: int, sample_index: int, **fields: Any) -> Trajectory:
        """The finished episode."""
        ...


@dataclass
class RolloutTimes:
    """Wall time of the last :meth:`RolloutWorker.run`, by phase (seconds)."""

    generate: float = 0.0
    """Inside ``policy.generate`` (model forward passes, sampling)."""
    env: float = 0.0
    """Inside ``env.reset`` / ``env.step`` (crop, parsing, alignment scoring)."""
    tokenize: float = 0.0
    """Turning observations into tokens and images into patches (``start_episode`` / ``observe``)."""
    total: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def outside_model_share(self) -> float:
        """Share of the rollout's wall time spent outside model generation."""
        return 1.0 - self.generate / self.total if self.total > 0 else 0.0


class RolloutWorker:
    """Plays episodes of ``env_id`` with a policy or the oracle.

    Args:
        env_id: A registered environment id (``"MAPO-Tiles-v0"``, ...).
        env_kwargs: Keyword arguments for ``gym.make``.
        generate_kwargs: Passed to ``policy.generate`` (``do_sample``, ``temperature``, ...).
        max_concurrent_questions: Memory bound of :meth:`run`: play at most this many questions (their
            ``group_size`` episodes each) at a time, in consecutive waves; ``None`` = all at once. Every
            live episode holds its scene at full resolution (100 MB for an 8K image).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        generate_kwargs: dict[str, Any] | None = None,
        max_concurrent_questions: int | None = None,
    ) -> None:
        if max_concurrent_questions is not None and max_concurrent_questions < 1:
            raise ConfigError(f"max_concurrent_questions must be >= 1 or None (all), got {max_concurrent_questions!r}")
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.generate_kwargs = dict(generate_kwargs or {})
        self.max_concurrent_questions = max_concurrent_questions
        self.envs: list[gym.Env] = []
        self.times = RolloutTimes()

    @property
    def dataset_size(self) -> int:
        """Number of questions of the environment's dataset."""
        return len(self.envs_sample().unwrapped.dataset)

    def envs_sample(self) -> gym.Env:
        """One of the worker's environments (built if needed), to read its settings (``max_turns``, ...)."""
        return self._envs(1)[0]

    def _envs(self, n: int) -> list[gym.Env]:
        while len(self.envs) < n:
            env = gym.make(self.env_id, **self.env_kwargs)
            if self.envs:
                share_dataset(env, self.envs[0])
            self.envs.append(env)
        return self.envs[:n]

    def run(
        self,
        policy: RolloutPolicy,
        questions: Sequence[int],
        group_size: int,
        *,
        seed: int,
        actor: Actor = "policy",
        first_group_id: int = 0,
        reset_seeds: Sequence[int] | None = None,
    ) -> list[Trajectory]:
        """Play ``group_size`` episodes of each question (dataset index) and return them.

        Episodes of one question share their reset seed (same option order: one GRPO group sees one
        prompt), ``seed + position of the question`` unless ``reset_seeds`` gives one per question, and
        group id ``first_group_id + position of the question``.

        With ``actor="oracle"`` each question is played once and its trajectory copied ``group_size``
        times: the scripted expert is deterministic and the group's episodes share their reset seed, so
        the copies are exactly what playing them would give (at ``1 / group_size`` of the cost).

        With :attr:`max_concurrent_questions` set, the questions are played in waves of that many; seeds
        and group ids are those of playing them all at once.
        """
        wave = self.max_concurrent_questions
        if wave is not None and len(questions) > wave:
            trajectories: list[Trajectory] = []
            times = RolloutTimes()
            for start in range(0, len(questions), wave):
                trajectories += self.run(
                    policy,
                    questions[start : start + wave],
                    group_size,
                    seed=seed + start,
                    actor=actor,
                    first_group_id=first_group_id + start,
                    reset_seeds=None if reset_seeds is None else reset_seeds[start : start + wave],
                )
                for name in ("generate", "env", "tokenize", "total"):
                    setattr(times, name, getattr(times, name) + getattr(self.times, name))
            self.times = times
            return trajectories
        if actor == "oracle" and group_size > 1:
            once = self.run(
                policy,
                questions,
                1,
                seed=seed,
                actor=actor,
                first_group_id=first_group_id,
                reset_seeds=reset_seeds,
            )
            return [_copy_trajectory(t) for t in once for _ in range(group_size)]
        times = RolloutTimes()
        start = time.perf_counter()
        envs = self._envs(len(questions) * group_size)
        oracles = [Oracle(env) for env in envs] if actor == "oracle" else []
        states: list[Any] = []
        observations: list[dict[str, Any]] = []
        records = [_EpisodeRecord() for _ in envs]
        for j, env in enumerate(envs):
            question = questions[j // group_size]
            t0 = time.perf_counter()
            reset_seed = seed + j // group_size if reset_seeds is None else int(reset_seeds[j // group_size])
            obs, _ = env.reset(seed=reset_seed, options={"index": int(question)})
            t1 = time.perf_counter()
            states.append(policy.start_episode(obs))
            times.env += t1 - t0
            times.tokenize += time.perf_counter() - t1
            observations.append(obs)
        live = list(range(len(envs)))
        while live:
            t0 = time.perf_counter()
            if actor == "policy":
                texts = policy.generate([states[j] for j in live], **self.generate_kwargs)
                times.generate += time.perf_counter() - t0
            else:
                texts = [oracles[j].act(observations[j]) for j in live]
                for j, text in zip(live, texts):
                    policy.force_turn(states[j], text)
                times.tokenize += time.perf_counter() - t0
            still_live = []
            for j, text in zip(live, texts):
                t0 = time.perf_counter()
                obs, reward, terminated, truncated, info = envs[j].step(text)
                t1 = time.perf_counter()
                times.env += t1 - t0
                records[j].add(reward, info, truncated)
                if not (terminated or truncated):
                    policy.observe(states[j], obs)
                    observations[j] = obs
                    still_live.append(j)
                times.tokenize += time.perf_counter() - t1
            live = still_live
        for record, env in zip(records, envs):
            if not getattr(env.unwrapped, "zoom_enabled", True):  # the ablation: calls return the full view
                record.info["zoom_enabled"] = False
        trajectories = [
            policy.to_trajectory(
                states[j],
                group_id=first_group_id + j // group_size,
                sample_index=int(questions[j // group_size]),
                **records[j].fields(),
            )
            for j in range(len(envs))
        ]
        times.total = time.perf_counter() - start
        self.times = times
        return trajectories

    def close(self) -> None:
        """Close every environment."""
        for env in self.envs:
            env.close()
        self.envs.clear()


def _copy_trajectory(trajectory: Trajectory) -> Trajectory:
    """A copy whose lists and info dict can be changed without touching the original (images are shared)."""
    return dataclasses.replace(
        trajectory,
        input_ids=list(trajectory.input_ids),
        loss_mask=list(trajectory.loss_mask),
        old_logprobs=list(trajectory.old_logprobs),
        images=list(trajectory.images),
        alignment_scores=list(trajectory.alignment_scores),
        tool_call_scores=list(trajectory.tool_call_scores),
        tool_errors=list(trajectory.tool_errors),
        target_ious=list(trajectory.target_ious),
        turn_spans=list(trajectory.turn_spans),
        info=dict(trajectory.info),
    )


def share_dataset(env: gym.Env, source: gym.Env) -> None:
    """Make ``env`` draw its questions from ``source``'s dataset (both built with the same ``gym.make`` arguments).

    Every environment builds its own dataset, and a procedural one keeps its last scenes in an LRU: with
    one environment per concurrent episode, the G episodes of a question would each draw the scene (a
    V* scene is 2246x1582 pixels, 11 MB) and every environment would keep up to ``cache_size`` of them,
    memory growing with the number of environments times the cache. Shared, a question's scene is drawn
    once per group and the worker holds the scenes of its live episodes plus one cache. The datasets are
    interchangeable: same class, same length, same arguments.
    """
    base, other = env.unwrapped, source.unwrapped
    if not (isinstance(base, ThinkWithImagesEnv) and isinstance(other, ThinkWithImagesEnv)):
        return
    if type(base.dataset) is type(other.dataset) and len(base.dataset) == len(other.dataset):
        base.dataset = other.dataset


@dataclass
class _EpisodeRecord:
    """What the environment reported over one episode."""

    reward: float = 0.0
    correct: bool = False
    alignment_scores: list[float] = field(default_factory=list)
    tool_call_scores: list[float | None] = field(default_factory=list)
    target_ious: list[float] = field(default_factory=list)
    tool_errors: list[str] = field(default_factory=list)
    num_tool_calls: int = 0
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, reward: float, info: dict[str, Any], truncated: bool) -> None:
        self.reward += float(reward)
        if info["alignment"] is not None:
            self.alignment_scores.append(float(info["alignment"]))
            self.tool_call_scores.append(float(info["alignment"]))
        if info["tool_error"] is not None:
            self.tool_errors.append(info["tool_error"])
            if info["tool_error"] in FAILED_CALL_ERRORS:
                self.tool_call_scores.append(None)
        if info["target_iou"] is not None and info["num_tool_calls"] > self.num_tool_calls:
            self.target_ious.append(float(info["target_iou"]))
        # zoom calls made: with zoom_enabled=False the env counts them apart (num_disabled_tool_calls) and the
        # trajectory is marked info["zoom_enabled"] = False, so the metrics count them as disabled, never as crops
        self.num_tool_calls = int(info["num_tool_calls"]) + int(info.get("num_disabled_tool_calls", 0))
        self.correct = bool(info["correct"])
        self.truncated = truncated
        self.info = {k: info[k] for k in ("sample_id", "category", "answer", "answer_index", "reward_terms")}
        if "grounding" in info:  # the step that ended the episode carries its ground truth
            self.info["grounding"] = info["grounding"]

    def fields(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "correct": self.correct,
            "alignment_scores": self.alignment_scores,
            "tool_call_scores": self.tool_call_scores,
            "target_ious": self.target_ious,
            "tool_errors": self.tool_errors,
            "num_tool_calls": self.num_tool_calls,
            "truncated": self.truncated,
            "info": self.info,
        }
