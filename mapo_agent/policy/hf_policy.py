"""HFPolicy: a Hugging Face Qwen2-VL-family model as a rollout policy and a :class:`TrainablePolicy`.

Rollout side (token in, token out)::

    policy = HFPolicy.from_pretrained()                       # the bundled tiny agent; or a hub id / folder
    states = [policy.start_episode(env.reset(seed=s)[0]) for env, s in ...]
    texts = policy.generate(states)                           # one batched turn for every live episode
    obs, reward, terminated, truncated, info = env.step(texts[i])
    policy.observe(states[i], obs)                            # append the env's reply as tokens
    trajectory = policy.to_trajectory(states[i], group_id=g, sample_index=idx, reward=r, correct=c)

Training side: :meth:`HFPolicy.collate` pads trajectories into a :class:`TrainBatch` and
:meth:`HFPolicy.forward` runs the teacher-forced pass (log-probs from raw logits at the sampling
temperature, entropy, and whatever a :class:`~mapo_agent.types.ForwardRequest` asks: hidden states,
attentions, replaced images, PAPO's patch masking). Advantages are the algorithm side's business.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mapo_agent.memory import pack_by_tokens
from mapo_agent.policy import episode as ep
from mapo_agent.policy.generation import GenerationRequest, GenerationResult, Generator, HFGenerator, SamplingParams
from mapo_agent.policy.ops import (
    mask_image_patches,
    resolve_device,
    resolve_dtype,
    token_logprobs_and_entropy,
)
from mapo_agent.policy.processor import QwenVLProcessor, pad_sequences
from mapo_agent.types import PLAIN_FORWARD, ForwardOutput, ForwardRequest, ImageTokens, TrainBatch, Trajectory
from mapo_env.errors import ConfigError, DependencyNotInstalled

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""LoRA on the language model's attention and MLP projections (the vision tower stays frozen)."""


