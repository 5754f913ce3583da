"""The bundled tiny agent: a 1.4 M-parameter Qwen2.5-VL built offline, and its byte-level BPE tokenizer.

Run ``python tools/build_tiny_agent.py --out DIR`` to rebuild it (a few seconds on a CPU; the files in
``mapo_agent/assets/tiny_qwen25vl/`` were made this way with the default seed). Everything is a pure
function of the seed, so a rebuild with the same package versions gives the same bytes.

- Model: stock ``Qwen2_5_VLForConditionalGeneration`` with a tiny config (text hidden 128, 3 layers,
  4 heads / 2 KV heads, head_dim 32, ``mrope_section`` [4, 6, 6], tied embeddings; vision hidden 96,
  depth 2, patch 14, merge 2, temporal patch 2, window 112). The weights are the *untrained* random
  initialisation; training happens with the trainer.
- Tokenizer: a ``Qwen2Tokenizer`` (Qwen's pre-tokenizer regex and byte-level alphabet, so any text
  encodes) whose BPE merges are trained in-process on :func:`tools.tiny_agent.corpus.make_corpus`.
  It holds every Qwen special token, the action tags (``<think>``, ``<tool_call>``, ``<answer>``,
  ``<description>``, ``<tool_response>`` and their closers) as single tokens, every integer
  0..1000 as a single token (box coordinates), and the fixed boilerplate of the zoom call as four
  single tokens (:data:`PHRASE_TOKENS`): a call is 12 tokens, with the label right before the numbers.
- Processor: :class:`transformers.Qwen2VLImageProcessorPil` settings (``min_pixels`` 56*56,
  ``max_pixels`` 448*448, so an image takes 4..256 tokens) and the Qwen-VL chat template.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from mapo_agent.policy.tiny import BUNDLED_DIR

logger = logging.getLogger(__name__)


SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip
"""Qwen2.5-VL's special tokens, in Qwen's id order."""
TAG_TOKENS = (
    "<tool_call>", "</tool_call>", "<think>", "</think>", "<answer>", "</answer>", "<description>", "</description>",
    "<tool_response>", "</tool_response>", "<tools>", "</tools>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)  # fmt: skip
"""Single (non-special) tokens: the action tags, and Qwen's other added tokens."""
PHRASE_TOKENS = (
    '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"label": "',
    '", "bbox_2d": [',
    ", ",
    "]}}</tool_call>",
)
"""Single tokens for the fixed boilerplate of the canonical zoom call (``mapo_env.actions.format_tool_call``).

A call is then ``PREFIX label-words ", "bbox_2d": [ x1 ", " y1 ", " x2 ", " y2 ]}}</tool_call>``: 13 tokens instead
of ~40, and the label's last word sits right before the coordinates (the model reads what it named, then points).
Added tokens match before BPE (longest first), so any text still encodes and decodes unchanged."""
MAX_NUMBER_TOKEN = 1000
"""Every integer 0..MAX_NUMBER_TOKEN is one token."""
BPE_VOCAB_SIZE = 1000
"""Size of the trained BPE part (bytes + specials + merges); numbers 10..1000 come on top."""
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""  # fmt: skip
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
"""Qwen2's pre-tokenizer split (digits one by one; whole numbers come from the added number tokens)."""

TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
}
"""Text decoder (head_dim 32: ``mrope_section`` sums to head_dim / 2)."""
VISION_CONFIG: dict[str, Any] = {
    "depth": 2,
    "hidden_size": 96,
    "intermediate_size": 256,
    "num_heads": 4,
    "out_hidden_size": 128,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [1],
    "tokens_per_second": 2,
}
"""Vision tower (``out_hidden_size`` = text hidden size)."""
MIN_PIXELS = 56 * 56
MAX_PIXELS = 448 * 448


def build_tokenizer(seed: int = 0, bpe_vocab_size: int = BPE_VOCAB_SIZE) -> Any:
    """Train the tiny agent's tokenizer (a transformers ``Qwen2Tokenizer``) on the env-text corpus.

    Args:
        seed: Seed of the corpus generator.
        bpe_vocab_size: Size of the trained BPE vocabulary (256 bytes + special tokens + merges).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    from tools.tiny_agent.corpus import make_corpus

    bpe = Tokenizer(BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    bpe.normalizer = normalizers.NFC()
    split = pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False)
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS + TAG_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = make_corpus(seed=seed)
    chat_words = ["system\nYou are a helpful assistant.\nuser\n", "assistant\n"] * 200
    bpe.train_from_iterator(corpus[:3] * 20 + chat_words + corpus, trainer)  # the system prompts weigh more

    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=TEXT_CONFIG["max_position_embeddings"],
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS], special_tokens=True)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in PHRASE_TOKENS])
    numbers = [AddedToken(str(n), special=False, normalized=False) for n in range(MAX_NUMBER_TOKEN + 1)]
    tokenizer.add_tokens(numbers)
    return tokenizer


def build_config(tokenizer: Any) -> Any:
    """The tiny ``Qwen2_5_VLConfig``, with the token ids of ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(TEXT_CONFIG, vocab_size=len(tokenizer), bos_token_id=None)
    text.update(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=True)
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(VISION_CONFIG),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_tiny_agent(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny agent from scratch and save it (config, safetensors, tokenizer, processor) to ``out_dir``.

    Args:
        out_dir: Destination folder (created; existing files of the same names are overwritten).
        seed: Seeds the tokenizer corpus and the weight initialisation.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from mapo_agent.policy.processor import QWEN_VL_CHAT_TEMPLATE, QwenVLProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed)
    config = build_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id,
    )
    model.save_pretrained(str(out))
    image_processor = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    QwenVLProcessor(tokenizer, image_processor, QWEN_VL_CHAT_TEMPLATE).save_pretrained(out)
    num_params = sum(p.numel() for p in model.parameters())
    logger.info("tiny Qwen2.5-VL: %d parameters, vocab %d, saved to %s", num_params, len(tokenizer), out)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python tools/build_tiny_agent.py --out DIR [--seed 0]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BUNDLED_DIR, help="destination folder (default: the bundled one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus and the weights")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_tiny_agent(args.out, seed=args.seed)
