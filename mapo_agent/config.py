"""Training configuration: nested dataclasses, validated on construction, written to the run directory.

Every field's docstring is its ``mapo-train --help`` text. The defaults are the bundled recipe: the
tiny Qwen2.5-VL agent on ``MAPO-Tiles-v0``, an oracle SFT cold start, then MAPO.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mapo_env.errors import ConfigError


@dataclass
class ModelConfig:
    """The policy model."""

    name_or_path: str | None = None
    """Hub id or folder of a Qwen2-VL / Qwen2.5-VL checkpoint (or a run's final/); None = the bundled tiny agent."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype; auto = float32 on CPU, bfloat16 on GPU."""
    attn_implementation: str = "sdpa"
    """Attention kernel: sdpa, eager or flash_attention_2."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% slower)."""
    lora_rank: int = 0
    """LoRA rank on the language model's projections (peft); 0 = full fine-tuning."""


@dataclass
class EnvConfig:
    """The environment the agent trains and is evaluated on."""

    id: str = "MAPO-Tiles-v0"
    """A registered environment id (MAPO-Tiles-v0, MAPO-VStar-v0, MAPO-HRBench4K-v0, ...)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """gym.make keyword arguments for training, as KEY=VALUE (values read as JSON), e.g. coords=norm1000."""
    eval_kwargs: dict[str, Any] = field(default_factory=lambda: {"split": "test"})
    """gym.make keyword arguments for held-out evaluation (merged over kwargs)."""
    sft_kwargs: dict[str, Any] = field(default_factory=dict)
    """gym.make keyword arguments of the cold-start stage only (merged over kwargs), e.g. an easier curriculum."""


@dataclass
class RolloutConfig:
    """How trajectories are sampled."""

    questions_per_step: int = 32
    """Questions per training step (across all processes)."""
    group_size: int = 4
    """Rollouts per question (G of GRPO-style group normalisation)."""
    temperature: float = 1.0
    """Sampling temperature (log-probs use the same temperature)."""
    top_p: float = 1.0
    """Nucleus sampling threshold; 1.0 = off."""
    max_new_tokens: int | None = None
    """Token cap of one generated turn; None = the model's default for the env (mapo_agent.agent_defaults)."""
    max_tokens_per_generation: int | None = None
    """Memory bound of generation: live episodes are generated in chunks of at most this many tokens
    (rows * (longest prompt, image tokens included, + max_new_tokens)); None = the model's default."""
    max_concurrent_questions: int | None = None
    """Memory bound of rollouts and evaluation: questions played at once (each live episode holds its
    full-resolution scene); None = the env's default (32; 4 on MAPO-HRBench8K-v0)."""
    backend: Literal["hf", "vllm"] = "hf"
    """Sampling engine of the rollouts: hf (transformers generate on the trained model) or vllm (a colocated vLLM
    engine, weights pushed after every optimizer step; needs vLLM and temperature 1.0; see docs/engines.md)."""


@dataclass
class OptimConfig:
    """Optimizer and schedule."""

    lr: float = 1e-4
    """Peak learning rate of the RL stage (AdamW)."""
    sft_lr: float = 2e-3
    """Peak learning rate of the SFT cold-start stage."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.98)
    """AdamW betas."""
    warmup_steps: int = 20
    """Linear warm-up steps at the start of each stage."""
    schedule: Literal["constant", "cosine"] = "cosine"
    """Learning-rate decay within each stage after warm-up (cosine to 10%)."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    minibatches: int = 1
    """Optimizer steps per batch (question groups are never split across minibatches)."""
    micro_batches: int = 1
    """Split each minibatch into at least this many chunks of whole question groups (then by the token budget)."""
    max_tokens_per_micro_batch: int | None = None
    """Memory bound of training: each minibatch's forward/backward (and reference) passes run in micro-batches
    of at most this many tokens (rows * padded length, image tokens included), gradients accumulated with
    the minibatch's loss normalisation (same gradient as one pass); None = the model's default."""
    epochs: int = 1
    """Passes over each batch (PPO epochs; >1 makes later passes off-policy, clipped)."""


@dataclass(frozen=True)
class Stage:
    """One training stage, derived from a :class:`TrainConfig`.

    Attributes:
        name: ``"cold_start"`` or ``"rl"``.
        algo: Algorithm name.
        algo_kwargs: Its config fields.
        start: First global step.
        length: Number of steps.
        lr: Peak learning rate.
        env_kwargs: ``gym.make`` keyword arguments of its rollouts.
    """

    name: str
    algo: str
    algo_kwargs: dict[str, Any]
    start: int
    length: int
    lr: float
    env_kwargs: dict[str, Any]


@dataclass
class TrainConfig:
    """Train a multimodal policy to think with images: optional oracle SFT cold start, then RL."""

    algo: str = "mapo"
    """RL algorithm: a name in mapo_agent.algorithms.ALGORITHMS (listed with their options at the end of --help)."""
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    """Config fields of the algorithm as KEY=VALUE, e.g. kl_coef=0.01 or advantage='{"semantic_coef": 0.2}'."""
    steps: int = 30
    """RL steps (after the SFT stage)."""
    sft_steps: int = 700
    """Oracle SFT cold-start steps before RL (0 = start RL from the given model)."""
    sft_algo: str = "grounded_sft"
    """Algorithm of the cold-start stage (one whose rollout_source is the oracle)."""
    sft_kwargs: dict[str, Any] = field(default_factory=dict)
    """Config fields of the cold-start algorithm as KEY=VALUE."""
    seed: int = 0
    """Seed of everything: questions, sampling, option shuffles. Same seed, same run."""
    output_dir: str = "runs/mapo-tiles"
    """Run directory: config.json, metrics.jsonl, plots/, checkpoints/, final/."""
    resume: bool = False
    """Continue from the latest checkpoint in output_dir (exactly: weights, optimizer, step, data position)."""
    overwrite: bool = False
    """mapo-train: replace the run already in output_dir (its checkpoints, metrics, final model); default: refuse."""
    save_every: int = 100
    """Checkpoint every N steps (0 = only at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (oldest deleted first)."""
    eval_every: int = 50
    """Held-out evaluation every N steps (0 = only at the end)."""
    eval_episodes: int = 200
    """Held-out episodes per evaluation (greedy decoding, split=test)."""
    log_every: int = 1
    """Write metrics every N steps."""
    progress_bar: bool = True
    """Show a progress bar on the main process."""
    cpu: bool = False
    """Force CPU even when a GPU is present."""
    threads: int = 0
    """torch CPU threads per process; 0 = torch's default. Tiny models on a busy CPU are fastest with 1."""
    find_unused_parameters: bool = False
    """Multi-process DDP: tolerate parameters without gradient in a step (slower; needed with frozen branches)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        from mapo_agent.algorithms import make_algorithm

        # unknown names, unknown or ill-typed config fields fail now (with the valid names), not at the stage
        for field_name, name, kwargs in (
            ("algo_kwargs", self.algo, self.algo_kwargs),
            ("sft_kwargs", self.sft_algo, self.sft_kwargs),
        ):
            try:
                make_algorithm(name, **kwargs)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"{field_name}={kwargs!r} for {name!r}: {err}") from err
        positive = {
            "steps": self.steps + self.sft_steps,
            "rollout.questions_per_step": self.rollout.questions_per_step,
            "rollout.group_size": self.rollout.group_size,
            "optim.minibatches": self.optim.minibatches,
            "optim.micro_batches": self.optim.micro_batches,
            "optim.epochs": self.optim.epochs,
            "eval_episodes": self.eval_episodes,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        for name, value in (("steps", self.steps), ("sft_steps", self.sft_steps), ("save_every", self.save_every)):
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        for name, value in (
            ("rollout.max_new_tokens", self.rollout.max_new_tokens),
            ("rollout.max_tokens_per_generation", self.rollout.max_tokens_per_generation),
            ("rollout.max_concurrent_questions", self.rollout.max_concurrent_questions),
            ("optim.max_tokens_per_micro_batch", self.optim.max_tokens_per_micro_batch),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer or None (the model's default), got {value!r}")
        if self.optim.minibatches > self.rollout.questions_per_step:
            raise ConfigError(
                f"optim.minibatches ({self.optim.minibatches}) cannot exceed rollout.questions_per_step "
                f"({self.rollout.questions_per_step}): a minibatch holds whole question groups."
            )
        if self.rollout.temperature <= 0 or not 0 < self.rollout.top_p <= 1:
            raise ConfigError(
                f"need temperature > 0 and 0 < top_p <= 1, got {self.rollout.temperature}, {self.rollout.top_p}"
            )
        if self.rollout.backend == "vllm" and self.rollout.temperature != 1.0:
            raise ConfigError(
                f"the vllm rollout backend returns log-probs at temperature 1 only, got rollout.temperature="
                f"{self.rollout.temperature}; use rollout.temperature=1.0 or rollout.backend=hf"
            )

    def resolved(self) -> TrainConfig:
        """A copy with every model- and env-dependent default filled in (what a run uses and saves).

        Fields left unset (``None``) take the values of :func:`mapo_agent.agent_defaults.agent_defaults`
        for ``model.name_or_path`` and ``env.id``; ``env.kwargs`` goes over that table's ``gym.make``
        arguments. Idempotent: ``config.resolved().resolved() == config.resolved()``.
        """
        from mapo_agent.agent_defaults import agent_defaults

        defaults = agent_defaults(self.env.id, self.model.name_or_path)
        rollout, optim = self.rollout, self.optim
        return dataclasses.replace(
            self,
            env=dataclasses.replace(self.env, kwargs={**defaults.env_kwargs, **self.env.kwargs}),
            rollout=dataclasses.replace(
                rollout,
                max_new_tokens=rollout.max_new_tokens or defaults.max_new_tokens,
                max_tokens_per_generation=rollout.max_tokens_per_generation or defaults.max_tokens_per_generation,
                max_concurrent_questions=rollout.max_concurrent_questions or defaults.max_concurrent_questions,
            ),
            optim=dataclasses.replace(
                optim,
                max_tokens_per_micro_batch=optim.max_tokens_per_micro_batch or defaults.max_tokens_per_micro_batch,
            ),
        )

    @property
    def total_steps(self) -> int:
        """SFT steps plus RL steps."""
        return self.sft_steps + self.steps

    def stages(self) -> list[Stage]:
        """The non-empty stages in order: the cold start (if any), then RL."""
        cold = Stage("cold_start", self.sft_algo, dict(self.sft_kwargs), 0, self.sft_steps, self.optim.sft_lr,
                     {**self.env.kwargs, **self.env.sft_kwargs})  # fmt: skip
        rl = Stage(
            "rl", self.algo, dict(self.algo_kwargs), self.sft_steps, self.steps, self.optim.lr, dict(self.env.kwargs)
        )
        return [s for s in (cold, rl) if s.length > 0]

    def stage_at(self, step: int) -> Stage:
        """The stage global step ``step`` (0-based) belongs to."""
        for stage in self.stages():
            if stage.start <= step < stage.start + stage.length:
                return stage
        raise ConfigError(f"step {step} is outside the run's {self.total_steps} steps")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the resolved config as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        nested = {"model": ModelConfig, "env": EnvConfig, "rollout": RolloutConfig, "optim": OptimConfig}
        for key, klass in nested.items():
            if key in data:
                values = dict(data[key])
                if key == "optim" and "betas" in values:
                    values["betas"] = tuple(values["betas"])
                data[key] = klass(**values)
        return cls(**data)
