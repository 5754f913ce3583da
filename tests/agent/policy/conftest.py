"""Fixtures of the policy tests: the bundled tiny policy, a scripted fake environment, a real-style checkpoint."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mapo_agent.policy import HFPolicy, bundled_model_path

SYSTEM = (
    "You answer questions about an image. Small details may only be visible if you zoom in.\n"
    'To zoom, write <tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "...", "bbox_2d": '
    "[x1, y1, x2, y2]}}</tool_call>. Finish with <answer>LETTER</answer>."
)


class FakeZoomEnv:
    """A scripted environment that follows the MAPO observation contract.

    Each reply of ``script`` says what ``step`` answers: ``"crop"`` (a new image inside a tool response),
    ``"error"`` (a text-only tool message) or ``"end"`` (the episode terminates, no new message).
    """

    def __init__(self, size: tuple[int, int], question: str, script: list[str], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.size, self.question, self.script = size, question, list(script)

    def _image(self, h: int, w: int) -> np.ndarray:
        return self.rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    def reset(self) -> dict[str, Any]:
        self.turn = 0
        self.images = [self._image(*self.size)]
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.question}]},
        ]
        return self.obs()

    def obs(self) -> dict[str, Any]:
        return {"images": tuple(img.copy() for img in self.images), "messages": copy.deepcopy(self.messages)}

    def step(self, text: str) -> tuple[dict[str, Any], bool]:
        self.messages.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
        reply = self.script[self.turn]
        self.turn += 1
        if reply == "crop":
            self.images.append(self._image(56, 28 * (1 + self.turn)))
            content = [
                {"type": "text", "text": "<tool_response>"},
                {"type": "image"},
                {"type": "text", "text": f"</tool_response>\nImage {len(self.images) - 1}. 4 turns left."},
            ]
            self.messages.append({"role": "user", "content": content})
        elif reply == "error":
            text = "<tool_response>Error: the tool call is not valid JSON.</tool_response>\n3 turns left."
            self.messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
        return self.obs(), reply == "end"


def run_episodes(policy: HFPolicy, envs: list[FakeZoomEnv], **generate_kwargs: Any) -> list[Any]:
    """Play every env to the end of its script with batched generation; returns the episode states."""
    states = [policy.start_episode(env.reset()) for env in envs]
    live = list(range(len(envs)))
    while live:
        texts = policy.generate([states[i] for i in live], **generate_kwargs)
        still = []
        for i, text in zip(live, texts):
            obs, done = envs[i].step(text)
            if not done:
                policy.observe(states[i], obs)
                still.append(i)
        live = still
    return states


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run these tests on one torch thread: on a shared 2-core machine, 2 OpenMP threads competing with other
    processes made the tiny model 10-50x slower (spin-waiting on descheduled threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_policy() -> HFPolicy:
    """The bundled tiny agent on CPU (fp32), short turns."""
    return HFPolicy.from_pretrained(device="cpu", max_new_tokens=12)


def write_real_style_checkpoint(directory: Path) -> Path:
    """A tiny *random* model saved the way a Qwen2.5-VL-3B-Instruct hub folder is laid out.

    Same config class and flat hub ``config.json`` (``rope_scaling`` mrope, top-level text fields, legacy
    weight names ``model.layers.*`` / ``visual.*``), vocabulary padded beyond the tokenizer, tokenizer
    files with the chat template in ``tokenizer_config.json``, processor ``chat_template.json``,
    ``preprocessor_config.json`` with ``min_pixels``/``max_pixels`` and a sampling
    ``generation_config.json`` (top_k 1, repetition penalty) as shipped with the real checkpoint.
    """
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    template = (bundled_model_path() / "chat_template.jinja").read_text()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|vision_start|>")}
    flat = {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        "vision_token_id": tokenizer.convert_tokens_to_ids("<|vision_pad|>"),
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 128000,
        "max_window_layers": 70,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,
            "hidden_act": "silu",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "in_chans": 3,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },  # fmt: skip
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "vocab_size": 64 * (len(tokenizer) // 64 + 2),  # padded beyond the tokenizer, as the real one is
    }
    torch.manual_seed(1)
    model = Qwen2_5_VLForConditionalGeneration._from_config(Qwen2_5_VLConfig(**copy.deepcopy(flat)))
    model.save_pretrained(str(directory))
    weights = load_file(str(directory / "model.safetensors"))
    legacy = {
        k.replace("model.language_model.", "model.").replace("model.visual.", "visual."): v for k, v in weights.items()
    }
    (directory / "model.safetensors").unlink()
    save_file(
        {k: v.to(torch.bfloat16) for k, v in legacy.items()}, str(directory / "model.safetensors"), {"format": "pt"}
    )
    (directory / "config.json").write_text(json.dumps(flat, indent=2))
    generation = {"bos_token_id": ids["<|endoftext|>"], "pad_token_id": ids["<|endoftext|>"], "do_sample": True}
    generation.update(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], repetition_penalty=1.05, temperature=0.1)
    generation.update(top_p=0.001, top_k=1)
    (directory / "generation_config.json").write_text(json.dumps(generation))

    tokenizer.save_pretrained(str(directory))
    (directory / "chat_template.jinja").unlink(missing_ok=True)
    tok_config = json.loads((directory / "tokenizer_config.json").read_text())
    tok_config.update(chat_template=template, errors="replace", split_special_tokens=False, model_max_length=131072)
    (directory / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    (directory / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    preprocessor = {
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
    }  # fmt: skip
    (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return directory


@pytest.fixture(scope="module")
def two_episodes(tiny_policy):
    """(envs, episode states): two multi-turn episodes of different lengths with crops, sampled at temperature 1."""
    torch.manual_seed(0)
    envs = [
        FakeZoomEnv((112, 112), "What shape is the red object?", ["crop", "crop", "end"], seed=1),
        FakeZoomEnv((56, 84), "What colour is the cup?", ["error", "crop", "end"], seed=2),
    ]
    return envs, run_episodes(tiny_policy, envs)


@pytest.fixture(scope="session")
def real_style_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of :func:`write_real_style_checkpoint`."""
    return write_real_style_checkpoint(tmp_path_factory.mktemp("qwen25vl_3b_style"))
