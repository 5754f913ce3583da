"""Loader fuzzing: any annotation content or image bytes either load or raise a named MapoError with the path.

Never a raw ``KeyError``/``TypeError``/``ValueError``/``RecursionError``, never a half-built dataset.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapo_env.data import ImageCache, load_hrbench, load_mme_realworld, load_vstar
from mapo_env.errors import MapoError

from .test_hrbench import HEADER, good_rows, write_tsv
from .test_mme_realworld import entries, write_lite
from .test_vstar import annotation, jpeg_bytes, write_sample

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
VSTAR_KEYS = st.sampled_from(["target_object", "bbox", "question", "options"])
MME_KEYS = st.sampled_from(["Question_id", "Image", "Text", "Answer choices", "Ground truth", "Subtask"])


def load_or_named_error(load, path_text: str) -> None:
    try:
        dataset = load()
    except MapoError as error:
        assert path_text in str(error), error
        return
    for sample in dataset:  # a dataset that loads is whole
        assert sample.options and 0 <= sample.answer_index < len(sample.options)


@SETTINGS
@given(VSTAR_KEYS, JSON_VALUES)
def test_vstar_annotation_values(tmp_path_factory, key: str, value: object) -> None:
    root = tmp_path_factory.mktemp("vstar")
    write_sample(root / "direct_attributes", "sa_1", {**annotation(), key: value}, jpeg_bytes(seed=1))
    load_or_named_error(lambda: load_vstar(root, cache=ImageCache(0)), "sa_1")


@SETTINGS
@given(st.binary(max_size=300))
def test_vstar_annotation_bytes(tmp_path_factory, raw: bytes) -> None:
    root = tmp_path_factory.mktemp("vstar")
    write_sample(root / "direct_attributes", "sa_1", annotation(), jpeg_bytes(seed=1))
    (root / "direct_attributes" / "sa_1.json").write_bytes(raw)
    load_or_named_error(lambda: load_vstar(root, cache=ImageCache(0)), "sa_1")


@SETTINGS
@given(st.binary(max_size=400), st.integers(0, 2000))
def test_vstar_image_bytes(tmp_path_factory, noise: bytes, keep: int) -> None:
    root = tmp_path_factory.mktemp("vstar")
    good = jpeg_bytes(seed=2)
    write_sample(root / "direct_attributes", "sa_1", annotation(), good[:keep] + noise)
    cache = ImageCache(0)

    def load_and_decode():
        dataset = load_vstar(root, cache=cache)
        dataset[0].load_image()
        return dataset

    load_or_named_error(load_and_decode, "sa_1.jpg")


@SETTINGS
@given(MME_KEYS, JSON_VALUES)
def test_mme_entry_values(tmp_path_factory, key: str, value: object) -> None:
    rows = entries()
    rows[0][key] = value
    path = write_lite(tmp_path_factory.mktemp("mme"), json.dumps(rows))
    load_or_named_error(lambda: load_mme_realworld(path, cache=ImageCache(0)), "MME-RealWorld-Lite.json")


@SETTINGS
@given(st.sampled_from(HEADER), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12))
def test_hrbench_cells(tmp_path_factory, column: str, value: str) -> None:
    rows = good_rows()
    rows[1][HEADER.index(column)] = value
    path = write_tsv(tmp_path_factory.mktemp("hr") / "hr.tsv", rows)
    load_or_named_error(lambda: load_hrbench(path, cache=ImageCache(0)), "hr.tsv")


@SETTINGS
@given(st.binary(max_size=300))
def test_hrbench_bytes(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("hr") / "hr.tsv"
    path.write_bytes(b"\t".join(h.encode() for h in HEADER) + b"\n" + raw)
    load_or_named_error(lambda: load_hrbench(path, cache=ImageCache(0)), "hr.tsv")
