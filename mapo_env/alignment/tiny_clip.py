"""A tiny CLIP built and trained offline on CPU, shipped as the offline model of the ``clip`` scorer.

Two uses:

- :func:`build_tiny_clip` saves a *random* tiny CLIP (a transformers ``CLIPModel`` from a small
  ``CLIPConfig``, a byte-level BPE tokenizer trained in-process with ``tokenizers``, and the PIL
  ``CLIPImageProcessor``) to a folder that sentence-transformers loads offline. Tests use it to check
  the loading and scoring pipeline in a second.
- :func:`train_tiny_clip` trains that model contrastively on synthetic crop/caption pairs
  (:mod:`mapo_env.alignment.synthetic`: coloured, patterned tiles and objects on photo or noise
  backgrounds) so that it can tell ``"red striped tile"`` from ``"blue striped tile"``. The result
  ships in ``mapo_env/assets/tiny_clip/`` (:func:`tiny_clip_path`); ``"clip:tiny"`` selects it.

Recipe of the shipped model (about 50 minutes on one CPU thread)::

    python -m mapo_env.alignment.tiny_clip --out mapo_env/assets/tiny_clip --steps 7000 --seed 0 --threads 1

The loss is the symmetric CLIP InfoNCE with multiple positives (two captions that both truthfully
describe an image, e.g. ``"striped"`` for either stripe direction, are both targets) plus one hard
negative caption per image (the true caption with its colour, pattern or shape changed), plus an
auxiliary loss: linear heads classify colour, pattern and shape from the image embedding (they make
shape learnable within a CPU budget and are dropped afterwards). After
training, a CLIPScore weight is calibrated on held-out pairs and written to ``mapo_alignment.json``
(see :mod:`mapo_env.alignment.clip`), and a held-out truthful-vs-wrong accuracy is written to
``training_report.json``.

This is a toy: it knows 11 colours, 4 patterns and 11 shapes and nothing else. Use a real CLIP
(``clip:openai/clip-vit-base-patch32`` or larger) for real images.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mapo_env.alignment.synthetic import (
    COLORS,
    PATTERN_PHRASES,
    PATTERNS,
    SHAPES,
    SyntheticObject,
    random_crop_sample,
    training_caption,
    wrong_object,
)
from mapo_env.errors import ConfigError

logger = logging.getLogger(__name__)

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "tiny_clip"
RECIPE = "python -m mapo_env.alignment.tiny_clip --out mapo_env/assets/tiny_clip --steps 7000 --seed 0 --threads 1"
WRONG_KINDS = ("color", "pattern", "shape")


@dataclass(frozen=True)
class TinyClipConfig:
    """Sizes of the tiny CLIP (the defaults give ~0.4 M parameters, ~1.7 MB of float32 weights)."""

    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 96
    num_layers: int = 3
    num_heads: int = 4
    projection_dim: int = 64
    max_text_tokens: int = 32
    vocab_size: int = 512


def tiny_clip_path() -> Path:
    """Folder of the bundled, trained tiny CLIP (loadable by sentence-transformers, offline).

    Raises:
        ConfigError: The folder is missing (a source checkout without the asset); rebuild it with the recipe.
    """
    if not (ASSET_DIR / "config.json").is_file():
        raise ConfigError(f"the bundled tiny CLIP is missing from {ASSET_DIR}; rebuild it with: {RECIPE}")
    return ASSET_DIR


def caption_corpus() -> list[str]:
    """Text the tokenizer is trained on: every caption form of the synthetic vocabulary, plus fillers."""
    words = [*COLORS, *SHAPES, "a", "the", "photo", "of", "with", "stripes", "pattern", "checkerboard", "object"]
    lines = [" ".join(words)]
    for shape in SHAPES:
        for color in COLORS:
            for pattern in PATTERNS:
                for phrase in PATTERN_PHRASES[pattern]:
                    lines.append(" ".join(w for w in (color, phrase, shape) if w))
    for color in COLORS:
        lines += [f"a {color} thing with horizontal stripes", f"the {color} shape with vertical stripes"]
        lines += [f"a photo of a {color} object with a checkerboard pattern"]
    lines += ["an image of something", "a part of an image", "a region", "text"]
    return lines


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


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters of :func:`train_tiny_clip` (the defaults are the shipped recipe)."""

    steps: int = 7000
    batch_size: int = 96
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    aux_weight: float = 1.0
    seed: int = 0
    eval_pairs: int = 1000


