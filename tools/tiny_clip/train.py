"""Contrastive training of the tiny CLIP on crops of the procedural scenes, then calibration and evaluation.

Loss (per step, a batch of ``B`` crops): the symmetric CLIP InfoNCE (Radford et al., arXiv 2103.00020,
§2.3) over ``2B`` captions, with multiple positives (a caption that names only some attributes, e.g.
``"bucket"``, is a target of every crop it fits) and one hard wrong caption per crop: half the time
another object of the same scene that the crop does not show (the wrong label of a zoom on the wrong
region), otherwise the crop's caption with its colour, kind or tile pattern changed. Plus an auxiliary
loss: linear heads classify colour, kind and pattern from the image embedding (they speed up learning
on a CPU budget and are not saved).

Model selection: every ``val_every`` steps the same-scene accuracy is measured on validation crops
of ``"train"``-split scenes that training never samples (indices from :data:`VAL_FIRST_INDEX`); the
weights with the best worst-family accuracy are saved. The ``"test"`` split is only read by the final
evaluation. After training, a CLIPScore weight is calibrated on the validation crops and written to
``mapo_alignment.json`` (see :mod:`mapo_env.alignment.clip`), and the held-out accuracies to
``training_report.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.tiny_clip.data import (
    COLORS,
    FAMILIES,
    KINDS,
    NO_PATTERN,
    PATTERN_CLASSES,
    CropPool,
    Subject,
    build_pool,
    caption,
    subject_caption,
    swapped,
    truthful_vs_wrong_pairs,
)
from tools.tiny_clip.model import TinyClipConfig, build_tiny_clip

logger = logging.getLogger(__name__)

VAL_FIRST_INDEX = 500_000
"""Validation scenes are train-split samples from this index on; training uses indices below it."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train_tiny_clip` (the defaults are the shipped recipe)."""

    steps: int = 3000
    batch_size: int = 96
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    aux_weight: float = 1.0
    same_scene_wrong: float = 0.5
    seed: int = 0
    scenes: dict[str, int] = field(
        default_factory=lambda: {"tiles": 2000, "vstar": 700, "hrbench": 500, "textspot": 250}
    )
    val_scenes: int = 80
    val_every: int = 250
    eval_scenes: int = 300


def _labels(subjects: list[Subject]) -> list[Any]:
    """Class indices (B,) of colour, kind and pattern of each subject, as three tensors."""
    import torch

    colors = [COLORS.index(s.color) for s in subjects]
    kinds = [KINDS.index(s.kind) for s in subjects]
    patterns = [PATTERN_CLASSES.index(s.pattern or NO_PATTERN) for s in subjects]
    return [torch.tensor(v) for v in (colors, kinds, patterns)]


def _batch(rng: np.random.Generator, pool: CropPool, size: int, same_scene_wrong: float):
    """Pixels (B, 3, S, S) uint8, subjects, ``2B`` captions (truthful then wrong) and the positives mask."""
    idx = rng.integers(len(pool), size=size)
    pixels = pool.pixels[idx]
    flip = rng.random(size) < 0.5
    pixels[flip] = pixels[flip][..., ::-1]
    subjects = [pool.subjects[i] for i in idx]
    captions, fields = [], []
    for i in idx:
        text, f = caption(rng, pool.objects[i], pool.subjects[i])
        captions.append(text)
        fields.append(f)
    for i in idx:
        others = pool.wrong[i]
        if others and rng.random() < same_scene_wrong:
            obj = others[int(rng.integers(len(others)))]
            text, f = caption(rng, obj, Subject.of(obj))
        else:
            text, f = subject_caption(swapped(rng, pool.subjects[i]))
        captions.append(text)
        fields.append(f)
    positives = np.array([[s.fits(f) for f in fields] for s in subjects], dtype=np.float32)
    return pixels, subjects, captions, positives


