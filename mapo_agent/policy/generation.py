"""Generators: the engine that samples the next assistant turn, token in, token out.

:class:`~mapo_agent.policy.HFPolicy` keeps the episodes' token state and the training forward; the
sampling itself goes through a :class:`Generator`, so another engine (vLLM, SGLang, a server) can be
swapped in without touching the rollout worker or the trainer::

    policy = HFPolicy.from_pretrained(None, generator=MyGenerator(...))

A generator receives, per live episode, the exact token ids so far and the episode's images (raw and
as the processor's patches), and returns the sampled token ids with their log-probs under
``log_softmax(raw_logits / temperature)`` — the same definition the training forward uses, so the
PPO ratio starts at 1. It may stop early at one of ``stop_token_ids`` (kept in the output); it must
never sample ``suppress_token_ids``. An engine that keeps its own copy of the weights (vLLM) is told
about new weights through :meth:`Generator.load_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from mapo_agent.policy.ops import sampled_logprobs
from mapo_agent.policy.processor import pad_sequences


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one turn (the same meaning in every engine).

    Attributes:
        do_sample: Sample (True) or greedy decoding (False).
        temperature: Softmax temperature of sampling and of the returned log-probs (> 0).
        top_p: Nucleus threshold (1.0 = off); log-probs still come from the full distribution.
        max_new_tokens: Token cap of the turn.
        stop_token_ids: Tokens that end the turn (kept as its last token).
        suppress_token_ids: Tokens never sampled (image placeholders, ids beyond the tokenizer).
    """

    do_sample: bool
    temperature: float
    top_p: float
    max_new_tokens: int
    stop_token_ids: tuple[int, ...]
    suppress_token_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    """One live episode, as the engine sees it.

    Attributes:
        input_ids: Every token so far (prompt, turns, replies), image placeholders expanded.
        images: The episode's images in placeholder order (uint8 (H, W, 3)).
        pixel_values: The processor's patch rows of each image (for engines that take them).
        image_grid_thw: The patch grid of each image.
    """

    input_ids: Sequence[int]
    images: Sequence[np.ndarray] = ()
    pixel_values: Sequence[torch.Tensor] = ()
    image_grid_thw: Sequence[torch.Tensor] = ()


@dataclass(frozen=True)
class GenerationResult:
    """The sampled turn: token ids (ending with the stop token when there was one) and their log-probs."""

    token_ids: list[int]
    logprobs: list[float]


class Generator(Protocol):
    """A batched sampling engine (see the module docstring)."""

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[GenerationResult]:
        """One result per request, in order."""
        ...

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Take new weights (name, tensor) after an optimizer step; a no-op for engines sharing the model."""
        ...


class HFGenerator:
    """Transformers' ``model.generate``, left-padded batches, log-probs from the raw logits.

    Args:
        model: A callable returning the current model (the policy may replace its model, e.g. when
            LoRA adapters are merged), so the generator always samples from the weights being trained.
        pad_token_id: Padding id of the tokenizer.
        mm_token_type_ids: The processor's ``input_ids -> mm_token_type_ids`` (Qwen2.5-VL's rope needs it).
    """

    def __init__(
        self,
        model: Callable[[], Any],
        pad_token_id: int,
        mm_token_type_ids: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self._model = model
        self.pad_token_id = pad_token_id
        self.mm_token_type_ids = mm_token_type_ids

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[GenerationResult]:
        """Sample one turn for every request in one ``generate`` call."""
        if not requests:
            return []
        model = self._model()
        inputs = self._inputs(requests, model)
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                out = model.generate(**inputs, generation_config=self._config(params))
        finally:
            model.train(was_training)
        new_tokens = out.sequences[:, inputs["input_ids"].shape[1] :]  # (B, N)
        steps = [
            sampled_logprobs(logits[:, None], new_tokens[:, i : i + 1], params.temperature)
            for i, logits in enumerate(out.logits)
        ]
        logprobs = torch.cat(steps, dim=1).cpu()  # (B, N)
        results = []
        for row, lp in zip(new_tokens.cpu().tolist(), logprobs.tolist()):
            stops = [i for i, t in enumerate(row) if t in params.stop_token_ids]
            length = stops[0] + 1 if stops else len(row)  # padding after the stop is dropped
            results.append(GenerationResult(row[:length], lp[:length]))
        return results

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Nothing to do: this engine samples from the trained model itself."""

    def _inputs(self, requests: Sequence[GenerationRequest], model: Any) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_sequences([list(r.input_ids) for r in requests], self.pad_token_id, "left")
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        inputs["mm_token_type_ids"] = self.mm_token_type_ids(input_ids)
        grids = [g for r in requests for g in r.image_grid_thw]
        parameter = next(model.parameters())
        if grids:
            dtype = next(p for p in model.parameters() if p.is_floating_point()).dtype
            inputs["pixel_values"] = torch.cat([p for r in requests for p in r.pixel_values]).to(dtype)
            inputs["image_grid_thw"] = torch.stack(grids)
        return {k: v.to(parameter.device) for k, v in inputs.items()}

    def _config(self, params: SamplingParams) -> Any:
        from transformers import GenerationConfig

        sampling = {"temperature": params.temperature, "top_p": params.top_p, "top_k": 0} if params.do_sample else {}
        return GenerationConfig(
            do_sample=params.do_sample,
            **(sampling or {"temperature": 1.0, "top_p": 1.0, "top_k": 50}),  # greedy: the no-op defaults
            max_new_tokens=params.max_new_tokens,
            repetition_penalty=1.0,
            num_beams=1,
            eos_token_id=list(params.stop_token_ids),
            pad_token_id=self.pad_token_id,
            bos_token_id=None,
            suppress_tokens=list(params.suppress_token_ids),
            output_logits=True,
            return_dict_in_generate=True,
        )
