"""V* Bench loader: the real files (through the ``vstar_dir`` fixture) and corrupt copies built in tmp_path."""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mapo_env.data import ImageCache, load_vstar
from mapo_env.errors import CorruptSampleError, DatasetNotFound, ImageTooLargeError, UnsafePathError

# ------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def real(vstar_dir):
    cache = ImageCache(256 * 2**20)
    return load_vstar(vstar_dir, cache=cache), cache


def raw_annotation(vstar_dir: Path, sample) -> dict:
    return json.loads((vstar_dir / sample.metadata["annotation"]).read_text())


def test_real_counts_and_order(real):
    dataset, _ = real
    assert dataset.name == "vstar" and len(dataset) == 43
    categories = [s.category for s in dataset]
    assert categories.count("direct_attributes") == 25 and categories.count("relative_position") == 18
    keys = [(s.category, s.metadata["image"]) for s in dataset]
    assert keys == sorted(keys)


def test_real_questions_options_and_answer_first(real, vstar_dir):
    dataset, _ = real
    for sample in dataset:
        raw = raw_annotation(vstar_dir, sample)
        assert sample.answer_index == 0 and sample.answer == raw["options"][0]
        assert sample.options == tuple(raw["options"]) and len(sample.options) >= 2
        assert sample.question == raw["question"]
        assert sample.sample_id == Path(sample.metadata["image"]).stem


def test_real_boxes_converted_and_inside_their_images(real, vstar_dir):
    dataset, _ = real
    for sample in dataset:
        raw = raw_annotation(vstar_dir, sample)
        with Image.open(vstar_dir / sample.metadata["image"]) as image:
            assert sample.image_size == image.size
        width, height = sample.image_size
        expected = [(x, y, x + w, y + h) for x, y, w, h in raw["bbox"]]
        assert [t.bbox for t in sample.targets] == expected
        assert [t.name for t in sample.targets] == raw["target_object"][: len(raw["bbox"])]
        assert sample.objects == sample.targets
        for x1, y1, x2, y2 in expected:
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


def test_real_boxes_complete(real):
    dataset, _ = real
    incomplete = [s for s in dataset if not s.metadata["boxes_complete"]]
    assert len(incomplete) == 6  # SOURCE.md: 6 relative_position samples lack the reference object's box
    assert all(s.category == "relative_position" and len(s.targets) == 1 for s in incomplete)
    assert all(len(s.targets) == 2 for s in dataset if s.category == "relative_position" and s not in incomplete)


def test_real_lazy_decode_and_cache(real, vstar_dir):
    dataset, cache = real
    sample = dataset[0]
    before = cache.stats()
    image = sample.load_image()
    after_first = cache.stats()
    again = sample.load_image()
    after_second = cache.stats()
    assert after_first.misses == before.misses + 1
    assert after_second.hits == after_first.hits + 1 and after_second.misses == after_first.misses
    assert again is image and not image.flags.writeable
    width, height = sample.image_size
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    reference = np.asarray(Image.open(vstar_dir / sample.metadata["image"]).convert("RGB")).astype(int)
    assert np.abs(image.astype(int) - reference).max() <= 1


def test_real_category_selection(vstar_dir):
    only = load_vstar(vstar_dir, categories=["relative_position"], cache=ImageCache(0))
    assert len(only) == 18 and {s.category for s in only} == {"relative_position"}
    direct = load_vstar(vstar_dir / "direct_attributes", cache=ImageCache(0))
    assert len(direct) == 25 and {s.category for s in direct} == {"direct_attributes"}
    with pytest.raises(DatasetNotFound, match="Did you mean 'direct_attributes'"):
        load_vstar(vstar_dir, categories=["direct_attribute"])


def test_real_annotation_only_folder_is_refused(vstar_dir):
    for folder in (vstar_dir / "annotations_all_191", vstar_dir / "annotations_all_191" / "relative_position"):
        with pytest.raises(DatasetNotFound, match="no image"):
            load_vstar(folder)


