"""HR-Bench ``index`` policy: one spelling per number (ASCII digits, no sign, no leading zero), checked cleanly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapo_env.data import ImageCache, load_hrbench
from mapo_env.errors import CorruptSampleError

from .test_hrbench import good_rows, write_tsv

CANONICAL = re.compile(r"0|[1-9][0-9]{0,17}")


def with_index(tmp_path: Path, index: str, other: str = "1") -> Path:
    rows = good_rows()[:2]
    rows[0][0], rows[1][0] = index, other
    return write_tsv(tmp_path / "idx.tsv", rows)


@pytest.mark.parametrize("index", ["²", "٣", "1²", "-0", "00", "007", "-1", "+1", "1.0", "1e3", "0x1", " ", "1 2"])
def test_non_canonical_indices_are_refused_by_row(tmp_path: Path, index: str) -> None:
    with pytest.raises(CorruptSampleError, match=r"data row 1 \(line \d+\): 'index' must be an integer.*idx\.tsv"):
        load_hrbench(with_index(tmp_path, index), cache=ImageCache(0))


@pytest.mark.parametrize("spellings", [("0", "00"), ("0", "-0"), ("7", "07")])
def test_two_spellings_of_one_number_cannot_both_load(tmp_path: Path, spellings: tuple[str, str]) -> None:
    with pytest.raises(CorruptSampleError, match="index"):
        load_hrbench(with_index(tmp_path, *spellings), cache=ImageCache(0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(codec="utf-8", exclude_characters='\t\n\r"\x00'), min_size=1, max_size=6))
def test_any_index_loads_iff_canonical(tmp_path: Path, index: str) -> None:
    path = with_index(tmp_path, index, other="999")
    canonical = CANONICAL.fullmatch(index.strip()) is not None and index.strip() != "999"
    try:
        dataset = load_hrbench(path, cache=ImageCache(0))
    except CorruptSampleError as error:
        assert not canonical, error
        return
    assert canonical
    assert dataset[0].metadata["index"] == int(index.strip())