def _multi_positive_loss(logits: Any, positives: Any) -> Any:
    """Cross-entropy of ``logits`` rows against uniform targets over ``positives`` rows (rows without one skipped)."""
    import torch

    has = positives.sum(dim=1) > 0
    target = positives[has] / positives[has].sum(dim=1, keepdim=True)
    return -(target * torch.log_softmax(logits[has], dim=1)).sum(dim=1).mean()


class _Normalizer:
    """uint8 (B, 3, S, S) -> the processor's normalised float tensor."""

    def __init__(self, image_processor: Any) -> None:
        import torch

        self.mean = torch.tensor(image_processor.image_mean, dtype=torch.float32)[None, :, None, None]
        self.std = torch.tensor(image_processor.image_std, dtype=torch.float32)[None, :, None, None]

    def __call__(self, pixels: np.ndarray) -> Any:
        import torch

        return (torch.from_numpy(np.ascontiguousarray(pixels)).float() / 255.0 - self.mean) / self.std


def _step_loss(model: Any, heads: Any, tokenizer: Any, norm: _Normalizer, batch: tuple, aux_weight: float) -> Any:
    import torch

    pixels, subjects, captions, positives = batch
    tokens = tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
    out = model(pixel_values=norm(pixels), **tokens)
    pos = torch.from_numpy(positives)
    logits = out.logits_per_image  # (B, 2B): images x (truthful + wrong captions)
    contrastive = 0.5 * (_multi_positive_loss(logits, pos) + _multi_positive_loss(logits.T, pos.T))
    aux_logits = torch.split(heads(out.image_embeds), [len(COLORS), len(KINDS), len(PATTERN_CLASSES)], dim=1)
    aux = sum(torch.nn.functional.cross_entropy(lg, lb) for lg, lb in zip(aux_logits, _labels(subjects))) / 3
    return contrastive + aux_weight * aux


class _Validator:
    """Same-scene accuracy of the in-training model on fixed validation pairs (train-split scenes never trained on)."""

    def __init__(self, processor: Any, scenes: int) -> None:
        from mapo_env.alignment.clip import prepare_crop

        self.families = list(FAMILIES)
        self.pairs = {
            f: truthful_vs_wrong_pairs(f, scenes, split="train", seed=11, first_index=VAL_FIRST_INDEX)
            for f in self.families
        }
        self.pixels = {
            f: processor.image_processor([prepare_crop(t.crop) for t, _ in pairs], return_tensors="pt")["pixel_values"]
            for f, pairs in self.pairs.items()
        }

    def _embed(self, model: Any, tokenizer: Any, family: str, texts: list[str]) -> tuple[Any, Any]:
        """L2-normalised embeddings of the family's validation crops and of ``texts``."""
        import torch

        image = model.get_image_features(pixel_values=self.pixels[family]).pooler_output
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        text = model.get_text_features(**tokens).pooler_output
        return torch.nn.functional.normalize(image, dim=-1), torch.nn.functional.normalize(text, dim=-1)

    def __call__(self, model: Any, tokenizer: Any) -> dict[str, float]:
        import torch

        model.eval()
        out = {}
        with torch.no_grad():
            for f, pairs in self.pairs.items():
                texts = [t.text for t, _ in pairs] + [w.text for _, w in pairs]
                image, text = self._embed(model, tokenizer, f, texts)
                n = len(pairs)
                truthful = (image * text[:n]).sum(-1)
                wrong = (image * text[n:]).sum(-1)
                out[f] = float((truthful > wrong).float().mean())
        model.train()
        return out

    def truthful_cosines(self, model: Any, tokenizer: Any) -> np.ndarray:
        """Cosines of every validation crop with its truthful caption (for the CLIPScore calibration)."""
        import torch

        model.eval()
        cos = []
        with torch.no_grad():
            for f, pairs in self.pairs.items():
                image, text = self._embed(model, tokenizer, f, [t.text for t, _ in pairs])
                cos.append((image * text).sum(-1).numpy())
        return np.concatenate(cos)


