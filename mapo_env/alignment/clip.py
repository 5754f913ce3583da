"""``"clip"``: image-text similarity of the crop and its description (the paper's semantic verifier).

Crop and description are embedded with a CLIP model loaded through sentence-transformers (its
``Transformer`` module handles a saved transformers ``CLIPModel`` + processor folder, or a hub id).
No annotation is needed, so this scorer works on any dataset.

MAPO (arXiv 2604.06777) scores the model's description of each tool-returned crop against the crop
itself with such an image-text verifier; this is the scorer that does it (``needs_annotations`` is
False). The procedural environments default to ``"clip:tiny"``, the benchmark environments on real
data to ``"clip"``.

Model: argument ``model=``, else the environment variable ``MAPO_CLIP_MODEL``, else
``"openai/clip-vit-base-patch32"`` (used when it is in your Hugging Face cache or downloadable).
The name ``"tiny"`` means the small CLIP that ships with this package, trained on crops of the
procedural environments' own scenes (:mod:`mapo_env.alignment.tiny_clip`; offline; it knows only
their vocabulary). :meth:`ClipScorer.check_available` (run by the environments at construction)
refuses a model that is neither a local folder, nor in the Hugging Face cache, nor served by the hub,
with a message naming the fixes.

Normalisation of the cosine ``c`` into ``[0, 1]`` (``normalization=``):

- ``"clipscore"`` (default): ``min(max(w · c, 0), 1)``, CLIPScore (Hessel et al. 2021, arXiv 2104.08718, §3) with
  ``w = 2.5`` (real CLIPs give ``c`` in about 0.1-0.35, so 0.4 and above saturate at 1). A model
  folder may carry its own ``w`` in ``mapo_alignment.json`` (``{"clipscore_weight": ...}``; the
  bundled tiny CLIP does, calibrated so that its matching pairs do not saturate). Chosen as default
  because it is the published, widely used mapping and keeps 0 meaning "unrelated".
- ``"affine"``: ``(c + 1) / 2``, never saturates, compresses real-CLIP scores into ~0.55-0.68.
- ``"raw"``: ``max(c, 0)``, clipped at 1.
- ``"contrastive"``: softmax over the description and ``negatives`` (generic captions such as
  ``"an object"``) at the model's logit scale; the probability of the description. Resists label
  hacking by construction: a generic label scores about ``1 / (K + 1)``.

Group-level min-max rescaling (option iii) belongs to the trainer, not to a per-crop scorer.

Crops of any size (>= 1x1) are accepted: larger than ``max_crop_side`` they are downscaled first
(area interpolation), and a crop longer than ``max_aspect`` : 1 is padded with its mean colour, so
that the processor's centre crop keeps the whole content.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mapo_env.alignment.base import AlignmentRequest
from mapo_env.alignment.common import BaseScorer, LRUCache, ScoringItem, as_rgb_uint8, check_requests
from mapo_env.alignment.loading import check_model_available, encode_texts_cached, load_sentence_transformer
from mapo_env.alignment.text import clean_text
from mapo_env.alignment.tiny_clip import tiny_clip_path
from mapo_env.errors import ConfigError, close_matches_hint

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
CLIP_MODEL_ENV = "MAPO_CLIP_MODEL"
TINY_CLIP_ALIAS = "tiny"
CALIBRATION_FILE = "mapo_alignment.json"
DEFAULT_CLIPSCORE_WEIGHT = 2.5
NORMALIZATIONS = ("clipscore", "affine", "raw", "contrastive")
DEFAULT_NEGATIVES = ("an object", "a thing", "a photo", "a part of an image", "something", "a region")
CLIP_FIX = (
    f"set {CLIP_MODEL_ENV}=/path/to/a/clip (a folder saved with save_pretrained) or to a hub id in your Hugging "
    f"Face cache (e.g. download it first: huggingface-cli download {DEFAULT_CLIP_MODEL}), pass "
    "alignment='clip:<folder or cached hub id>', or use alignment='clip:tiny' (the bundled offline tiny CLIP, "
    "made for the procedural scenes only)"
)
"""How to fix a CLIP model that cannot be loaded (the end of the error message)."""


def resolve_clip_model(model: str | Path | None = None) -> str:
    """The CLIP model a :class:`ClipScorer` uses: ``model``, else ``$MAPO_CLIP_MODEL``, else the default.

    ``"tiny"`` resolves to the bundled tiny CLIP folder.
    """
    name = str(model) if model is not None else os.environ.get(CLIP_MODEL_ENV) or DEFAULT_CLIP_MODEL
    if name == TINY_CLIP_ALIAS:
        return str(tiny_clip_path())
    return name


def _model_source(model: str | Path | None) -> str:
    """Where the model name came from, for error messages."""
    if model is not None:
        return "given"
    return f"from ${CLIP_MODEL_ENV}" if os.environ.get(CLIP_MODEL_ENV) else "the default"


def read_clipscore_weight(model: str) -> float:
    """The CLIPScore weight stored in ``<model>/mapo_alignment.json``, else 2.5."""
    path = Path(model) / CALIBRATION_FILE
    if not path.is_file():
        return DEFAULT_CLIPSCORE_WEIGHT
    try:
        weight = float(json.loads(path.read_text(encoding="utf-8"))["clipscore_weight"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f'{path} must hold {{"clipscore_weight": <positive float>}}: {err}; fix or delete the file'
        ) from err
    if not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"{path}: clipscore_weight must be a positive float, got {weight}")
    return weight


def prepare_crop(crop: Any, max_side: int = 448, max_aspect: float = 3.0) -> Any:
    """A crop as a PIL RGB image ready for a CLIP processor (see the module docstring).

    Args:
        crop: (H, W, 3) image array, H, W >= 1 (grey, RGBA and float arrays are converted).
        max_side: Longer side above this is downscaled to it (aspect kept).
        max_aspect: Longer/shorter side ratio above this is padded (mean colour) down to it.
    """
    import cv2
    from PIL import Image

    arr = as_rgb_uint8(crop)
    h, w = arr.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
        h, w = arr.shape[:2]
    if max(h, w) > max_aspect * min(h, w):
        short = math.ceil(max(h, w) / max_aspect)
        fill = [int(v) for v in arr.reshape(-1, 3).mean(axis=0).round()]
        pad_y, pad_x = max(0, short - h), max(0, short - w)
        arr = cv2.copyMakeBorder(
            arr, pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2, cv2.BORDER_CONSTANT, value=fill
        )
    return Image.fromarray(arr)


class ClipScorer(BaseScorer):
    """Cosine similarity of CLIP image and text embeddings of a crop and its description.

    Loaded lazily on the first score, once per process and device (shared across instances). Text
    embeddings are cached in a bounded LRU; images are encoded in batches of ``batch_size``.

    Args:
        model: Model folder or hub id (see the module docstring for the default and ``"tiny"``).
        normalization: ``"clipscore"`` (default), ``"affine"``, ``"raw"`` or ``"contrastive"``.
        clipscore_weight: ``w`` of ``"clipscore"``; ``None`` reads the model folder's
            ``mapo_alignment.json`` or uses 2.5.
        negatives: Captions the description competes with in ``"contrastive"`` mode.
        logit_scale: Softmax scale of ``"contrastive"``; ``None`` uses the model's learned scale.
        device: Torch device for the model.
        batch_size: Images (and texts) per forward pass.
        cache_size: Most text embeddings kept (0 disables the cache).
        max_crop_side: Crops larger than this are downscaled before the processor.
        max_aspect: Crops more elongated than this are padded before the processor.
        generic_guard: Score 0 for generic descriptions (default on; see :class:`BaseScorer`).
        **kwargs: Other :class:`~mapo_env.alignment.common.BaseScorer` options.
    """

    name = "clip"
    needs_annotations = False

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        normalization: str = "clipscore",
        clipscore_weight: float | None = None,
        negatives: Sequence[str] = DEFAULT_NEGATIVES,
        logit_scale: float | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        cache_size: int = 4096,
        max_crop_side: int = 448,
        max_aspect: float = 3.0,
        generic_guard: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(generic_guard=generic_guard, **kwargs)
        if normalization not in NORMALIZATIONS:
            raise ConfigError(
                f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}."
                f"{close_matches_hint(str(normalization), NORMALIZATIONS)}"
            )
        if normalization == "contrastive" and not negatives:
            raise ConfigError("normalization='contrastive' needs at least one negative caption in negatives=")
        if max_crop_side < 1 or max_aspect < 1:
            raise ConfigError(f"max_crop_side must be >= 1 and max_aspect >= 1, got {max_crop_side}, {max_aspect}")
        self.model = resolve_clip_model(model)
        self.model_source = _model_source(model)
        self.normalization = normalization
        self.clipscore_weight = (
            float(clipscore_weight) if clipscore_weight is not None else read_clipscore_weight(self.model)
        )
        self.negatives = tuple(negatives)
        self.logit_scale = logit_scale
        self.device = device
        self.batch_size = batch_size
        self.max_crop_side = max_crop_side
        self.max_aspect = max_aspect
        self.cache = LRUCache(cache_size)

    def check_available(self) -> None:
        """Raise now if the model could not be loaded at the first score (nothing is loaded here).

        Raises:
            DependencyNotInstalled: sentence-transformers is missing.
            ConfigError: The model is neither a local folder holding a saved model, nor in the Hugging Face
                cache, nor served by the hub (no network, ``HF_HUB_OFFLINE``); the message names the fixes
                (``$MAPO_CLIP_MODEL``, ``alignment="clip:tiny"``).
        """
        try:
            check_model_available(self.model, CLIP_FIX)
        except ConfigError as err:
            raise ConfigError(f"CLIP alignment model ({self.model_source}) unavailable: {err}") from err

    def _encoder(self) -> Any:
        return load_sentence_transformer(self.model, self.device)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """L2-normalised text embeddings (N, D), through the cache."""
        return encode_texts_cached(self._encoder(), texts, self.cache, self.batch_size)

    def embed_images(self, crops: Sequence[Any]) -> np.ndarray:
        """L2-normalised image embeddings (N, D) of crops (arrays as in :func:`prepare_crop`)."""
        images = [prepare_crop(c, self.max_crop_side, self.max_aspect) for c in crops]
        out = self._encoder().encode(
            images,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def cosines(self, requests: Sequence[AlignmentRequest]) -> np.ndarray:
        """Raw cosine (N,) of each request's crop and cleaned description; no guard, no normalisation."""
        reqs = check_requests(requests)
        return self._cosines([ScoringItem(clean_text(r.text, self.max_text_chars), "", r) for r in reqs])

    def _cosines(self, items: list[ScoringItem]) -> np.ndarray:
        image = self.embed_images([it.request.crop for it in items])
        text = self.embed_texts([it.text for it in items])
        return np.einsum("nd,nd->n", image, text)

    def _score(self, items: list[ScoringItem]) -> list[float]:
        if self.normalization == "contrastive":
            return self._contrastive(items)
        cos = self._cosines(items).astype(np.float64)
        if self.normalization == "clipscore":
            scores = self.clipscore_weight * cos
        elif self.normalization == "affine":
            scores = (cos + 1.0) / 2.0
        else:
            scores = cos
        return [float(s) for s in scores]

    def _contrastive(self, items: list[ScoringItem]) -> list[float]:
        image = self.embed_images([it.request.crop for it in items])
        text = self.embed_texts([it.text for it in items])
        negatives = self.embed_texts(list(self.negatives))
        logits = np.concatenate([np.einsum("nd,nd->n", image, text)[:, None], image @ negatives.T], axis=1)
        logits = logits.astype(np.float64) * self._logit_scale()
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return [float(p) for p in probs[:, 0] / probs.sum(axis=1)]

    def _logit_scale(self) -> float:
        if self.logit_scale is not None:
            return float(self.logit_scale)
        module = self._encoder()[0]
        param = getattr(getattr(module, "auto_model", None), "logit_scale", None)
        return float(param.exp().item()) if param is not None else 100.0

    def __repr__(self) -> str:
        return (
            f"ClipScorer(model={self.model!r}, normalization={self.normalization!r}, "
            f"clipscore_weight={self.clipscore_weight}, device={self.device!r}, generic_guard={self.generic_guard})"
        )
