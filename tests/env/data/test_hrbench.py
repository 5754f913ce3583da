"""HR-Bench TSV loader, on small synthetic files written in the real format (tab-separated, base64 images)."""

from __future__ import annotations

import base64
import csv
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mapo_env.data import ImageCache, load_hrbench
from mapo_env.errors import ConfigError, CorruptSampleError, DatasetNotFound, ImageTooLargeError

HEADER = ["index", "question", "answer", "category", "A", "B", "C", "D", "cycle_category", "image"]


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_b64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_tsv(path: Path, rows: list[list[str]], header: list[str] = HEADER, newline: str = "\n") -> Path:
    """Write as ``pandas.DataFrame.to_csv(sep="\\t")`` does: minimal quoting with doubled quotes."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def good_rows() -> list[list[str]]:
    return [
        [
            "0",
            'What colour is the "STOP" sign?\nLook closely.',
            "B",
            "single",
            "red",
            "blue",
            "green",
            "white",
            "q0",
            png_b64(noise(30, 20, seed=0)),
        ],  # fmt: skip
        ["1", "Is the car left of the tree?", "A", "cross", "yes", "no", "", "", "q1", png_b64(noise(16, 12, seed=1))],
        ["2", "Same picture, other question?", "D", "single", "w", "x", "y", "z", "q0", "0"],  # image of row 0
    ]


@pytest.fixture(params=["\n", "\r\n"], ids=["lf", "crlf"])
def tsv(tmp_path, request) -> Path:
    return write_tsv(tmp_path / "hr_bench_4k.tsv", good_rows(), newline=request.param)


def test_parses_rows(tsv):
    dataset = load_hrbench(tsv, cache=ImageCache(0))
    assert dataset.name == "hr_bench_4k" and len(dataset) == 3
    first, second, third = dataset[0], dataset[1], dataset[2]
    assert first.sample_id == "hr_bench_4k-0"
    assert first.question == 'What colour is the "STOP" sign?\nLook closely.'
    assert first.options == ("red", "blue", "green", "white") and first.answer == "blue"
    assert first.category == "single" and first.targets == () and first.image_size == (30, 20)
    assert first.metadata["cycle_category"] == "q0" and first.metadata["option_letters"] == ("A", "B", "C", "D")
    assert second.options == ("yes", "no") and second.answer_index == 0 and second.category == "cross"
    assert second.image_size == (16, 12)
    assert third.answer == "z" and third.image_size == (30, 20) and third.metadata["image_from_index"] == 0


def test_images_decode_lazily_once(tsv):
    cache = ImageCache(2**20)
    dataset = load_hrbench(tsv, cache=cache)
    assert cache.stats().misses == 0  # nothing decoded at load time
    first = dataset[0].load_image()
    np.testing.assert_array_equal(first, noise(30, 20, seed=0))
    assert not first.flags.writeable
    assert dataset[2].load_image() is first  # the referencing row shares the cached image
    np.testing.assert_array_equal(dataset[1].load_image(), noise(16, 12, seed=1))
    stats = cache.stats()
    assert (stats.misses, stats.hits) == (2, 1)


def test_images_are_read_back_from_the_file(tsv):
    dataset = load_hrbench(tsv, cache=ImageCache(0))
    tsv.write_bytes(tsv.read_bytes().replace(b"STOP", b"ST0P"))  # same length, same offsets
    np.testing.assert_array_equal(dataset[0].load_image(), noise(30, 20, seed=0))
    np.testing.assert_array_equal(dataset[1].load_image(), noise(16, 12, seed=1))  # the row after a quoted one


def test_large_base64_cells_and_late_headers(tmp_path):
    big = noise(400, 300, seed=5)  # ~360 KB PNG: above csv's default 128 KiB field limit
    jpeg = io.BytesIO()
    Image.fromarray(noise(50, 40)).save(jpeg, "JPEG", icc_profile=b"\x00" * 150_000)  # SOF after ~150 KB
    rows = [
        ["0", "q?", "A", "single", "a", "b", "", "", "", png_b64(big)],
        ["1", "q?", "B", "single", "a", "b", "", "", "", base64.b64encode(jpeg.getvalue()).decode()],
    ]
    dataset = load_hrbench(write_tsv(tmp_path / "x.tsv", rows), cache=ImageCache(0))
    assert dataset[0].image_size == (400, 300) and dataset[1].image_size == (50, 40)
    np.testing.assert_array_equal(dataset[0].load_image(), big)
    assert dataset[1].load_image().shape == (40, 50, 3)


def test_folder_and_resolution(tmp_path):
    write_tsv(tmp_path / "hr_bench_4k.tsv", good_rows()[:1])
    write_tsv(tmp_path / "hr_bench_8k.tsv", good_rows()[:2])
    assert len(load_hrbench(tmp_path)) == 1
    assert len(load_hrbench(tmp_path, resolution="8K")) == 2
    with pytest.raises(ConfigError, match="16k"):
        load_hrbench(tmp_path, resolution="16k")
    (tmp_path / "hr_bench_8k.tsv").unlink()
    with pytest.raises(DatasetNotFound, match=r"hr_bench_8k\.tsv"):
        load_hrbench(tmp_path, resolution="8k")
    with pytest.raises(DatasetNotFound, match="nope"):
        load_hrbench(tmp_path / "nope.tsv")


def test_missing_column(tmp_path):
    header = [c for c in HEADER if c != "answer"]
    rows = [[c for i, c in enumerate(r) if HEADER[i] != "answer"] for r in good_rows()]
    path = write_tsv(tmp_path / "x.tsv", rows, header)
    with pytest.raises(CorruptSampleError, match=r"(?s)\['answer'\].*x\.tsv"):
        load_hrbench(path)


def corrupt(tmp_path: Path, row: int, column: str, value: str) -> Path:
    rows = good_rows()
    rows[row][HEADER.index(column)] = value
    return write_tsv(tmp_path / "bad.tsv", rows)


@pytest.mark.parametrize(
    "row, column, value, message",
    [
        (1, "answer", "E", "'answer' must be the letter"),
        (1, "answer", "C", "'answer' must be the letter"),  # C is empty in that row
        (1, "answer", "", "'answer' must be the letter"),
        (1, "index", "one", "'index' must be an integer"),
        (1, "index", "0", "duplicate index"),
        (1, "question", "  ", "'question' is empty"),
        (1, "B", "", "at least 2 non-empty option"),
        (1, "category", "", "'category' is empty"),
        (2, "image", "7", "neither base64 nor the index"),
    ],
)
def test_bad_rows_name_path_and_row(tmp_path, row, column, value, message):
    path = corrupt(tmp_path, row, column, value)
    with pytest.raises(CorruptSampleError, match=rf"(?s)data row {row + 1} \(line \d+\).*{message}.*bad\.tsv"):
        load_hrbench(path)


def test_lowercase_answer_letter_is_accepted(tmp_path):
    assert load_hrbench(corrupt(tmp_path, 0, "answer", " c "))[0].answer == "green"


def test_wrong_cell_count(tmp_path):
    path = tmp_path / "bad.tsv"
    write_tsv(path, good_rows())
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("3\tq\tA\tsingle\ta\n")
    with pytest.raises(CorruptSampleError, match=r"data row 4 .*expected 10 tab-separated cells, got 5"):
        load_hrbench(path)


def test_invalid_base64_fails_at_load(tmp_path):
    path = corrupt(tmp_path, 1, "image", "!" * 100)
    with pytest.raises(CorruptSampleError, match=r"(?s)invalid base64.*bad\.tsv \(data row 2"):
        load_hrbench(path)


def test_non_image_payload_fails_at_load(tmp_path):
    path = corrupt(tmp_path, 1, "image", base64.b64encode(b"plain text, no image" * 10).decode())
    with pytest.raises(CorruptSampleError, match=r"data row 2"):
        load_hrbench(path)


def test_truncated_image_fails_on_decode_with_row(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buffer, "PNG")
    cut = base64.b64encode(buffer.getvalue()[: len(buffer.getvalue()) // 2]).decode()
    dataset = load_hrbench(corrupt(tmp_path, 1, "image", cut), cache=ImageCache(0))
    with pytest.raises(CorruptSampleError, match=r"(?s)bad\.tsv \(data row 2"):
        dataset[1].load_image()


def test_decompression_bomb_in_base64(tmp_path):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path = corrupt(tmp_path, 1, "image", base64.b64encode(bomb).decode())
    with pytest.raises(ImageTooLargeError, match=r"data row 2"):
        load_hrbench(path)


def test_empty_and_header_only_files(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(DatasetNotFound, match="empty"):
        load_hrbench(empty)
    with pytest.raises(DatasetNotFound, match="no data row"):
        load_hrbench(write_tsv(tmp_path / "head.tsv", []))


def test_two_files_do_not_share_cache_entries(tmp_path):
    cache = ImageCache(2**20)
    a = load_hrbench(write_tsv(tmp_path / "a.tsv", good_rows()), cache=cache)
    rows = good_rows()
    rows[0][-1] = png_b64(noise(30, 20, seed=9))
    b = load_hrbench(write_tsv(tmp_path / "b.tsv", rows), cache=cache)
    assert not np.array_equal(a[0].load_image(), b[0].load_image())