class HFPolicy:
    """A Qwen2-VL / Qwen2.5-VL chat model that plays MAPO environments and trains with our algorithms.

    Args:
        model: A ``Qwen2_5_VLForConditionalGeneration`` (or Qwen2-VL), possibly wrapped by peft.
        processor: Its :class:`QwenVLProcessor`.
        temperature: Sampling temperature; log-probs (generation and :meth:`forward`) use
            ``log_softmax(logits / temperature)`` of the raw logits.
        top_p: Nucleus sampling threshold (1.0 = off). Log-probs still come from the raw logits.
        max_new_tokens: Default cap of tokens per generated turn.
        max_tokens_per_generation: Memory bound of :meth:`generate`: the episodes are generated in chunks
            of at most this many tokens, ``rows * (longest prompt + max_new_tokens)`` with image tokens
            counted (a single longer episode runs alone); ``None`` = one batch.
        generator: The sampling engine (:class:`~mapo_agent.policy.generation.Generator`); default
            :class:`~mapo_agent.policy.generation.HFGenerator` on ``model`` itself.
    """

    def __init__(
        self,
        model: Any,
        processor: QwenVLProcessor,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        max_tokens_per_generation: int | None = None,
        generator: Generator | None = None,
    ) -> None:
        if temperature <= 0 or not 0 < top_p <= 1 or max_new_tokens < 1:
            raise ConfigError(
                f"expected temperature > 0, 0 < top_p <= 1 and max_new_tokens >= 1, got temperature={temperature}, "
                f"top_p={top_p}, max_new_tokens={max_new_tokens}; use do_sample=False for greedy decoding."
            )
        self.model = model
        self.processor = processor
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_new_tokens = int(max_new_tokens)
        if max_tokens_per_generation is not None and max_tokens_per_generation < 1:
            raise ConfigError(
                f"max_tokens_per_generation must be >= 1 or None (one batch), got {max_tokens_per_generation!r}"
            )
        self.max_tokens_per_generation = max_tokens_per_generation
        config = self.base_model.config
        if getattr(config, "image_token_id", processor.image_token_id) != processor.image_token_id:
            raise ConfigError(
                f"the model's image_token_id ({config.image_token_id}) differs from the tokenizer's <|image_pad|> id "
                f"({processor.image_token_id}); load the model and the processor from the same checkpoint."
            )
        self.stop_token_ids = self._stop_token_ids()
        self.suppress_token_ids = self._suppress_token_ids()
        self.training_model = model
        """The module :meth:`forward` calls: ``model`` itself, or its distributed wrapper (set by the trainer)."""
        self.generator: Generator = generator or HFGenerator(
            lambda: self.model, processor.pad_token_id, processor.mm_token_type_ids
        )
        """The sampling engine of :meth:`generate` (:class:`~mapo_agent.policy.generation.HFGenerator` by default)."""

    # -------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        attn_implementation: str = "sdpa",
        gradient_checkpointing: bool = False,
        lora_rank: int = 0,
        lora_alpha: float | None = None,
        lora_dropout: float = 0.0,
        lora_target_modules: str | list[str] | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> HFPolicy:
        """Load a policy from a checkpoint folder or hub id (``None``: the bundled tiny agent).

        Args:
            name_or_path: Folder or hub id of a Qwen2-VL / Qwen2.5-VL checkpoint; ``None`` = bundled.
            device: Where the model lives; default CUDA when available, else CPU.
            dtype: Weights dtype; default bf16 on GPU, fp32 on CPU.
            attn_implementation: ``"sdpa"``, ``"eager"`` or ``"flash_attention_2"``.
            gradient_checkpointing: Recompute activations in the backward pass (saves memory).
            lora_rank: > 0 wraps the model with peft LoRA adapters of this rank (only they train).
            lora_alpha: LoRA scaling numerator (default ``2 * lora_rank``).
            lora_dropout: Dropout on the LoRA path.
            lora_target_modules: Module names or a regex; default :data:`DEFAULT_LORA_TARGETS`.
            min_pixels: Override the image processor's minimum pixels per image.
            max_pixels: Override the image processor's maximum pixels per image.
            chat_template: Override the checkpoint's chat template.
            **kwargs: ``temperature``, ``top_p``, ``max_new_tokens``, ``max_tokens_per_generation``,
                ``generator`` go to the constructor; the rest
                (``revision``, ``local_files_only``, ``cache_dir``, ...) to ``from_pretrained``.
        """
        from transformers import AutoConfig, AutoModelForImageTextToText

        from mapo_agent.policy.tiny import bundled_model_path

        sampling_keys = ("temperature", "top_p", "max_new_tokens", "max_tokens_per_generation", "generator")
        sampling = {k: kwargs.pop(k) for k in sampling_keys if k in kwargs}
        path = str(bundled_model_path() if name_or_path is None else name_or_path)
        config = AutoConfig.from_pretrained(path, **kwargs)
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"HFPolicy supports model types {SUPPORTED_MODEL_TYPES}, got {config.model_type!r} from {path}; "
                "use a Qwen2-VL or Qwen2.5-VL checkpoint (or leave name_or_path=None for the bundled agent)."
            )
        device = resolve_device(device)
        processor = QwenVLProcessor.from_pretrained(
            path, chat_template=chat_template, min_pixels=min_pixels, max_pixels=max_pixels, **kwargs
        )
        model = AutoModelForImageTextToText.from_pretrained(
            path, dtype=resolve_dtype(dtype, device), attn_implementation=attn_implementation, **kwargs
        ).to(device)
        if lora_rank > 0:
            model = _add_lora(model, lora_rank, lora_alpha, lora_dropout, lora_target_modules)
        policy = cls(model, processor, **sampling)
        if gradient_checkpointing:
            policy.enable_gradient_checkpointing()
        return policy

    def save_pretrained(self, directory: str | Path, merge_lora: bool = False) -> None:
        """Save the model and the processor files to ``directory``.

        Args:
            directory: Target folder.
            merge_lora: With LoRA, merge the adapters into the base weights first (in place: the policy
                is a plain model afterwards) so the folder loads with ``from_pretrained`` like any
                checkpoint; otherwise only the adapters are saved (peft's format).
        """
        if merge_lora and hasattr(self.model, "merge_and_unload"):
            self.model = self.training_model = self.model.merge_and_unload()
        self.model.save_pretrained(str(directory))
        self.processor.save_pretrained(directory)

    def frozen_copy(self) -> HFPolicy:
        """A copy of the current weights that never trains (a reference model for a KL term)."""
        model = copy.deepcopy(self.base_model).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return HFPolicy(model, self.processor, temperature=self.temperature, top_p=self.top_p)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute activations during backward (non-reentrant, works with LoRA)."""
        model, kwargs = self.base_model, {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    # ------------------------------------------------------------------------------------ properties
    @property
    def base_model(self) -> Any:
        """The transformers model under any peft wrapper."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        return next(p for p in self.model.parameters() if p.is_floating_point()).dtype

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """All parameters of the model (pass :meth:`trainable_parameters` to an optimizer)."""
        return self.model.parameters()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters with ``requires_grad`` (the LoRA adapters only, when LoRA is on)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> HFPolicy:
        """Put the model in training (or eval) mode."""
        self.model.train(mode)
        return self

    def eval(self) -> HFPolicy:
        """Put the model in eval mode."""
        return self.train(False)

    # ------------------------------------------------------------------------------------- rollouts
    def start_episode(self, obs: dict[str, Any]) -> ep.EpisodeState:
        """Token state of a new episode from the environment's first observation."""
        return ep.start_episode(self.processor, obs)

    def observe(self, state: ep.EpisodeState, obs: dict[str, Any]) -> None:
        """Append the environment's reply (the messages and images after the last generated turn) as tokens."""
        ep.append_observation(self.processor, state, obs)

    def generate(
        self,
        states: Sequence[ep.EpisodeState],
        *,
        do_sample: bool = True,
        temperature: float | None = None,
        top_p: float | None = None,
        max_new_tokens: int | None = None,
    ) -> list[str]:
        """Generate one assistant turn for each episode, batched (left padding), and append it to its state.

        Generation stops at ``<|im_end|>`` / EOS or after ``max_new_tokens``. With
        :attr:`max_tokens_per_generation` set, the episodes run in consecutive chunks of bounded size
        (:func:`~mapo_agent.memory.pack_by_tokens`). The sampled ids are kept
        exactly; their log-probs are ``log_softmax(raw_logits / temperature)`` at the sampled tokens.
        Image/video placeholder ids and ids beyond the tokenizer are never sampled.

        Args:
            states: Live episodes (each waiting for a model turn).
            do_sample: Sample (True) or greedy decoding (False).
            temperature: Override :attr:`temperature` (then :meth:`forward` log-probs differ from these).
            top_p: Override :attr:`top_p`.
            max_new_tokens: Override :attr:`max_new_tokens`.

        Returns:
            The text of each new turn (special tokens kept, the stop token dropped), for ``env.step``.
        """
        if not states:
            return []
        temperature = self.temperature if temperature is None else float(temperature)
        max_new_tokens = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        for i, s in enumerate(states):
            if s.awaiting_observation:
                raise ConfigError(
                    f"episode {i} already has a generated turn without an environment reply; "
                    "call policy.observe(state, obs) after env.step() before generating again."
                )
        params = SamplingParams(
            do_sample=do_sample,
            temperature=temperature,
            top_p=self.top_p if top_p is None else float(top_p),
            max_new_tokens=max_new_tokens,
            stop_token_ids=tuple(self.stop_token_ids),
            suppress_token_ids=tuple(self.suppress_token_ids),
        )
        requests = [
            GenerationRequest(s.input_ids, tuple(s.images), tuple(s.pixel_values), tuple(s.image_grid_thw))
            for s in states
        ]
        results: dict[int, GenerationResult] = {}
        # bounded memory: one engine call per chunk of at most max_tokens_per_generation tokens
        for chunk in pack_by_tokens([s.num_tokens + max_new_tokens for s in states], self.max_tokens_per_generation):
            results.update(zip(chunk, self.generator.generate([requests[i] for i in chunk], params)))
        return [self._record_turn(states[i], results[i]) for i in range(len(states))]

    def force_turn(self, state: ep.EpisodeState, text: str) -> None:
        """Append ``text`` as the next assistant turn, as if the model had generated it (teacher forcing).

        The text is tokenised and closed with the turn-end token; it gets loss mask 1 (an SFT target) and
        old log-prob 0. Used to turn the environment oracle's trajectories into training data.
        """
        ids = self.processor.encode_text(text) + [self.processor.turn_end_token_id]
        ep.append_turn(state, ids, [0.0] * len(ids), text, stopped=True)

    def generate_text(self, observations: Sequence[dict[str, Any]], **generate_kwargs: Any) -> list[str]:
        """One turn of text for each observation (stateless convenience for evaluation)."""
        return self.generate([self.start_episode(obs) for obs in observations], **generate_kwargs)

    def to_trajectory(
        self, state: ep.EpisodeState, *, group_id: int = 0, sample_index: int = 0, **fields: Any
    ) -> Trajectory:
        """The episode as a :class:`Trajectory`; ``fields`` fill the rest (``reward``, ``correct``, ...)."""
        fields.setdefault("num_turns", len(state.turn_spans))
        return Trajectory(
            input_ids=list(state.input_ids),
            loss_mask=list(state.loss_mask),
            old_logprobs=list(state.old_logprobs),
            images=list(state.images),
            group_id=group_id,
            sample_index=sample_index,
            turn_spans=list(state.turn_spans),
            **fields,
        )

    # ------------------------------------------------------------------------------------- training
    def collate(self, trajectories: list[Trajectory]) -> TrainBatch:
        """Right-pad trajectories into a :class:`TrainBatch` (CPU tensors; :meth:`forward` moves them).

        Tokens, masks, old log-probs and the encoded images only: advantages stay 0 (the algorithm
        side sets them, :meth:`mapo_agent.algorithms.base.Algorithm.training_batch`).

        Args:
            trajectories: Episodes in row order.

        Raises:
            ConfigError: No trajectory, a trajectory whose per-token lists differ in length, or whose
                image tokens do not match its images under this processor.
        """
        if not trajectories:
            raise ConfigError("collate() needs at least one trajectory, got an empty list.")
        for i, t in enumerate(trajectories):
            if not len(t.input_ids) == len(t.loss_mask) == len(t.old_logprobs):
                raise ConfigError(
                    f"trajectory {i}: input_ids ({len(t.input_ids)}), loss_mask ({len(t.loss_mask)}) and "
                    f"old_logprobs ({len(t.old_logprobs)}) must have the same length."
                )
        input_ids, attention_mask = pad_sequences([t.input_ids for t in trajectories], self.processor.pad_token_id)
        loss_mask = _pad_floats([t.loss_mask for t in trajectories], input_ids.shape[1])
        old_logprobs = _pad_floats([t.old_logprobs for t in trajectories], input_ids.shape[1])
        return TrainBatch(
            input_ids=input_ids,
            attention_mask=attention_mask,
            loss_mask=loss_mask,
            old_logprobs=old_logprobs,
            group_ids=torch.tensor([t.group_id for t in trajectories], dtype=torch.long),
            model_inputs=self._vision_inputs(trajectories, input_ids),
            trajectories=list(trajectories),
        )

    def forward(self, batch: TrainBatch, request: ForwardRequest | None = None) -> ForwardOutput:
        """Teacher-forced pass with gradients, honouring every field of :class:`~mapo_agent.types.ForwardRequest`.

        ``request.images`` are encoded by this policy's processor and must give the same patch grids
        as the batch's own images (same sizes), so every image keeps its tokens; ``request.patch_mask``
        then masks patches. ``request.attentions`` runs the language model's attention eagerly for
        this call (SDPA kernels do not return probabilities); the vision tower keeps its kernel.
        ``request.loss_positions_only`` applies the LM head only where the next token is on the loss
        mask (log-probs and entropy are 0 elsewhere): the same loss for every algorithm that masks it,
        with a fraction of the head's cost (the head is ~15% of a tiny model's step).

        Raises:
            ConfigError: ``request.images`` does not hold one image per image of the batch, or an image
                whose size changes its patch grid.
        """
        request = request or PLAIN_FORWARD
        batch = batch.to(self.device)
        inputs = dict(batch.model_inputs)
        if request.images is not None:
            inputs.update(self._replacement_images(request.images, inputs.get("image_grid_thw")))
        if "pixel_values" in inputs:
            pixel_values = inputs["pixel_values"]
            if request.patch_mask is not None:
                pixel_values = mask_image_patches(
                    pixel_values, inputs["image_grid_thw"], request.patch_mask, self._black_pixel()
                )
            inputs["pixel_values"] = pixel_values.to(self.dtype)
        only_loss = request.loss_positions_only and _logits_index_supported()
        keep = _predicting_positions(batch.loss_mask) if only_loss else None
        if keep is not None:
            inputs["logits_to_keep"] = keep
        if request.log_distributions and bool(batch.loss_mask[:, 0].any()):
            raise ConfigError("log_distributions needs no loss token at position 0 (nothing predicts it).")
        with self._eager_text_attention(request.attentions):
            out = self.training_model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                use_cache=False,
                output_hidden_states=request.hidden_states or request.layer_hidden_states,
                output_attentions=request.attentions,
                **inputs,
            )
        if keep is None:
            logprobs, entropy = token_logprobs_and_entropy(
                out.logits, batch.input_ids, batch.attention_mask, self.temperature
            )
        else:
            logprobs, entropy = _scatter_logprobs(out.logits, batch.input_ids, keep, self.temperature)
        distributions = None
        if request.log_distributions:  # the rows of the positions that predict a loss token, row-major
            logits = out.logits if keep is not None else out.logits[_predicting_positions(batch.loss_mask)]
            distributions = torch.log_softmax(logits.float() / self.temperature, dim=-1)
        return ForwardOutput(
            logprobs=logprobs,
            entropy=entropy,
            hidden_states=out.hidden_states[-1] if request.hidden_states else None,
            image_token_mask=batch.input_ids == self.processor.image_token_id,
            layer_hidden_states=tuple(out.hidden_states) if request.layer_hidden_states else None,
            attentions=tuple(out.attentions) if request.attentions else None,
            log_distributions=distributions,
        )

    # ------------------------------------------------------------------------------------ grounding
    def image_tokens(self, batch: TrainBatch) -> list[list[ImageTokens]]:
        """Per row of ``batch``, per image of its trajectory: the image's token positions and grid.

        Merged image tokens come in raster order over the ``(h / merge, w / merge)`` patch grid of
        ``image_grid_thw`` (Qwen2-VL's layout), one image after the other in placeholder order.
        """
        grids = batch.model_inputs.get("image_grid_thw")
        merge = self.processor.merge_size
        out: list[list[ImageTokens]] = []
        index = 0
        for row, trajectory in enumerate(batch.trajectories):
            positions = (batch.input_ids[row] == self.processor.image_token_id).nonzero().flatten().cpu()
            images, offset = [], 0
            for _ in trajectory.images:
                t, h, w = (int(v) for v in grids[index])
                rows, cols = t * h // merge, w // merge
                images.append(ImageTokens(positions[offset : offset + rows * cols], (rows, cols)))
                offset += rows * cols
                index += 1
            out.append(images)
        return out

    def lm_head_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The language-model head applied to ``hidden`` (..., D) -> (..., V), without the final norm.

        With tied embeddings (the bundled agent) this scores ``hidden`` against every token's input
        embedding: grounding losses use it to make image tokens look like the words that name them.
        """
        return self.base_model.get_output_embeddings()(hidden)

    def encode_text(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return self.processor.encode_text(text)

    # ------------------------------------------------------------------------------------ internals
    def _replacement_images(
        self, images: tuple[np.ndarray, ...], grids: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """``pixel_values`` and ``image_grid_thw`` of ``images``, checked against the batch's own grids."""
        expected = 0 if grids is None else int(grids.shape[0])
        if len(images) != expected:
            raise ConfigError(
                f"ForwardRequest.images holds {len(images)} image(s) but the batch has {expected}; give one "
                "replacement per image, in placeholder order (row by row)."
            )
        if not images:
            return {}
        encoded = self.processor.encode_images(list(images))
        grid = encoded.image_grid_thw.to(grids.device)
        if not torch.equal(grid, grids):
            bad = int((grid != grids).any(dim=-1).nonzero()[0])
            raise ConfigError(
                f"ForwardRequest.images[{bad}] encodes to a patch grid {grid[bad].tolist()} but the batch's image "
                f"has {grids[bad].tolist()}; a replacement must keep the original's size (corrupt in place, or "
                "resize back to it)."
            )
        return {"pixel_values": encoded.pixel_values.to(grids.device), "image_grid_thw": grids}

    def _black_pixel(self) -> torch.Tensor:
        """(C,) the value a black pixel (0) takes after the image processor's rescale and normalisation."""
        image_processor = self.processor.image_processor
        mean = torch.tensor(image_processor.image_mean, dtype=torch.float32)
        std = torch.tensor(image_processor.image_std, dtype=torch.float32)
        return -mean / std if getattr(image_processor, "do_normalize", True) else torch.zeros_like(mean)

    @contextlib.contextmanager
    def _eager_text_attention(self, enabled: bool) -> Iterator[None]:
        """Run the language model's attention with the eager kernel inside the block (when ``enabled``).

        With gradient checkpointing the eager kernel stays on after the block: the backward pass
        recomputes the layers with the kernel in effect *then*, and must find the forward's.
        """
        config = getattr(self.base_model.config, "text_config", self.base_model.config)
        previous = getattr(config, "_attn_implementation", "eager")
        if not enabled or previous == "eager":
            yield
            return
        self.base_model.set_attn_implementation({"text_config": "eager"})
        # The vision tower (still SDPA) sees output_attentions too and would warn that it cannot return them.
        sdpa_logger = logging.getLogger("transformers.integrations.sdpa_attention")
        level = sdpa_logger.level
        sdpa_logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            sdpa_logger.setLevel(level)
            if not self._checkpointing():
                self.base_model.set_attn_implementation({"text_config": previous})

    def _checkpointing(self) -> bool:
        """Whether activation (gradient) checkpointing is on (transformers >= 5.2x renamed the flag)."""
        model = self.base_model
        if hasattr(type(model), "is_activation_checkpointing"):
            return bool(model.is_activation_checkpointing)
        return bool(getattr(model, "is_gradient_checkpointing", False))

    def _stop_token_ids(self) -> list[int]:
        ids = [self.processor.turn_end_token_id, self.processor.tokenizer.eos_token_id]
        eos = getattr(getattr(self.base_model, "generation_config", None), "eos_token_id", None)
        ids += eos if isinstance(eos, list) else [eos]
        return list(dict.fromkeys(int(i) for i in ids if i is not None))

    def _suppress_token_ids(self) -> list[int]:
        vocab_size = self.base_model.get_input_embeddings().weight.shape[0]
        vision = [self.processor.image_token_id, self.processor.video_token_id]
        vision += [self.processor.tokenizer.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>")]
        return sorted(set(vision) | set(range(len(self.processor.tokenizer), vocab_size)))

    def _record_turn(self, state: ep.EpisodeState, result: GenerationResult) -> str:
        ids = list(result.token_ids)
        stops = [i for i, t in enumerate(ids) if t in self.stop_token_ids]
        stopped = bool(stops)
        length = stops[0] + 1 if stopped else len(ids)
        text = self.processor.decode(ids[: length - 1] if stopped else ids[:length])
        ep.append_turn(state, ids[:length], [float(x) for x in result.logprobs[:length]], text, stopped)
        return text

    def _vision_inputs(self, trajectories: list[Trajectory], input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs = {"mm_token_type_ids": self.processor.mm_token_type_ids(input_ids)}
        images: list[np.ndarray] = [img for t in trajectories for img in t.images]
        if not images:
            return inputs
        encoded = self.processor.encode_images(images)
        counts = iter(encoded.num_tokens)
        for row, t in enumerate(trajectories):
            expected = sum(next(counts) for _ in t.images)
            found = int((input_ids[row] == self.processor.image_token_id).sum())
            if expected != found:
                raise ConfigError(
                    f"trajectory {row} has {found} image tokens but its {len(t.images)} image(s) need {expected}; "
                    "trajectories must come from this policy's processor (same min/max_pixels)."
                )
        inputs.update(pixel_values=encoded.pixel_values, image_grid_thw=encoded.image_grid_thw)
        return inputs


@functools.cache
def _logits_index_supported() -> bool:
    """Whether this transformers' Qwen2-VL forward takes a 1-D tensor of positions as ``logits_to_keep``.

    Releases before 5.20 fail on it (an ``IndexError`` in the model's forward); there the hint is
    ignored and every position's logits are computed (same values, more memory).
    """
    import transformers

    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    return (major, minor) >= (5, 20)


def _predicting_positions(loss_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True at position t when token t + 1 is on the loss mask (the logits the loss reads)."""
    keep = torch.zeros(loss_mask.shape, dtype=torch.bool, device=loss_mask.device)
    keep[:, :-1] = loss_mask[:, 1:] > 0
    return keep


def _scatter_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, keep: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token log-probs and entropies (B, T) from logits (N, V) at the ``keep`` positions; 0 elsewhere."""
    logprobs = torch.log_softmax(logits.float() / temperature, dim=-1)  # (N, V)
    targets = torch.zeros_like(keep)
    targets[:, 1:] = keep[:, :-1]  # the tokens those positions predict
    token_logprobs = logprobs.gather(-1, input_ids[targets].unsqueeze(-1)).squeeze(-1)  # (N,)
    entropy = -(logprobs.exp() * logprobs).sum(-1)  # (N,)
    out_lp = torch.zeros(keep.shape, dtype=torch.float32, device=logits.device)
    out_ent = torch.zeros(keep.shape, dtype=torch.float32, device=logits.device)
    return out_lp.masked_scatter(targets, token_logprobs), out_ent.masked_scatter(targets, entropy)


def _pad_floats(rows: list[list[float]] | list[list[int]], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.float32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.float32)
    return out


def _add_lora(model: Any, rank: int, alpha: float | None, dropout: float, targets: str | list[str] | None) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        raise DependencyNotInstalled('LoRA needs peft: pip install "mapo-gym[peft]"') from e
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else 2 * rank,
        lora_dropout=dropout,
        target_modules=targets or DEFAULT_LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft reads the deprecated `is_gradient_checkpointing` property
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)