# ------------------------------------------------------------------ synthetic copies in tmp_path


def jpeg_bytes(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_sample(folder: Path, stem: str, annotation: dict | str, image: bytes | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = annotation if isinstance(annotation, str) else json.dumps(annotation)
    (folder / f"{stem}.json").write_text(text)
    if image is not None:
        (folder / f"{stem}.jpg").write_bytes(image)


def annotation(bbox=((10, 10, 20, 12),), names=("flag",), options=("red", "white")) -> dict:
    return {
        "target_object": list(names),
        "bbox": [list(b) for b in bbox],
        "question": "What is the colour of the flag?",
        "options": list(options),
    }


@pytest.fixture
def mini(tmp_path) -> Path:
    """A valid two-category copy: 2 direct_attributes samples and 1 relative_position sample."""
    root = tmp_path / "vstar"
    write_sample(root / "direct_attributes", "sa_2", annotation(), jpeg_bytes(seed=2))
    write_sample(root / "direct_attributes", "sa_1", annotation(options=("a", "b", "c", "d")), jpeg_bytes(seed=1))
    rel = annotation(bbox=((1, 1, 5, 5),), names=("dog",))
    write_sample(root / "relative_position", "sa_3", rel, jpeg_bytes(seed=3))
    return root


def test_mini_loads_sorted_with_metadata(mini):
    dataset = load_vstar(mini, cache=ImageCache(0))
    assert [s.sample_id for s in dataset] == ["sa_1", "sa_2", "sa_3"]
    first = dataset[0]
    assert first.image_size == (64, 48) and first.options == ("a", "b", "c", "d")
    assert first.targets[0].bbox == (10.0, 10.0, 30.0, 22.0)
    assert first.metadata["annotation"] == "direct_attributes/sa_1.json"
    assert first.metadata["boxes_complete"] is True
    assert dataset[2].metadata["boxes_complete"] is False  # relative_position with one box


def test_fewer_boxes_than_names_is_incomplete(mini):
    write_sample(mini / "direct_attributes", "sa_4", annotation(names=("flag", "pole")), jpeg_bytes())
    sample = next(s for s in load_vstar(mini, cache=ImageCache(0)) if s.sample_id == "sa_4")
    assert sample.metadata["boxes_complete"] is False and len(sample.targets) == 1


def test_image_without_annotation_is_skipped_with_warning(mini, caplog):
    (mini / "direct_attributes" / "stray.jpg").write_bytes(jpeg_bytes())
    (mini / "direct_attributes" / ".DS_Store").write_bytes(b"\x00")
    with caplog.at_level(logging.WARNING, logger="mapo_env.data.vstar"):
        dataset = load_vstar(mini, cache=ImageCache(0))
    assert len(dataset) == 3
    assert "stray.jpg" in caplog.text and ".DS_Store" not in caplog.text


def test_truncated_jpeg_fails_on_decode_with_path(mini):
    data = jpeg_bytes(seed=1)
    (mini / "direct_attributes" / "sa_1.jpg").write_bytes(data[: len(data) // 2])
    dataset = load_vstar(mini, cache=ImageCache(2**20))  # header intact: loads
    with pytest.raises(CorruptSampleError, match="sa_1.jpg"):
        dataset[0].load_image()


def test_jpeg_truncated_into_its_header_fails_at_load(mini):
    (mini / "direct_attributes" / "sa_1.jpg").write_bytes(jpeg_bytes()[:40])
    with pytest.raises(CorruptSampleError, match="sa_1.jpg"):
        load_vstar(mini)


def test_non_image_bytes_with_jpg_name(mini):
    (mini / "relative_position" / "sa_3.jpg").write_bytes(b"this is text, not a JPEG\n" * 50)
    with pytest.raises(CorruptSampleError, match="sa_3.jpg"):
        load_vstar(mini)


@pytest.mark.parametrize("key", ["target_object", "bbox", "question", "options"])
def test_missing_json_key(mini, key):
    broken = annotation()
    del broken[key]
    write_sample(mini / "direct_attributes", "sa_2", broken)
    with pytest.raises(CorruptSampleError, match=rf"(?s)'{key}'.*sa_2\.json"):
        load_vstar(mini)


@pytest.mark.parametrize(
    "bbox",
    [
        (60, 10, 10, 10),  # x + w = 70 > 64
        (10, 40, 10, 10),  # y + h = 50 > 48
        (-1, 0, 5, 5),
        (0, 0, 0, 5),
    ],
)
def test_box_outside_or_empty(mini, bbox):
    write_sample(mini / "direct_attributes", "sa_2", annotation(bbox=(bbox,)))
    with pytest.raises(CorruptSampleError, match=r"(?s)not inside the 64x48 image.*sa_2\.json"):
        load_vstar(mini)


@pytest.mark.parametrize("box", [[1, 2, 3], [1, 2, 3, "4"], [1, 2, 3, True], [1, 2, 3, float("nan")], "1,2,3,4"])
def test_malformed_box(mini, box):
    broken = annotation()
    broken["bbox"] = [box]
    write_sample(mini / "direct_attributes", "sa_2", json.dumps(broken))
    with pytest.raises(CorruptSampleError, match=r"sa_2\.json"):
        load_vstar(mini)


@pytest.mark.parametrize(
    "change",
    [
        {"options": ["only one"]},
        {"options": ["same", "same"]},
        {"options": ["a", 3]},
        {"question": "   "},
        {"target_object": []},
        {"target_object": "flag"},
        {"bbox": [[1, 1, 2, 2], [3, 3, 2, 2]]},  # more boxes than names
    ],
)
def test_invalid_annotation_values(mini, change):
    write_sample(mini / "direct_attributes", "sa_2", {**annotation(), **change})
    with pytest.raises(CorruptSampleError, match=r"sa_2\.json"):
        load_vstar(mini)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff\xfe"])
def test_unparseable_annotation(mini, text):
    path = mini / "direct_attributes" / "sa_2.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(CorruptSampleError, match=r"sa_2\.json"):
        load_vstar(mini)


def test_missing_image_file(mini):
    (mini / "direct_attributes" / "sa_2.jpg").unlink()
    with pytest.raises(DatasetNotFound, match=r"sa_2\.jpg"):
        load_vstar(mini)


def test_missing_data_dir_and_empty_folder(tmp_path):
    with pytest.raises(DatasetNotFound, match="missing"):
        load_vstar(tmp_path / "missing")
    (tmp_path / "direct_attributes").mkdir()
    with pytest.raises(DatasetNotFound, match="no V\\* sample"):
        load_vstar(tmp_path)


def test_symlinked_image_pointing_out_is_refused(mini, tmp_path):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(jpeg_bytes())
    target = mini / "direct_attributes" / "sa_2.jpg"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside.jpg"):
        load_vstar(mini)


def test_symlinked_annotation_pointing_out_is_refused(mini, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(annotation()))
    target = mini / "relative_position" / "sa_3.json"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside.json"):
        load_vstar(mini)


def test_symlinked_category_folder_pointing_out_is_refused(mini, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write_sample(elsewhere, "sa_9", annotation(), jpeg_bytes())
    (mini / "extra").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="elsewhere"):
        load_vstar(mini, categories=["extra"])


def test_decompression_bomb_is_refused_at_load(mini):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (mini / "direct_attributes" / "sa_2.jpg").write_bytes(bomb)
    with pytest.raises(ImageTooLargeError, match=r"sa_2\.jpg"):
        load_vstar(mini)


def test_max_image_pixels_is_passed_through(mini):
    with pytest.raises(ImageTooLargeError, match="max_image_pixels=1,000"):
        load_vstar(mini, max_image_pixels=1000)
