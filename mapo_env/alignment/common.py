"""The machinery every scorer shares: request checks, the generic-label guard, score clamping.

:class:`BaseScorer` implements :meth:`~mapo_env.alignment.base.AlignmentScorer.score_batch` once:
it checks the requests (our own misuse raises :class:`~mapo_env.errors.ConfigError`), cleans each
description with :func:`~mapo_env.alignment.text.clean_text`, builds the reference caption, applies
the generic-label guard, hands the rest to the subclass's ``_score`` and maps whatever comes back
into ``[0, 1]`` with :func:`clamp_score`. Subclasses only write ``_score``.
"""

from __future__ import annotations

import logging
import math
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mapo_env.alignment.base import AlignmentRequest, AlignmentScorer
from mapo_env.alignment.text import MAX_TEXT_CHARS, clean_text, guard_blocks
from mapo_env.errors import AlignmentError, ConfigError

logger = logging.getLogger(__name__)


def clamp_score(value: float) -> float:
    """Map any float into ``[0, 1]``: NaN -> 0, below 0 -> 0, above 1 (and +inf) -> 1."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return min(max(value, 0.0), 1.0)


def is_real_number(value: Any) -> bool:
    """True for Python and NumPy ints and floats (NaN and infinities included), False for bools and the rest."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return is_real_number(value.item())
    return isinstance(value, (int, float, np.integer, np.floating))


def checked_scores(raw: Any, count: int, scorer: str) -> list[float]:
    """Validate what ``score_batch`` returned for ``count`` requests and map it into ``[0, 1]``.

    The boundary between any scorer (bundled, third-party or a user's) and the environment: ``raw``
    must be a sequence of ``count`` real numbers. NaN becomes 0 with a logged warning; infinities and
    values outside ``[0, 1]`` are clipped (also logged).

    Raises:
        AlignmentError: ``raw`` is not a sequence of ``count`` real numbers (``None``, ``[]``, a string,
            a bare number, a wrong length, ``[None]``...); the message says what came back.
    """
    if isinstance(raw, np.ndarray):
        raw = raw.tolist() if raw.ndim == 1 else raw
    if isinstance(raw, (str, bytes)) or not isinstance(raw, (list, tuple)):
        raise AlignmentError(
            f"alignment scorer {scorer!r} returned {type(raw).__name__} ({raw!r:.60}); score_batch must return a "
            f"list of {count} float scores in [0, 1]"
        )
    if len(raw) != count:
        raise AlignmentError(
            f"alignment scorer {scorer!r} returned {len(raw)} scores for {count} requests; score_batch must return "
            "one float score per request"
        )
    out = []
    for value in raw:
        if not is_real_number(value):
            raise AlignmentError(
                f"alignment scorer {scorer!r} returned a {type(value).__name__} ({value!r:.60}) as a score; scores "
                "must be real numbers, ideally in [0, 1]"
            )
        value = float(value)
        if math.isnan(value):
            logger.warning("alignment scorer %r returned NaN; scored 0", scorer)
        elif not 0.0 <= value <= 1.0:
            logger.warning("alignment scorer %r returned %r, outside [0, 1]; clipped", scorer, value)
        out.append(clamp_score(value))
    return out


@dataclass(frozen=True)
class ScoringItem:
    """One request as a scorer's ``_score`` sees it.

    Attributes:
        text: The cleaned description (see :func:`~mapo_env.alignment.text.clean_text`).
        reference: The reference caption of the annotated objects in the crop, ``""`` when none.
        request: The original request (crop, box, objects, question, raw text).
    """

    text: str
    reference: str
    request: AlignmentRequest


def check_requests(requests: Sequence[AlignmentRequest]) -> list[AlignmentRequest]:
    """Return ``requests`` as a list, raising :class:`ConfigError` on anything but well-formed requests."""
    if isinstance(requests, AlignmentRequest):
        raise ConfigError(
            "score_batch expects a sequence of AlignmentRequest, got a single AlignmentRequest; "
            "pass [request] or call score(request)"
        )
    items = list(requests)
    for i, req in enumerate(items):
        if not isinstance(req, AlignmentRequest):
            raise ConfigError(
                f"score_batch expects AlignmentRequest items, item {i} is {type(req).__name__}; "
                "build requests with AlignmentRequest(text=..., crop=..., crop_box=...)"
            )
        if not isinstance(req.text, str):
            raise ConfigError(
                f"AlignmentRequest.text must be a str, item {i} has {type(req.text).__name__}; "
                "pass the model's text (use '' for no description)"
            )
    return items


