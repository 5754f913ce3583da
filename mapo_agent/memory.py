"""Bounded memory: pack sequences into micro-batches by a token budget, and measure the peak.

A transformer pass over a right-padded batch holds activations for every (row, position) of it, image
tokens included, so its memory grows with ``rows * padded length``, not with the number of sequences.
:func:`pack_by_tokens` cuts a list of sequences into consecutive chunks whose padded size
``rows * longest`` stays within a budget; the trainer uses it for the training forward/backward and
for every no-grad pass over the same data (reference model), and :meth:`HFPolicy.generate
<mapo_agent.policy.HFPolicy.generate>` for the live episodes of a rollout round (prompt plus
``max_new_tokens`` per row). Losses stay exact under any split: see
:class:`~mapo_agent.types.LossNormalizer`.

Example:
    >>> pack_by_tokens([100, 100, 300, 50], budget=400)
    [[0, 1], [2], [3]]
    >>> pack_by_tokens([100, 100, 100, 100], budget=300)
    [[0, 1, 2], [3]]
    >>> pack_by_tokens([100, 100, 100, 100], budget=300, groups=[0, 0, 1, 1])  # a group that fits stays whole
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence

from mapo_env.errors import ConfigError


def padded_tokens(lengths: Sequence[int]) -> int:
    """Size of a right-padded batch of sequences of these lengths: ``rows * longest`` (0 when empty)."""
    return len(lengths) * max(lengths, default=0)


def pack_by_tokens(
    lengths: Sequence[int],
    budget: int | None,
    groups: Sequence[int] | None = None,
    *,
    split_groups: bool = True,
) -> list[list[int]]:
    """Cut sequences into consecutive chunks whose padded size ``rows * longest`` is at most ``budget``.

    Every index appears exactly once; chunks follow the order of the sequences (of each group's first
    sequence), and each chunk lists its indices in increasing order. With ``groups`` (one id per sequence; a
    group's sequences need not be adjacent), a whole question group goes into one chunk when the
    group alone fits in the budget; a group that alone exceeds it is split across chunks (unless
    ``split_groups`` is False: then it forms one chunk, over budget). A single sequence longer than
    the budget forms a chunk of its own. Within those rules chunks are filled greedily in order.

    Args:
        lengths: Tokens of each sequence (text and image placeholder tokens).
        budget: Most padded tokens per chunk; ``None`` puts everything in one chunk.
        groups: Group id of each sequence, or ``None`` (every sequence on its own).
        split_groups: Whether a group larger than the budget may be split.

    Returns:
        Lists of indices into ``lengths``, in order.

    Raises:
        ConfigError: ``budget`` < 1, a negative length, or ``groups`` of the wrong length.
    """
    if budget is not None and budget < 1:
        raise ConfigError(f"the token budget must be >= 1 or None, got {budget!r}")
    if any(n < 0 for n in lengths):
        raise ConfigError(f"sequence lengths must be >= 0, got {list(lengths)}")
    if groups is not None and len(groups) != len(lengths):
        raise ConfigError(f"need one group id per sequence, got {len(groups)} ids for {len(lengths)} sequences")
    if not lengths:
        return []
    if budget is None:
        return [list(range(len(lengths)))]
    units: dict[object, list[int]] = {}
    for i in range(len(lengths)):
        units.setdefault(groups[i] if groups is not None else ("row", i), []).append(i)
    chunks: list[list[int]] = []
    current: list[int] = []

    def fits(rows: list[int]) -> bool:
        return padded_tokens([lengths[i] for i in rows]) <= budget

    for unit in units.values():
        if fits(current + unit):
            current += unit
            continue
        if fits(unit) or not split_groups:
            if current:
                chunks.append(current)
            current = list(unit)
            continue
        for i in unit:  # a group over the budget: its sequences one by one
            if current and not fits(current + [i]):
                chunks.append(current)
                current = []
            current.append(i)
    if current:
        chunks.append(current)
    return [sorted(chunk) for chunk in chunks]


def peak_rss_bytes() -> int:
    """Peak resident memory of this process plus that of its largest finished child, in bytes (``getrusage``)."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int((own + children) * scale)
