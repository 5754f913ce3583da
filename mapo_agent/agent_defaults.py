"""Defaults that depend on the model and the environment: image sizes, turns, tokens, memory budgets.

The environments' own defaults are those of the papers' large models (a V* image shown at up to
1280 * 28 * 28 pixels, crops magnified to at least 256 * 28 * 28, a tool-schema system prompt, six
turns). The bundled tiny agent sees at most 448 * 448 pixels per image anyway (its processor's
``max_pixels``), has no use for a prompt it cannot read before its cold start, and, untrained, fills
every turn up to ``max_new_tokens`` with noise. So when ``model.name_or_path`` is None (the tiny agent)
the trainer fills what the user left unset from :data:`TINY_AGENT_ENV_KWARGS` and
:data:`TINY_AGENT`; with any other model it uses :data:`MODEL_DEFAULTS` and the environment's own
defaults, unchanged.

=====================  ==========================  ===========================  =========  ===============
env                    full view (max / min px)    crops (max = min px)         max_turns  max_new_tokens
=====================  ==========================  ===========================  =========  ===============
MAPO-Tiles-v0          the env's own (112 * 112)   the env's own (112 * 112)    4 (env)    64
MAPO-VStar-v0          448 * 448 / 56 * 56         224 * 224 (64 tokens)        4          48
MAPO-HRBench4K/8K-v0   448 * 448 / 56 * 56         224 * 224                    6 (env)    48
MAPO-TextSpot-v0       448 * 448 / 56 * 56         224 * 224                    3          48
=====================  ==========================  ===========================  =========  ===============

Turns and tokens are the scripted expert's needs with a margin: its longest turn is 13 tokens on
Tiles, 23 on V*, 24 on HR-Bench and 28 on TextSpot with the tiny tokenizer; it takes at most 2 turns
on Tiles and TextSpot, 3 on V*, 6 on HR-Bench (one zoom per target, then the answer). Every one of
those envs also gets a one-line system prompt, as Tiles has (the default prompt's tool schema is
~400 tokens of every sequence). Whatever the model, rollouts play at most 32 questions at a time, 4
on HR-Bench 8K (:data:`CONCURRENT_QUESTIONS`). An explicit value (``--env.kwargs max_pixels=...``,
``--rollout.max-new-tokens``, ...) always wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AgentDefaults:
    """What a run uses for the fields its configuration leaves unset.

    Attributes:
        env_kwargs: ``gym.make`` keyword arguments under the configured ``env.kwargs``.
        max_new_tokens: Token cap of one generated turn.
        max_tokens_per_micro_batch: Token budget of one training micro-batch (rows * padded length,
            image tokens included).
        max_tokens_per_generation: Token budget of one generation call (rows * (prompt + max_new_tokens)).
        max_concurrent_questions: Questions a rollout plays at once (each live episode holds its scene at
            full resolution).
    """

    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    max_new_tokens: int = 64
    max_tokens_per_micro_batch: int = 8192
    max_tokens_per_generation: int = 65536
    max_concurrent_questions: int = 32


TINY_FULL_VIEW = {"max_pixels": 448 * 448, "min_pixels": 56 * 56}
"""The tiny agent's processor bounds: the environment resizes, the processor then leaves the image alone."""
TINY_CROPS = {"crop_max_pixels": 224 * 224, "crop_min_pixels": 224 * 224}
"""Every crop at 224 * 224 pixels (64 image tokens): small targets magnified, large ones reduced."""

TINY_AGENT_ENV_KWARGS: dict[str, dict[str, Any]] = {
    "MAPO-Tiles-v0": {},  # the environment's defaults are the tiny agent's recipe (docs/learning.md)
    "MAPO-VStar-v0": {
        **TINY_FULL_VIEW,
        **TINY_CROPS,
        "max_turns": 4,
        "system_prompt": "Zoom on the objects the question names, then answer.",
    },
    "MAPO-HRBench4K-v0": {
        **TINY_FULL_VIEW,
        **TINY_CROPS,
        "system_prompt": "Zoom on the objects the question names, then answer.",
    },
    "MAPO-HRBench8K-v0": {
        **TINY_FULL_VIEW,
        **TINY_CROPS,
        "system_prompt": "Zoom on the objects the question names, then answer.",
    },
    "MAPO-TextSpot-v0": {
        **TINY_FULL_VIEW,
        **TINY_CROPS,
        "max_turns": 3,
        "system_prompt": "Zoom on the text the question asks about, then answer.",
    },
}
"""``gym.make`` keyword arguments of the tiny agent per registered environment (see the module docstring)."""

CONCURRENT_QUESTIONS: dict[str, int] = {"MAPO-HRBench8K-v0": 4}
"""Questions played at once per environment, any model (default 32, the recipe's batch): an 8K scene is
7680x4320x3 bytes = 100 MB, so 32 live scenes alone would be 3.2 GB; 4 at a time bound them to ~0.4 GB
(plus the dataset's cache of recent scenes)."""

TINY_AGENT_MAX_NEW_TOKENS: dict[str, int] = {"MAPO-Tiles-v0": 64}
"""Per-environment ``max_new_tokens`` of the tiny agent; others get :data:`TINY_AGENT`'s."""

TINY_AGENT = AgentDefaults(max_new_tokens=48, max_tokens_per_micro_batch=8192, max_tokens_per_generation=16384)
"""The tiny agent's token caps and memory budgets (any environment)."""

MODEL_DEFAULTS = AgentDefaults(max_new_tokens=64, max_tokens_per_micro_batch=8192, max_tokens_per_generation=65536)
"""Any other model (``model.name_or_path`` given): the environment's own image sizes, turns and prompt."""


def agent_defaults(env_id: str, name_or_path: str | None) -> AgentDefaults:
    """The defaults of a run of model ``name_or_path`` (None = the tiny agent) on ``env_id``.

    An environment id the table does not know (a user's own registration) gets the tiny agent's token
    caps and budgets but no ``gym.make`` keyword arguments (it may not take them).
    """
    concurrent = CONCURRENT_QUESTIONS.get(env_id, MODEL_DEFAULTS.max_concurrent_questions)
    if name_or_path is not None:
        return dataclasses.replace(MODEL_DEFAULTS, max_concurrent_questions=concurrent)
    return AgentDefaults(
        env_kwargs=dict(TINY_AGENT_ENV_KWARGS.get(env_id, {})),
        max_new_tokens=TINY_AGENT_MAX_NEW_TOKENS.get(env_id, TINY_AGENT.max_new_tokens),
        max_tokens_per_micro_batch=TINY_AGENT.max_tokens_per_micro_batch,
        max_tokens_per_generation=TINY_AGENT.max_tokens_per_generation,
        max_concurrent_questions=concurrent,
    )
