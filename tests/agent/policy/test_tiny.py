"""The bundled tiny agent: loads offline, follows the recipe, its tokenizer fits env texts, rebuilds identically."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from mapo_agent.policy import bundled_model_path
from mapo_env.actions import format_tool_call, parse_action
from tools.tiny_agent.build import PHRASE_TOKENS, TAG_TOKENS, build_tiny_agent
from tools.tiny_agent.corpus import make_corpus


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(bundled_model_path(), local_files_only=True)


def test_bundled_model_loads_offline(monkeypatch):
    from transformers import AutoModelForImageTextToText

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = AutoModelForImageTextToText.from_pretrained(bundled_model_path(), local_files_only=True)
    config = model.config
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        128,
        3,
        4,
        2,
    )
    assert sum(text.rope_parameters["mrope_section"]) * 2 == text.hidden_size // text.num_attention_heads
    assert (vision.hidden_size, vision.depth, vision.patch_size, vision.spatial_merge_size) == (96, 2, 14, 2)
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # tied
    num_params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 < num_params < 1_600_000
    size = sum(f.stat().st_size for f in bundled_model_path().iterdir())
    assert size < 6 * 2**20


def test_special_tokens_and_tags_are_single_tokens(tokenizer):
    specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]
    for token in specials + list(TAG_TOKENS):
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == token, token
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert 1000 <= len(tokenizer) <= 2048


def test_every_number_up_to_1000_is_one_token(tokenizer):
    ids = [tokenizer(str(n), add_special_tokens=False)["input_ids"] for n in range(1001)]
    assert all(len(i) == 1 for i in ids)
    assert len({i[0] for i in ids}) == 1001
    box = tokenizer("[30, 58, 1000, 999]", add_special_tokens=False)["input_ids"]
    assert [tokenizer.decode([i]) for i in box if tokenizer.decode([i]).strip(" ,[]")] == ["30", "58", "1000", "999"]


def test_a_zoom_call_is_twelve_tokens_with_the_label_next_to_the_numbers(tokenizer):
    call = format_tool_call([58, 86, 82, 110], label="yellow tile")
    ids = tokenizer(call, add_special_tokens=False)["input_ids"]
    prefix, bbox, sep, suffix = PHRASE_TOKENS
    expected = [prefix, "yellow", " tile", bbox, "58", sep, "86", sep, "82", sep, "110", suffix]
    assert [tokenizer.decode([i]) for i in ids] == expected
    assert tokenizer.decode(ids) == call and parse_action(call).tool_call.bbox == (58, 86, 82, 110)


@pytest.mark.parametrize(
    "text",
    [
        *make_corpus(num_episodes=20, seed=123),
        'Zoom héllo wörld — 中文 🙂 tab\there\r\n"quotes" \\back\\slash \x00 nul',
        "<tool_call>{broken json",
        "",
    ],
)
def test_tokenizer_round_trips_any_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_env_texts_compress(tokenizer):
    # The BPE was trained on env-like text: frequent task words take few tokens (~3+ chars per token).
    corpus = make_corpus(num_episodes=50, seed=7)[3:]  # without the system prompts
    chars = sum(len(t) for t in corpus)
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in corpus)
    assert chars / tokens > 3.0


def test_rebuild_matches_bundled_assets(tmp_path):
    out = build_tiny_agent(tmp_path / "tiny", seed=0)
    bundled = bundled_model_path()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "preprocessor_config.json"):
        assert (out / name).read_bytes() == (bundled / name).read_bytes(), name
    config, config_bundled = (json.loads((d / "config.json").read_text()) for d in (out, bundled))
    config.pop("transformers_version", None), config_bundled.pop("transformers_version", None)
    assert config == config_bundled
    new, old = load_file(str(out / "model.safetensors")), load_file(str(bundled / "model.safetensors"))
    assert new.keys() == old.keys()
    assert all(torch.equal(new[k], old[k]) for k in new)
