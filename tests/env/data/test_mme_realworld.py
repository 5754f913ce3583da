"""MME-RealWorld(-Lite) loader, on small synthetic files written in the real JSON format."""

from __future__ import annotations

import copy
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mapo_env.data import ImageCache, load_mme_realworld
from mapo_env.errors import CorruptSampleError, DatasetNotFound, ImageTooLargeError, UnsafePathError


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, "PNG")


def entries() -> list[dict]:
    """Three entries shaped like the benchmark's ``output_test_template.json``; two share an image."""
    return [
        {
            "Question_id": "perception/ocr_cc/book_map_poster/0913",
            "Image": "poster.png",
            "Text": "What dish does the chart correspond to?",
            "Question Type": "Multiple Choice",
            "Answer choices": ["(A) Ribs", "(B) Haw Flakes", "(C) Chili", "(D) Inasal", "(E) Not featured."],
            "Ground truth": "B",
            "Category": "book_map_poster",
            "Subtask": "OCR with Complex Context",
            "Task": "Perception",
        },
        {
            "Question_id": "perception/monitoring/Vehicle/counting/0310",
            "Image": "poster.png",
            "Text": "What is the number of buses in the image?",
            "Question type": "Multiple Choice",
            "Answer choices": ["(A) 13", "(B) 90", "(C) 77", "(D) 6", "(E) The image does not feature the buses"],
            "Ground truth": "E",
            "Category": "Vehicle/counting",
            "Subtask": "Monitoring",
            "Task": "Perception",
            "Dataset": "VisDrone",
        },
        {
            "Question_id": "reasoning/diagram_and_table/diagram/0020",
            "Image": "street.png",
            "Text": "Which category is highest?",
            "Answer choices": ["(A) Boats", "(B) Jet Skis"],
            "Ground truth": "A",
            "Category": "diagram",
            "Subtask": "Diagram and Table",
            "Task": "Reasoning",
        },
    ]


