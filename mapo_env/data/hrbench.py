"""Loader for the real HR-Bench 4K / 8K TSV files (HF dataset ``DreamMr/HR-Bench``).

Format (the VLMEvalKit multiple-choice TSV, which HR-Bench ships as ``hr_bench_4k.tsv`` and
``hr_bench_8k.tsv``, 800 rows each): a tab-separated file with a header row and the columns

==================  ======================================================================
``index``           integer row id (unique)
``question``        question text, without options
``answer``          the correct option's letter (``"A"`` ... ``"D"``)
``category``        ``"single"`` (single-instance) or ``"cross"`` (cross-instance perception)
``A`` ``B`` ``C``   option texts (``D`` too in the real files; an empty cell means no option)
``D``
``cycle_category``  groups the circular option permutations of one question (optional here)
``image``           the image as base64 (JPEG/PNG bytes); a cell of at most 64 characters is
                    instead the ``index`` of another row whose image it shares (VLMEvalKit rule)
==================  ======================================================================

Sources for these names: the dataset card of the HF mirror ``ohjoonhee/HR-Bench`` (features
``index, question, answer, category, A, B, C, D, cycle_category, image``; splits ``hrbench_4k`` and
``hrbench_8k`` of 800 rows), the file list of ``DreamMr/HR-Bench`` (``hr_bench_4k.tsv``,
``hr_bench_8k.tsv``), lmms-eval ``tasks/hrbench`` (``doc["image"]`` base64-decoded; metrics keyed
by ``category`` values ``single`` / ``cross``; ``cycle_category`` used for averaging) and the
HR-Bench authors' VLMEvalKit fork (``line['answer']`` is a letter, options are the A-Z columns
that are present and not empty).

The file is read once, line by line in binary: a line without a ``"`` is split on tabs directly,
a line with one goes through :mod:`csv` (tab delimiter, ``"`` quoting with doubled quotes as
pandas writes it, field size limit raised for the multi-megabyte base64 cells), so quoted
questions spanning lines parse as pandas would read them. Each row is validated at load time
(missing column, bad index (ASCII digits, no sign or leading zero: ``"²"``, ``"-0"`` and ``"00"`` are
refused), text that is not UTF-8 (:func:`~mapo_env.data.io.decode_text`), missing question, answer
letter not among the row's options, fewer than 2 options, bad base64, unreadable image header, image
above ``max_image_pixels``), raising
:class:`~mapo_env.errors.CorruptSampleError` with the path, the data row number and the line. Only
the byte offset of each row is kept: on first use an image is re-read from the file, decoded,
and cached (the 8K file is 4.6 GB; it is never held in memory).
"""

from __future__ import annotations

import csv
import functools
import itertools
import logging
import os
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mapo_env.data.base import ListDataset
from mapo_env.data.io import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageCache,
    b64decode_strict,
    cached_image_loader,
    decode_image_bytes,
    decode_text,
    probe_image_bytes,
)
from mapo_env.errors import ConfigError, CorruptSampleError, DatasetNotFound, ImageTooLargeError
from mapo_env.types import VQASample

logger = logging.getLogger(__name__)

HRBENCH_FILES = {"4k": "hr_bench_4k.tsv", "8k": "hr_bench_8k.tsv"}
"""File name of each resolution inside the dataset folder."""

REQUIRED_COLUMNS = ("index", "question", "answer", "category", "A", "B", "image")
"""Columns every HR-Bench TSV must have (``C``, ``D``, ``cycle_category`` are optional)."""

_INDEX_RE = re.compile(r"0|[1-9][0-9]{0,17}")
"""An index as VLMEvalKit writes it: one spelling per number, so "0", "00" and "-0" cannot all be rows."""
_FIELD_SIZE_LIMIT = 2**31 - 1
_IMAGE_REF_MAX_CHARS = 64  # VLMEvalKit: an image cell this short names another row's index
_READ_BUFFER = 1 << 20  # long lines: a 1 MiB buffer halves readline time against the 8 KiB default
_PROBE_CHARS = 1 << 16  # base64 characters decoded to read an image header at load time


