"""One text policy for every loader: UTF-8, a BOM accepted, anything else refused with the path.

Also the annotation classes of the report: JSON nested 100,000 deep, 5,000-digit integers, NaN, and
more than 26 options, each refused at load with the path (V*, MME-RealWorld, HR-Bench).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapo_env.data import ImageCache, load_hrbench, load_mme_realworld, load_vstar
from mapo_env.data.io import decode_text, parse_json
from mapo_env.errors import CorruptSampleError

from .test_hrbench import good_rows, write_tsv
from .test_mme_realworld import entries, write_lite
from .test_vstar import annotation, jpeg_bytes, write_sample

BOM = b"\xef\xbb\xbf"


def vstar_with(tmp_path: Path, raw: bytes) -> Path:
    root = tmp_path / "vstar"
    write_sample(root / "direct_attributes", "sa_1", annotation(), jpeg_bytes(seed=1))
    (root / "direct_attributes" / "sa_1.json").write_bytes(raw)
    return root


def load_vstar_bytes(tmp_path: Path, raw: bytes):
    return load_vstar(vstar_with(tmp_path, raw), cache=ImageCache(0))


def load_mme_bytes(tmp_path: Path, raw: bytes):
    path = write_lite(tmp_path / "mme")
    path.write_bytes(raw)
    return load_mme_realworld(path, cache=ImageCache(0))


def load_hrbench_bytes(tmp_path: Path, raw: bytes):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hr.tsv"
    path.write_bytes(raw)
    return load_hrbench(path, cache=ImageCache(0))


def vstar_json(**change) -> bytes:
    return json.dumps({**annotation(), **change}, ensure_ascii=False).encode("utf-8")


def mme_json(**change) -> bytes:
    rows = entries()
    rows[0].update(change)
    return json.dumps(rows, ensure_ascii=False).encode("utf-8")


def hrbench_tsv(tmp_path: Path, question: str = "Is it red?", index: str = "1") -> bytes:
    rows = good_rows()
    rows[1][0], rows[1][1] = index, question
    return write_tsv(tmp_path / "base.tsv", rows).read_bytes()


LOADERS = ["vstar", "mme", "hrbench"]


def good_bytes(kind: str, tmp_path: Path, text: str = "Qué color? 颜色") -> bytes:
    if kind == "vstar":
        return vstar_json(question=text)
    if kind == "mme":
        return mme_json(Text=text)
    return hrbench_tsv(tmp_path, question=text)


def load(kind: str, tmp_path: Path, raw: bytes):
    return {"vstar": load_vstar_bytes, "mme": load_mme_bytes, "hrbench": load_hrbench_bytes}[kind](tmp_path, raw)


@pytest.mark.parametrize("kind", LOADERS)
def test_utf8_with_and_without_bom_loads_the_same(kind: str, tmp_path: Path) -> None:
    plain = load(kind, tmp_path / "plain", good_bytes(kind, tmp_path))
    with_bom = load(kind, tmp_path / "bom", BOM + good_bytes(kind, tmp_path))
    assert [s.question for s in plain] == [s.question for s in with_bom]
    assert any("颜色" in s.question for s in plain)


@pytest.mark.parametrize("kind", LOADERS)
@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16"])
def test_other_encodings_are_refused_with_the_path(kind: str, encoding: str, tmp_path: Path) -> None:
    raw = good_bytes(kind, tmp_path, text="Qué colour é?").decode("utf-8").encode(encoding)
    with pytest.raises(CorruptSampleError, match=r"not UTF-8.*offset \d+.*\[path: .*(json|tsv)"):
        load(kind, tmp_path, raw)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_decode_text_accepts_exactly_utf8(data: bytes) -> None:
    try:
        expected = data.decode("utf-8")
    except UnicodeDecodeError:
        with pytest.raises(CorruptSampleError, match="not UTF-8"):
            decode_text(data, "f.txt")
        return
    assert decode_text(data, "f.txt") == expected.removeprefix("\ufeff")


@pytest.mark.parametrize(
    "text, match",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a": ' + "9" * 5000 + "}", "5,000 digits"),
        ('{"a": -' + "9" * 31 + "}", "31 digits"),
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": 1e400}', "overflows"),
        ("{", "cannot parse"),
    ],
)
def test_parse_json_refuses_hostile_json_with_the_source(text: str, match: str) -> None:
    with pytest.raises(CorruptSampleError, match=rf"{match}.*\[path: ann\.json\]"):
        parse_json(text, "ann.json")


@pytest.mark.parametrize("kind", ["vstar", "mme"])
@pytest.mark.parametrize("payload", ["deep", "huge_int"])
def test_loaders_refuse_hostile_json_with_the_path(kind: str, payload: str, tmp_path: Path) -> None:
    raw = ("[" * 100_000 if payload == "deep" else '{"a": ' + "1" * 5000 + "}").encode()
    with pytest.raises(CorruptSampleError, match=r"cannot parse the JSON.*\[path: .*json"):
        load(kind, tmp_path, raw)


def test_more_than_26_options_are_refused_at_load(tmp_path: Path) -> None:
    options = [f"option {i}" for i in range(27)]
    with pytest.raises(CorruptSampleError, match=r"at most 26.*sa_1\.json"):
        load_vstar_bytes(tmp_path / "v", vstar_json(options=options))
    with pytest.raises(CorruptSampleError, match=r"2 to 26 strings.*MME-RealWorld-Lite\.json"):
        load_mme_bytes(tmp_path / "m", mme_json(**{"Answer choices": options}))
    exactly_26 = load_vstar_bytes(tmp_path / "ok", vstar_json(options=options[:26]))
    assert len(exactly_26[0].options) == 26