def as_rgb_uint8(crop: Any) -> np.ndarray:
    """Return ``crop`` as a contiguous ``np.uint8`` (H, W, 3) RGB array.

    Accepts (H, W), (H, W, 1), (H, W, 3) and (H, W, 4) arrays (alpha dropped); floats in ``[0, 1]``
    are scaled by 255, other values are clipped to ``[0, 255]``.

    Raises:
        ConfigError: The crop is not an image array of at least 1x1 pixel.
    """
    arr = np.asarray(crop)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ConfigError(
            f"an alignment crop must be an (H, W, 3) RGB array with H, W >= 1, got shape {arr.shape}; "
            "pass the crop exactly as returned to the model"
        )
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if np.issubdtype(np.asarray(crop).dtype, np.floating) and np.nanmax(arr, initial=0.0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


class LRUCache:
    """A thread-safe bounded mapping that forgets the least recently used key first.

    Args:
        maxsize: Most entries kept; 0 disables caching.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 0:
            raise ConfigError(f"cache_size must be >= 0, got {maxsize}; use 0 to disable the cache")
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The value for ``key`` (marking it recently used), or ``None``; counts hits and misses."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``, evicting the oldest entries beyond ``maxsize``."""
        if self.maxsize == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Forget every entry and reset the counters."""
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0


class BaseScorer(ABC):
    """Base class of the bundled scorers; subclasses implement :meth:`_score`.

    Capability: ``needs_annotations`` (class attribute) says whether the scorer reads the ground-truth
    objects of the crop (``AlignmentRequest.objects_in_crop``) instead of, or besides, its pixels. The
    environments refuse such a scorer at construction on a dataset without object boxes, where it
    could only return 0. :meth:`check_available` raises, at construction, what would otherwise fail
    at the first score (a model that cannot be loaded).

    Args:
        generic_guard: Score 0 for generic descriptions (``"object"``, ``"the image"``, empty text)
            unless the reference caption is itself generic; see
            :func:`~mapo_env.alignment.text.guard_blocks`. On by default (label-hacking guard).
        max_text_chars: Descriptions are cut to this many characters before scoring.
        min_visible: Passed to :meth:`AlignmentRequest.reference_caption`: an annotated object counts
            when at least this fraction of its box is inside the crop.
        max_objects: Passed to :meth:`AlignmentRequest.reference_caption`: most objects named.
    """

    name = "base"
    needs_annotations = False

    def __init__(
        self,
        *,
        generic_guard: bool = True,
        max_text_chars: int = MAX_TEXT_CHARS,
        min_visible: float = 0.5,
        max_objects: int = 3,
    ) -> None:
        if max_text_chars < 1:
            raise ConfigError(f"max_text_chars must be >= 1, got {max_text_chars}")
        if not 0.0 <= min_visible <= 1.0:
            raise ConfigError(f"min_visible must be in [0, 1], got {min_visible}")
        if max_objects < 1:
            raise ConfigError(f"max_objects must be >= 1, got {max_objects}")
        self.generic_guard = generic_guard
        self.max_text_chars = max_text_chars
        self.min_visible = min_visible
        self.max_objects = max_objects

    def score_batch(self, requests: Sequence[AlignmentRequest]) -> list[float]:
        """One score in ``[0, 1]`` per request, in order; never raises on the text of a request.

        Raises:
            ConfigError: An item is not an :class:`AlignmentRequest` or its crop is not an image.
        """
        reqs = check_requests(requests)
        items = [
            ScoringItem(
                clean_text(r.text, self.max_text_chars), r.reference_caption(self.min_visible, self.max_objects), r
            )
            for r in reqs
        ]
        scores = [0.0] * len(items)
        keep = [i for i, it in enumerate(items) if not (self.generic_guard and guard_blocks(it.text, it.reference))]
        if keep:
            raw = self._score([items[i] for i in keep])
            for i, value in zip(keep, raw, strict=True):
                if math.isnan(float(value)):
                    logger.warning("alignment scorer %r returned NaN; scored 0", self.name)
                scores[i] = clamp_score(value)
        return scores

    def score(self, request: AlignmentRequest) -> float:
        """Score one request (same as ``score_batch([request])[0]``)."""
        return self.score_batch([request])[0]

    def check_available(self) -> None:  # noqa: B027 (optional hook, a no-op unless a model must load)
        """Raise a named error now if scoring could not work later (a model that cannot load); no-op here."""

    @abstractmethod
    def _score(self, items: list[ScoringItem]) -> list[float]:
        """Raw scores for ``items`` (any floats; the caller clamps them into ``[0, 1]``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(generic_guard={self.generic_guard})"


class CallableScorer(BaseScorer):
    """Wraps a user function ``fn(request) -> float`` as a scorer.

    Exceptions raised by ``fn`` propagate unchanged (it is the user's code, and a silent 0 would hide
    a bug). Its results are mapped into ``[0, 1]`` by :func:`clamp_score` (NaN -> 0, -inf -> 0,
    +inf -> 1, out-of-range values clipped). A result that is not a real number raises
    :class:`ConfigError`.

    Args:
        fn: Called once per request with the original :class:`AlignmentRequest`.
        name: Reported as ``scorer.name``; defaults to the function's ``__name__``.
        generic_guard: Apply the generic-label guard before calling ``fn``. Off by default here: a user
            function is taken to be the user's full judgement.
        needs_annotations: Declare that ``fn`` reads ``request.objects_in_crop`` (ground truth), so that
            the environments refuse it on data without object boxes. False by default.
        **kwargs: Other :class:`BaseScorer` options.
    """

    def __init__(
        self,
        fn: Callable[[AlignmentRequest], float],
        name: str | None = None,
        *,
        generic_guard: bool = False,
        needs_annotations: bool = False,
        **kwargs: Any,
    ) -> None:
        if not callable(fn):
            raise ConfigError(f"CallableScorer expects a callable fn(request) -> float, got {type(fn).__name__}")
        super().__init__(generic_guard=generic_guard, **kwargs)
        self.needs_annotations = bool(needs_annotations)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def _score(self, items: list[ScoringItem]) -> list[float]:
        out = []
        for it in items:
            value = self.fn(it.request)
            if not is_real_number(value):
                raise ConfigError(
                    f"alignment function {self.name!r} returned {type(value).__name__} ({value!r:.40}); "
                    "it must return a float score (ideally in [0, 1])"
                )
            out.append(float(value))
        return out

    def __repr__(self) -> str:
        return f"CallableScorer({self.name!r}, generic_guard={self.generic_guard})"


class GuardedScorer(BaseScorer):
    """Adds the generic-label guard to any :class:`AlignmentScorer` (e.g. a third-party one).

    Generic descriptions score 0 (see :func:`~mapo_env.alignment.text.guard_blocks`); the others
    are passed, as their original requests, to ``inner.score_batch`` in one call.

    Args:
        inner: The scorer to guard.
        **kwargs: Other :class:`BaseScorer` options (``min_visible``, ``max_objects`` decide the
            reference caption the guard compares against).
    """

    def __init__(self, inner: AlignmentScorer, **kwargs: Any) -> None:
        if not callable(getattr(inner, "score_batch", None)):
            raise ConfigError(f"GuardedScorer expects a scorer with score_batch(), got {type(inner).__name__}")
        super().__init__(generic_guard=True, **kwargs)
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.needs_annotations = bool(getattr(inner, "needs_annotations", False))

    def check_available(self) -> None:
        """The inner scorer's check, when it has one."""
        check = getattr(self.inner, "check_available", None)
        if callable(check):
            check()

    def _score(self, items: list[ScoringItem]) -> list[float]:
        return checked_scores(self.inner.score_batch([it.request for it in items]), len(items), self.name)

    def __repr__(self) -> str:
        return f"GuardedScorer({self.inner!r})"