def write_lite(folder: Path, data: list | dict | str | None = None) -> Path:
    """The Lite ``data.zip`` layout: ``MME-RealWorld-Lite.json`` + ``imgs/<file>``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_png(folder / "imgs" / "poster.png", noise(40, 30, seed=1))
    save_png(folder / "imgs" / "street.png", noise(24, 18, seed=2))
    data = entries() if data is None else data
    path = folder / "MME-RealWorld-Lite.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_parses_entries(tmp_path):
    dataset = load_mme_realworld(write_lite(tmp_path / "data"), cache=ImageCache(0))
    assert dataset.name == "MME-RealWorld-Lite" and len(dataset) == 3
    first, second, third = dataset[0], dataset[1], dataset[2]
    assert first.sample_id == "perception/ocr_cc/book_map_poster/0913"
    assert first.question == "What dish does the chart correspond to?"
    assert first.options == ("Ribs", "Haw Flakes", "Chili", "Inasal", "Not featured.")
    assert first.answer == "Haw Flakes" and first.answer_index == 1
    assert first.category == "OCR with Complex Context" and first.targets == ()
    assert first.metadata["task"] == "Perception" and first.metadata["mme_category"] == "book_map_poster"
    assert first.metadata["option_letters"] == ("A", "B", "C", "D", "E")
    assert first.image_size == (40, 30)
    assert second.answer == "The image does not feature the buses" and second.metadata["dataset"] == "VisDrone"
    assert third.options == ("Boats", "Jet Skis") and third.answer_index == 0 and third.image_size == (24, 18)


def test_images_decode_lazily_and_are_shared(tmp_path):
    cache = ImageCache(2**20)
    dataset = load_mme_realworld(write_lite(tmp_path), cache=cache)
    assert cache.stats().misses == 0
    image = dataset[0].load_image()
    np.testing.assert_array_equal(image, noise(40, 30, seed=1))
    assert dataset[1].load_image() is image  # same file, one decode
    np.testing.assert_array_equal(dataset[2].load_image(), noise(24, 18, seed=2))
    assert (cache.stats().misses, cache.stats().hits) == (2, 1)


def test_folder_path_and_jsonl(tmp_path):
    write_lite(tmp_path)
    assert len(load_mme_realworld(tmp_path)) == 3
    lines = tmp_path / "subset.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in entries()[:2]) + "\n")
    assert [s.category for s in load_mme_realworld(lines)] == ["OCR with Complex Context", "Monitoring"]


def test_full_layout_with_subfolders_and_explicit_root(tmp_path):
    data = entries()
    data[0]["Image"] = data[1]["Image"] = "monitoring_images/9999998_00382.png"
    data[2]["Image"] = "diagram_and_table/cons9.png"
    save_png(tmp_path / "monitoring_images" / "9999998_00382.png", noise(8, 8))
    save_png(tmp_path / "diagram_and_table" / "cons9.png", noise(9, 7))
    json_path = tmp_path / "MME_RealWorld.json"
    json_path.write_text(json.dumps(data))
    assert load_mme_realworld(json_path)[2].image_size == (9, 7)  # default root: the JSON's folder
    moved = tmp_path / "annotations" / "MME_RealWorld.json"
    moved.parent.mkdir()
    json_path.rename(moved)
    with pytest.raises(DatasetNotFound, match="monitoring_images"):
        load_mme_realworld(moved)
    assert load_mme_realworld(moved, image_root=tmp_path)[0].image_size == (8, 8)


@pytest.mark.parametrize("truth, expected", [("C", 2), (" (C) ", 2), ("Chili", 2), ("(C) Chili", 2), ("e", None)])
def test_ground_truth_forms(tmp_path, truth, expected):
    data = entries()
    data[0]["Ground truth"] = truth
    path = write_lite(tmp_path, data)
    if expected is None:
        with pytest.raises(CorruptSampleError, match=r"entry 1: 'Ground truth'"):
            load_mme_realworld(path)
    else:
        assert load_mme_realworld(path)[0].answer_index == expected


def test_unprefixed_choices_get_positional_letters(tmp_path):
    data = entries()
    data[2]["Answer choices"] = ["Boats", "Jet Skis"]
    data[2]["Ground truth"] = "B"
    assert load_mme_realworld(write_lite(tmp_path, data))[2].answer == "Jet Skis"


def broken(change: dict, index: int = 1, drop: str | None = None) -> list[dict]:
    data = copy.deepcopy(entries())
    data[index].update(change)
    if drop:
        del data[index][drop]
    return data


@pytest.mark.parametrize(
    "data, message",
    [
        (broken({}, drop="Ground truth"), r"entry 2: missing key\(s\) \['Ground truth'\]"),
        (broken({}, drop="Subtask"), r"entry 2: missing key\(s\) \['Subtask'\]"),
        (broken({"Ground truth": "F"}), r"entry 2: 'Ground truth' must be one of"),
        (broken({"Ground truth": 3}), r"entry 2: 'Ground truth'"),
        (broken({"Answer choices": ["(A) x"]}), r"entry 2: 'Answer choices' must be a list of 2 to 26"),
        (broken({"Answer choices": "(A) x (B) y"}), r"entry 2: 'Answer choices' must be a list"),
        (broken({"Answer choices": ["(B) x", "(A) y"]}), r"entry 2: 'Answer choices' letters must run"),
        (broken({"Answer choices": ["(A) x", "y"]}), r"entry 2: 'Answer choices' mix"),
        (broken({"Answer choices": ["(A) x", "(B) "]}), r"entry 2: 'Answer choices' has an empty option"),
        (broken({"Text": ""}), r"entry 2: 'Text' must be a non-empty string"),
        (broken({"Question_id": None}), r"entry 2: 'Question_id'"),
        (entries()[:1] + ["not an object"], r"entry 2: expected a JSON object"),
        ({"questions": []}, r"expected a JSON list"),
        ("[{]", r"cannot parse"),
    ],
)
def test_bad_entries_name_path_and_entry(tmp_path, data, message):
    with pytest.raises(CorruptSampleError, match=rf"(?s){message}.*MME-RealWorld-Lite\.json"):
        load_mme_realworld(write_lite(tmp_path, data))


@pytest.mark.parametrize("image", ["../outside.png", "imgs/../../outside.png"])
def test_image_path_escaping_root(tmp_path, image):
    save_png(tmp_path / "outside.png", noise(4, 4))
    with pytest.raises(UnsafePathError, match="outside.png"):
        load_mme_realworld(write_lite(tmp_path / "data", broken({"Image": image})))


def test_absolute_image_path(tmp_path):
    save_png(tmp_path / "outside.png", noise(4, 4))
    with pytest.raises(UnsafePathError, match="absolute"):
        load_mme_realworld(write_lite(tmp_path / "data", broken({"Image": str(tmp_path / "outside.png")})))


def test_symlinked_image_pointing_out(tmp_path):
    save_png(tmp_path / "outside.png", noise(4, 4))
    path = write_lite(tmp_path / "data")
    link = tmp_path / "data" / "imgs" / "street.png"
    link.unlink()
    link.symlink_to(tmp_path / "outside.png")
    with pytest.raises(UnsafePathError, match="outside.png"):
        load_mme_realworld(path)


def test_missing_image_and_missing_json(tmp_path):
    path = write_lite(tmp_path)
    (tmp_path / "imgs" / "street.png").unlink()
    with pytest.raises(DatasetNotFound, match=r"street\.png"):
        load_mme_realworld(path)
    with pytest.raises(DatasetNotFound, match=r"JSON not found.*elsewhere\.json"):
        load_mme_realworld(tmp_path / "elsewhere.json")
    path.unlink()
    with pytest.raises(DatasetNotFound, match="expected one of"):
        load_mme_realworld(tmp_path)
    with pytest.raises(DatasetNotFound, match="holds no entry"):
        load_mme_realworld(write_lite(tmp_path, []))


def test_corrupt_and_oversized_images(tmp_path):
    path = write_lite(tmp_path)
    (tmp_path / "imgs" / "street.png").write_bytes(b"not a png at all")
    with pytest.raises(CorruptSampleError, match=r"street\.png"):
        load_mme_realworld(path)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "imgs" / "street.png").write_bytes(bomb)
    with pytest.raises(ImageTooLargeError, match=r"street\.png"):
        load_mme_realworld(path)


def test_truncated_image_fails_on_decode(tmp_path):
    path = write_lite(tmp_path)
    buffer = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(buffer, "PNG")
    (tmp_path / "imgs" / "street.png").write_bytes(buffer.getvalue()[:200])
    dataset = load_mme_realworld(path, cache=ImageCache(0))
    with pytest.raises(CorruptSampleError, match=r"street\.png"):
        dataset[2].load_image()