def load_hrbench(
    path: str | os.PathLike[str],
    resolution: str = "4k",
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    cache: ImageCache | None = None,
) -> ListDataset:
    """Load HR-Bench from its TSV file.

    Args:
        path: A ``.tsv`` file, or a folder holding ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv``.
        resolution: ``"4k"`` or ``"8k"``: which file to read when ``path`` is a folder.
        max_image_pixels: Refuse images whose header declares more pixels than this (8K images are
            7680 x 4320 = 33.2 MP, within the 64 MP default).
        cache: Image cache for the lazy decoders (default: the process-wide one).

    Returns:
        A :class:`ListDataset` named after the file stem (``"hr_bench_4k"``), rows in file order;
        sample ids ``"<stem>-<index>"``, ``category`` from the ``category`` column, ``targets=()``
        (HR-Bench has no boxes), ``metadata`` with ``index``, ``option_letters``, ``cycle_category``
        (when present), ``source`` and ``row``.

    Raises:
        ConfigError: ``resolution`` is not ``"4k"`` or ``"8k"``.
        DatasetNotFound: The file (or the folder's file for ``resolution``) does not exist, or holds no row.
        CorruptSampleError: A malformed header, row or image (message: path, row and line).
        ImageTooLargeError: An image declares more than ``max_image_pixels`` pixels.
    """
    tsv = _resolve_tsv(Path(path), resolution)
    rows = _scan(tsv, max_image_pixels)
    if not rows:
        raise DatasetNotFound("HR-Bench TSV holds a header but no data row", path=tsv)
    key_base = ("hrbench", str(tsv.resolve()), tsv.stat().st_size, tsv.stat().st_mtime_ns)
    samples = [_to_sample(tsv, row, rows, key_base, max_image_pixels, cache) for row in rows.values()]
    return ListDataset(tsv.stem, samples)


def _resolve_tsv(path: Path, resolution: str) -> Path:
    key = str(resolution).strip().lower()
    if key not in HRBENCH_FILES:
        raise ConfigError(f"resolution must be one of {sorted(HRBENCH_FILES)}, got {resolution!r}")
    if path.is_dir():
        tsv = path / HRBENCH_FILES[key]
        if not tsv.is_file():
            present = sorted(p.name for p in path.glob("*.tsv"))
            raise DatasetNotFound(
                f"expected {HRBENCH_FILES[key]} for resolution={resolution!r} in the folder; found .tsv files "
                f"{present}; download it from the HF dataset DreamMr/HR-Bench",
                path=tsv,
            )
        return tsv
    if not path.is_file():
        raise DatasetNotFound("HR-Bench TSV not found; pass the .tsv file or the folder holding it", path=path)
    return path


# --------------------------------------------------------------------------------------------------
# scanning


@dataclass(frozen=True)
class _Row:
    """What is kept of one valid row: the texts, and where to find its image later."""

    number: int  # 1-based data row
    line: int  # physical line where the row ends
    index: str
    question: str
    options: tuple[str, ...]
    letters: tuple[str, ...]
    answer_index: int
    category: str
    cycle_category: str | None
    image_offset: int  # byte offset of the row holding the image (itself or the referenced row)
    image_ref: str | None  # the referenced index when the image cell is a reference
    image_size: tuple[int, int]


@dataclass(frozen=True)
class _Where:
    """A data row's position, for error messages."""

    tsv: Path
    number: int
    line: int

    @property
    def source(self) -> str:
        """How image errors name the row: ``"<file> (data row N, line L)"``."""
        return f"{self.tsv} (data row {self.number}, line {self.line})"

    def error(self, message: str) -> CorruptSampleError:
        """A :class:`CorruptSampleError` for this row (path: the TSV; message: row, line and ``message``)."""
        return CorruptSampleError(f"data row {self.number} (line {self.line}): {message}", path=self.tsv)