def train_tiny_clip(
    folder: str | Path,
    train: TrainConfig | None = None,
    model_config: TinyClipConfig | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Build a tiny CLIP in ``folder``, train it on procedural crops, calibrate, evaluate and save it there.

    ``command`` (the command line that ran the recipe) is recorded in the report.

    Returns:
        The training report (also written to ``folder/training_report.json``).
    """
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from mapo_env.alignment.clip import CALIBRATION_FILE

    tc, mc = train or TrainConfig(), model_config or TinyClipConfig()
    folder = build_tiny_clip(folder, seed=tc.seed, config=mc)
    model = CLIPModel.from_pretrained(folder)
    processor = CLIPProcessor.from_pretrained(folder)
    tokenizer = processor.tokenizer
    start, cpu_start = time.time(), time.process_time()
    pool = build_pool(tc.scenes, processor.image_processor, seed=tc.seed, log=logger.info)
    validator = _Validator(processor, tc.val_scenes)
    data_seconds = time.time() - start
    logger.info("%d training crops, validation pairs ready (%.0f s)", len(pool), data_seconds)

    torch.manual_seed(tc.seed)
    heads = torch.nn.Linear(mc.projection_dim, len(COLORS) + len(KINDS) + len(PATTERN_CLASSES))
    model.train()
    params = [*model.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / tc.warmup_steps) * 0.5 * (1 + np.cos(np.pi * min(s / tc.steps, 1.0)))
    )
    norm = _Normalizer(processor.image_processor)
    rng = np.random.default_rng(tc.seed)
    losses: list[float] = []
    best: tuple[float, int, dict[str, float]] = (-1.0, -1, {})
    history = []
    for step in range(tc.steps):
        batch = _batch(rng, pool, tc.batch_size, tc.same_scene_wrong)
        loss = _step_loss(model, heads, tokenizer, norm, batch, tc.aux_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            logger.info("step %d loss %.4f (%.0f s)", step, np.mean(losses[-50:]), time.time() - start)
        if (step + 1) % tc.val_every == 0 or step == tc.steps - 1:
            val = validator(model, tokenizer)
            worst = min(val.values())
            history.append({"step": step + 1, **val})
            logger.info("step %d validation %s (%.0f s)", step + 1, json.dumps(val), time.time() - start)
            if worst >= best[0]:
                best = (worst, step + 1, val)
                model.save_pretrained(folder)
    train_seconds = time.time() - start
    model = CLIPModel.from_pretrained(folder)
    cos = validator.truthful_cosines(model, tokenizer)
    weight = float(1.0 / max(np.quantile(cos, 0.99), 1e-3))
    (folder / CALIBRATION_FILE).write_text(json.dumps({"clipscore_weight": weight}) + "\n", encoding="utf-8")
    report: dict[str, Any] = {"command": command, "train": asdict(tc), "model": asdict(mc)}
    report |= {"training_crops": len(pool), "data_seconds": round(data_seconds, 1)}
    report |= {"train_seconds": round(train_seconds, 1), "final_loss": float(np.mean(losses[-100:]))}
    report |= {"selected_step": best[1], "validation": best[2], "validation_history": history}
    report["clipscore_weight"] = weight
    report |= evaluate_folder(folder, tc.eval_scenes)
    report["total_seconds"] = round(time.time() - start, 1)
    report["total_cpu_seconds"] = round(time.process_time() - cpu_start, 1)
    (folder / "training_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def evaluate_folder(folder: Path, scenes: int) -> dict[str, Any]:
    """Held-out (``"test"`` split) accuracies of the saved model through the ``clip`` scorer, per family."""
    from mapo_env.alignment.clip import ClipScorer
    from tools.tiny_clip.evaluate import attribute_swap_accuracy, heldout_pairs, same_scene_accuracy

    scorer = ClipScorer(model=str(folder))
    pairs = {f: heldout_pairs(f, scenes) for f in FAMILIES}
    same = {f: same_scene_accuracy(scorer, p) for f, p in pairs.items()}
    swaps = {f: attribute_swap_accuracy(scorer, p) for f, p in pairs.items()}
    return {"heldout_scenes_per_family": scenes, "heldout_same_scene": same, "heldout_attribute_swap": swaps}