def _batch(
    rng: np.random.Generator, size: int
) -> tuple[list[np.ndarray], list[SyntheticObject], list[str], np.ndarray]:
    """Crops, their objects, captions and the (size, 2 * size) positives mask.

    Captions: ``size`` truthful ones (:func:`~mapo_env.alignment.synthetic.training_caption`), then
    one hard negative per crop (its canonical caption with the colour, the pattern or, half the time,
    the shape changed). ``positives[i, j]`` is 1 when caption ``j`` truthfully describes crop ``i``.
    """
    samples = [random_crop_sample(rng) for _ in range(size)]
    objs = [s.target for s in samples]
    truthful = [training_caption(rng, o) for o in objs]
    wrong = [wrong_object(rng, o, WRONG_KINDS[rng.choice(3, p=[0.25, 0.25, 0.5])]) for o in objs]
    captions = [t for t, _ in truthful] + [w.caption() for w in wrong]
    fits = [(o.color, f, o.shape) for o, (_, f) in zip(objs, truthful)]
    fits += [(w.color, frozenset([w.pattern]), w.shape) for w in wrong]
    positives = np.array(
        [[o.color == c and o.pattern in f and o.shape == s for c, f, s in fits] for o in objs], dtype=np.float32
    )
    return [s.crop for s in samples], objs, captions, positives


def _multi_positive_loss(logits: Any, positives: Any) -> Any:
    """Cross-entropy of ``logits`` rows against uniform targets over ``positives`` rows (rows without one skipped)."""
    import torch

    has = positives.sum(dim=1) > 0
    target = positives[has] / positives[has].sum(dim=1, keepdim=True)
    return -(target * torch.log_softmax(logits[has], dim=1)).sum(dim=1).mean()


def _attribute_labels(objs: list[SyntheticObject]) -> list[Any]:
    """Class indices (B,) of the colour, pattern and shape of each object, as three tensors."""
    import torch

    vocab = (list(COLORS), list(PATTERNS), list(SHAPES))
    fields = ("color", "pattern", "shape")
    return [torch.tensor([v.index(getattr(o, f)) for o in objs]) for v, f in zip(vocab, fields)]


def _step_loss(model: Any, heads: Any, processor: Any, batch: tuple, aux_weight: float) -> Any:
    """Contrastive loss (both directions, multi-positive) + ``aux_weight`` x attribute classification loss.

    The auxiliary heads read colour, pattern and shape off the image embedding; they speed up learning
    shape on CPU budgets and are not saved with the model.
    """
    import torch

    from mapo_env.alignment.clip import prepare_crop

    crops, objs, captions, positives = batch
    pixels = processor.image_processor([prepare_crop(c) for c in crops], return_tensors="pt")["pixel_values"]
    tokens = processor.tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
    out = model(pixel_values=pixels, **tokens)
    pos = torch.from_numpy(positives)
    logits = out.logits_per_image  # (B, 2B): images x (truthful + wrong captions)
    contrastive = 0.5 * (_multi_positive_loss(logits, pos) + _multi_positive_loss(logits.T, pos.T))
    aux_logits = torch.split(heads(out.image_embeds), [len(COLORS), len(PATTERNS), len(SHAPES)], dim=1)
    labels = _attribute_labels(objs)
    aux = sum(torch.nn.functional.cross_entropy(lg, lb) for lg, lb in zip(aux_logits, labels)) / 3
    return contrastive + aux_weight * aux