class _RecordReader:
    """Reads TSV records from a binary file, knowing the byte offset where each record starts.

    A line without a ``"`` is split on tabs directly (fast: the multi-megabyte base64 cell is never
    walked character by character). A line with a quote goes through :mod:`csv`, which pulls further
    lines while a quoted cell (e.g. a question with a newline) is open; ``csv.reader`` never reads
    ahead of the record it returns, so the file position stays exact.
    """

    def __init__(self, handle: BinaryIO, tsv: Path) -> None:
        self.handle = handle
        self.tsv = tsv
        self.line_num = 0  # physical lines consumed so far
        csv.field_size_limit(max(csv.field_size_limit(), _FIELD_SIZE_LIMIT))

    def read(self) -> tuple[int, list[str]] | None:
        """``(start offset, cells)`` of the next record, or ``None`` at the end of the file."""
        start = self.handle.tell()
        line = self.handle.readline()
        if not line:
            return None
        self.line_num += 1
        if b'"' not in line:
            cells = line.split(b"\t")
            cells[-1] = cells[-1].rstrip(b"\r\n")
            return start, [self._text(cell) for cell in cells]
        lines = itertools.chain([self._text(line)], self._more_lines())
        try:
            return start, next(csv.reader(lines, delimiter="\t", quotechar='"', doublequote=True, strict=False))
        except csv.Error as exc:
            raise CorruptSampleError(f"cannot parse the TSV near line {self.line_num}: {exc}", path=self.tsv) from exc

    def _more_lines(self) -> Iterator[str]:
        while line := self.handle.readline():
            self.line_num += 1
            yield self._text(line)

    def _text(self, data: bytes) -> str:
        """UTF-8 text with the loaders' one policy (:func:`~mapo_env.data.io.decode_text`); errors name the line."""
        return decode_text(data, f"{self.tsv} (line {self.line_num})")


def _scan(tsv: Path, max_image_pixels: int) -> dict[str, _Row]:
    """Read the whole file once, validating each row and probing each image header."""
    rows: dict[str, _Row] = {}
    refs: list[tuple[int, int, dict[str, str]]] = []
    with open(tsv, "rb", buffering=_READ_BUFFER) as handle:
        reader = _RecordReader(handle, tsv)
        header = _read_header(reader.read(), tsv)
        number = 0
        while (record := reader.read()) is not None:
            start, cells = record
            if not any(c.strip() for c in cells):  # blank line
                continue
            number += 1
            where = _Where(tsv, number, reader.line_num)
            if len(cells) != len(header):
                raise where.error(f"expected {len(header)} tab-separated cells, got {len(cells)}")
            fields = dict(zip(header, cells))
            image = fields["image"].strip()
            if len(image) <= _IMAGE_REF_MAX_CHARS:
                refs.append((number, reader.line_num, fields))
            else:
                size = _probe_base64(image, where, max_image_pixels)
                _add(rows, _parse_row(fields, number, reader.line_num, header, where, start, None, size), where)
    for number, line, fields in refs:
        where = _Where(tsv, number, line)
        target = rows.get(fields["image"].strip())
        if target is None or target.image_ref is not None:
            raise where.error(
                f"image cell {fields['image']!r} is neither base64 nor the index of a row holding an image"
            )
        row = _parse_row(fields, number, line, header, where, target.image_offset, target.index, target.image_size)
        _add(rows, row, where)
    return dict(sorted(rows.items(), key=lambda item: item[1].number))


