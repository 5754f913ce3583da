"""The tiny CLIP's architecture, its tokenizer, and a randomly initialised model folder.

:func:`build_tiny_clip` saves a transformers ``CLIPModel`` built from a small ``CLIPConfig``, a
byte-level BPE ``CLIPTokenizer`` trained in-process with ``tokenizers`` on the procedural
vocabulary's captions (any text still encodes), and the PIL ``CLIPImageProcessor``, in a folder that
sentence-transformers loads offline. Tests use a random one to check loading and scoring in a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.tiny_clip.data import caption_corpus


@dataclass(frozen=True)
class TinyClipConfig:
    """Sizes of the tiny CLIP.

    The defaults see crops at 112 px (the Tiles env shows its crops at exactly 112x112) through 14-px
    patches (an 8x8 token grid) and give about 0.5 M parameters (about 2 MB of float32 weights).
    """

    image_size: int = 112
    patch_size: int = 14
    hidden_size: int = 96
    num_layers: int = 3
    num_heads: int = 4
    projection_dim: int = 64
    max_text_tokens: int = 32
    vocab_size: int = 640


def build_tokenizer(corpus: list[str], vocab_size: int) -> Any:
    """A ``CLIPTokenizer`` whose byte-level BPE vocabulary is trained on ``corpus`` (any text still encodes)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    split = Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(split, behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    bpe = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in bpe["merges"]]
    return CLIPTokenizer(vocab=bpe["vocab"], merges=merges)


def build_tiny_clip(folder: str | Path, seed: int = 0, config: TinyClipConfig | None = None) -> Path:
    """Save a randomly initialised tiny CLIP (model, tokenizer, PIL image processor) to ``folder``.

    Deterministic for a given ``seed`` and config. Loadable offline with
    ``sentence_transformers.SentenceTransformer(str(folder), device="cpu")``.

    Returns:
        ``folder`` as a ``Path``.
    """
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    cfg = config or TinyClipConfig()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(caption_corpus(), cfg.vocab_size)
    tokenizer.model_max_length = cfg.max_text_tokens
    common = {"hidden_size": cfg.hidden_size, "intermediate_size": 2 * cfg.hidden_size}
    common |= {"num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads}
    text = {"vocab_size": len(tokenizer), "max_position_embeddings": cfg.max_text_tokens, **common}
    text |= {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    text["pad_token_id"] = tokenizer.pad_token_id
    vision = {"image_size": cfg.image_size, "patch_size": cfg.patch_size, **common}
    clip_config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=cfg.projection_dim)
    torch.manual_seed(seed)
    model = CLIPModel(clip_config)
    side = {"shortest_edge": cfg.image_size}
    image_processor = CLIPImageProcessorPil(size=side, crop_size={"height": cfg.image_size, "width": cfg.image_size})
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