def train_tiny_clip(
    folder: str | Path, train: TrainConfig | None = None, model_config: TinyClipConfig | None = None
) -> dict[str, Any]:
    """Build a tiny CLIP in ``folder``, train it on synthetic pairs, calibrate it and save it there.

    Returns:
        The training report (also written to ``folder/training_report.json``).
    """
    import torch
    from transformers import CLIPModel, CLIPProcessor

    tc, mc = train or TrainConfig(), model_config or TinyClipConfig()
    folder = build_tiny_clip(folder, seed=tc.seed, config=mc)
    model = CLIPModel.from_pretrained(folder)
    processor = CLIPProcessor.from_pretrained(folder)
    heads = torch.nn.Linear(mc.projection_dim, len(COLORS) + len(PATTERNS) + len(SHAPES))
    model.train()
    params = [*model.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / tc.warmup_steps) * 0.5 * (1 + np.cos(np.pi * min(s / tc.steps, 1.0)))
    )
    rng = np.random.default_rng(tc.seed)
    start, losses = time.time(), []
    for step in range(tc.steps):
        loss = _step_loss(model, heads, processor, _batch(rng, tc.batch_size), tc.aux_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == tc.steps - 1:
            logger.info("step %d loss %.4f (%.0f s)", step, np.mean(losses[-100:]), time.time() - start)
    model.eval()
    model.save_pretrained(folder)
    report = {"train": asdict(tc), "model": asdict(mc), "seconds": round(time.time() - start, 1)}
    report["final_loss"] = float(np.mean(losses[-100:]))
    report |= calibrate_and_evaluate(folder, n=tc.eval_pairs, seed=tc.seed + 1_000_003)
    (folder / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def truthful_vs_wrong(scorer: Any, n: int, seed: int, paraphrase: bool = False) -> dict[str, float]:
    """Fraction of held-out synthetic crops where ``scorer`` ranks the true caption above a wrong one.

    For each crop (drawn with ``default_rng(seed)``) the true caption competes with three wrong ones
    (the canonical caption with its colour, pattern or shape changed); ties count as failures.
    ``paraphrase=True`` words the true caption as a model might (``"a red tile with vertical
    stripes"``, ``"the red striped tile"``, pattern omitted...) instead of the canonical form.

    Returns:
        ``{"color": acc, "pattern": acc, "shape": acc, "all": acc}``.
    """
    from mapo_env.alignment.base import AlignmentRequest

    rng = np.random.default_rng(seed)
    requests, kinds = [], []
    for _ in range(n):
        sample = random_crop_sample(rng)
        box = (0.0, 0.0, float(sample.crop.shape[1]), float(sample.crop.shape[0]))
        truth = training_caption(rng, sample.target)[0] if paraphrase else sample.target.caption()
        texts = [truth] + [wrong_object(rng, sample.target, k).caption() for k in WRONG_KINDS]
        requests += [AlignmentRequest(t, sample.crop, box, sample.objects_in_crop) for t in texts]
        kinds.append(len(requests) - 4)
    scores = scorer.score_batch(requests)
    wins = {k: [scores[i] > scores[i + 1 + j] for i in kinds] for j, k in enumerate(WRONG_KINDS)}
    result = {k: float(np.mean(v)) for k, v in wins.items()}
    result["all"] = float(np.mean([x for v in wins.values() for x in v]))
    return result


def calibrate_and_evaluate(folder: Path, n: int, seed: int) -> dict[str, Any]:
    """Write ``mapo_alignment.json`` (CLIPScore weight: 1 / 99th percentile of true-pair cosines) and evaluate.

    Returns:
        The weight, the canonical and paraphrased accuracies (:func:`truthful_vs_wrong`) and ``n``.
    """
    from mapo_env.alignment.base import AlignmentRequest
    from mapo_env.alignment.clip import CALIBRATION_FILE, ClipScorer

    rng = np.random.default_rng(seed + 1)
    samples = [random_crop_sample(rng) for _ in range(min(n, 500))]
    calib = ClipScorer(model=str(folder), normalization="raw", generic_guard=False, clipscore_weight=1.0)
    box = (0.0, 0.0, 1.0, 1.0)
    cos = calib.cosines([AlignmentRequest(s.target.caption(), s.crop, box) for s in samples])
    weight = float(1.0 / max(np.quantile(cos, 0.99), 1e-3))
    (folder / CALIBRATION_FILE).write_text(json.dumps({"clipscore_weight": weight}) + "\n", encoding="utf-8")
    scorer = ClipScorer(model=str(folder))
    accuracy = truthful_vs_wrong(scorer, n, seed)
    paraphrased = truthful_vs_wrong(scorer, n, seed + 1, paraphrase=True)
    return {
        "clipscore_weight": weight,
        "heldout_accuracy": accuracy,
        "heldout_accuracy_paraphrased": paraphrased,
        "heldout_crops": n,
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m mapo_env.alignment.tiny_clip --out FOLDER [--steps N] [--seed S]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder to write the model to")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="training steps (0: random model only)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.steps == 0:
        build_tiny_clip(args.out, seed=args.seed)
        return
    report = train_tiny_clip(args.out, TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed))
    logger.info("report: %s", json.dumps(report["heldout_accuracy"]))


if __name__ == "__main__":
    main()