def _read_header(record: tuple[int, list[str]] | None, tsv: Path) -> list[str]:
    if record is None:
        raise DatasetNotFound("HR-Bench TSV is empty", path=tsv)
    header = [h.strip().lstrip("\ufeff") for h in record[1]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CorruptSampleError(
            f"header row misses the column(s) {missing}; expected at least {list(REQUIRED_COLUMNS)}, got {header}",
            path=tsv,
        )
    return header


def _add(rows: dict[str, _Row], row: _Row, where: _Where) -> None:
    if row.index in rows:
        raise where.error(f"duplicate index {row.index!r} (also data row {rows[row.index].number})")
    rows[row.index] = row


def _parse_row(
    record: dict[str, str],
    number: int,
    line: int,
    header: list[str],
    where: _Where,
    image_offset: int,
    image_ref: str | None,
    image_size: tuple[int, int],
) -> _Row:
    index = record["index"].strip()
    if not _INDEX_RE.fullmatch(index):
        raise where.error(
            f"'index' must be an integer >= 0 in ASCII digits, without sign or leading zeros (e.g. 0, 17), "
            f"got {record['index'][:40]!r}"
        )
    question = record["question"].strip()
    if not question:
        raise where.error("'question' is empty")
    letters = tuple(c for c in header if c in string.ascii_uppercase and record[c].strip())
    if len(letters) < 2:
        raise where.error(f"expected at least 2 non-empty option columns (A, B, ...), got {letters}")
    answer = record["answer"].strip().upper()
    if answer not in letters:
        raise where.error(
            f"'answer' must be the letter of one of this row's options {list(letters)}, got {record['answer']!r}"
        )
    category = record["category"].strip()
    if not category:
        raise where.error("'category' is empty")
    return _Row(
        number=number,
        line=line,
        index=index,
        question=question,
        options=tuple(record[c].strip() for c in letters),
        letters=letters,
        answer_index=letters.index(answer),
        category=category,
        cycle_category=(record.get("cycle_category") or "").strip() or None,
        image_offset=image_offset,
        image_ref=image_ref,
        image_size=image_size,
    )


def _probe_base64(image: str, where: _Where, max_image_pixels: int) -> tuple[int, int]:
    """The image's size from its header, decoding only a prefix of the base64 text when that suffices."""
    if len(image) > _PROBE_CHARS:
        prefix = b64decode_strict(image[:_PROBE_CHARS], where.source)
        try:
            return probe_image_bytes(prefix, where.source, max_image_pixels)
        except ImageTooLargeError:
            raise
        except CorruptSampleError:
            pass  # header not within the prefix (large metadata block): decode it all below
    return probe_image_bytes(b64decode_strict(image, where.source), where.source, max_image_pixels)


# --------------------------------------------------------------------------------------------------
# samples and lazy decoding


def _to_sample(
    tsv: Path, row: _Row, rows: dict[str, _Row], key_base: tuple, max_image_pixels: int, cache: ImageCache | None
) -> VQASample:
    source_row = rows[row.image_ref] if row.image_ref is not None else row
    source = _Where(tsv, source_row.number, source_row.line).source
    decode = functools.partial(_decode_row_image, tsv, row.image_offset, source, max_image_pixels)
    metadata = {"index": int(row.index), "option_letters": row.letters, "source": tsv.name, "row": row.number}
    if row.cycle_category is not None:
        metadata["cycle_category"] = row.cycle_category
    if row.image_ref is not None:
        metadata["image_from_index"] = int(row.image_ref)
    return VQASample(
        sample_id=f"{tsv.stem}-{row.index}",
        question=row.question,
        options=row.options,
        answer_index=row.answer_index,
        category=row.category,
        load_image=cached_image_loader((*key_base, row.image_offset), decode, cache),
        image_size=row.image_size,
        metadata=metadata,
    )


def _decode_row_image(tsv: Path, offset: int, source: str, max_image_pixels: int) -> np.ndarray:
    """Re-read the row starting at byte ``offset`` and decode its ``image`` cell; errors name ``source``."""
    try:
        with open(tsv, "rb", buffering=_READ_BUFFER) as handle:
            reader = _RecordReader(handle, tsv)
            header = _read_header(reader.read(), tsv)
            handle.seek(offset)
            record = reader.read()
    except FileNotFoundError as exc:
        raise DatasetNotFound("HR-Bench TSV disappeared after loading", path=tsv) from exc
    except OSError as exc:
        raise CorruptSampleError(f"cannot re-read the row: {exc}", source) from exc
    cells = record[1] if record is not None else []
    if len(cells) != len(header):
        raise CorruptSampleError("row no longer matches the header (file changed since loading?)", source)
    return decode_image_bytes(b64decode_strict(cells[header.index("image")], source), source, max_image_pixels)
