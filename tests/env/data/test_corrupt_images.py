"""Corrupt JPEG and PNG data is refused with the path, even where decoders would return a patched image.

The three JPEG classes of the report: a truncated file with its end marker re-appended, randomised bytes
in the compressed data, and a header declaring more rows than the data holds; and their PNG analogues.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mapo_env.data.io import decode_image_bytes, read_image
from mapo_env.data.verify import final_jpeg_eoi, verify_jpeg, verify_png
from mapo_env.errors import CorruptSampleError

JPEG_KINDS = {
    "baseline": {"quality": 90},
    "progressive": {"quality": 90, "progressive": True},
    "optimized": {"quality": 95, "optimize": True},
    "444": {"quality": 75, "subsampling": 0},
}


def picture(seed: int = 0, width: int = 320, height: int = 240) -> np.ndarray:
    """Smooth noise: compresses like a photograph (neither flat nor white noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))


def encode(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module", params=sorted(JPEG_KINDS))
def jpeg(request) -> bytes:
    return encode(picture(), "JPEG", **JPEG_KINDS[request.param])


def test_good_jpegs_pass(jpeg: bytes) -> None:
    verify_jpeg(jpeg, "good.jpg")
    assert decode_image_bytes(jpeg, "good.jpg").shape == (240, 320, 3)


@settings(max_examples=25, deadline=None)
@given(st.floats(0.02, 0.995))
def test_truncated_jpeg_with_its_end_marker_reappended(fraction: float) -> None:
    for options in JPEG_KINDS.values():
        data = encode(picture(1), "JPEG", **options)
        eoi = final_jpeg_eoi(data)
        cut = data[: max(1, int(eoi * fraction))] + b"\xff\xd9"
        with pytest.raises(CorruptSampleError, match=r"cut\.jpg"):
            decode_image_bytes(cut, "cut.jpg")


@pytest.mark.parametrize("extra_rows", [8, 16, 64, 240])
def test_header_declaring_more_rows_than_the_data(jpeg: bytes, extra_rows: int) -> None:
    data = bytearray(jpeg)
    sof = next(data.find(m) for m in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2") if data.find(m) >= 0)
    height = struct.unpack(">H", data[sof + 5 : sof + 7])[0]
    data[sof + 5 : sof + 7] = struct.pack(">H", height + extra_rows)
    with pytest.raises(CorruptSampleError, match="ends before the last block"):
        decode_image_bytes(bytes(data), "tall.jpg")


def test_randomised_scan_bytes_are_mostly_refused() -> None:
    """Damage that makes the decoder run out of data or stop early is refused (not: damage it decodes silently)."""
    rng = np.random.default_rng(7)
    refused = total = 0
    for options in JPEG_KINDS.values():
        good = encode(picture(2), "JPEG", **options)
        scan = good.index(b"\xff\xda") + 20
        for _ in range(15):
            damaged = bytearray(good)
            for position in rng.integers(scan, len(good) - 10, int(rng.integers(1, 50))):
                damaged[position] = int(rng.integers(0, 256))
            total += 1
            try:
                decode_image_bytes(bytes(damaged), "damaged.jpg")
            except CorruptSampleError as error:
                assert "damaged.jpg" in str(error)
                refused += 1
    assert refused / total >= 0.9, (refused, total)  # measured: 59/60


@pytest.mark.parametrize("interlace", [0, 1])
def test_png_rows_must_match_the_header(interlace: int) -> None:
    good = encode(picture(3), "PNG", interlace=interlace)
    verify_png(good, "good.png")
    data = bytearray(good)
    height = struct.unpack(">I", data[20:24])[0]
    data[20:24] = struct.pack(">I", height + 16)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a consistent, lying header
    with pytest.raises(CorruptSampleError, match=r"tall\.png"):
        decode_image_bytes(bytes(data), "tall.png")


@settings(max_examples=20, deadline=None)
@given(st.floats(0.05, 0.99))
def test_truncated_png_with_its_end_chunk_reappended(fraction: float) -> None:
    good = encode(picture(4), "PNG")
    iend = good.rfind(b"IEND") - 4
    with pytest.raises(CorruptSampleError, match=r"cut\.png"):
        decode_image_bytes(good[: int(iend * fraction)] + good[iend:], "cut.png")


def test_png_crc_mismatch_is_refused() -> None:
    data = bytearray(encode(picture(5), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0x01
    with pytest.raises(CorruptSampleError, match="CRC|damaged"):
        decode_image_bytes(bytes(data), "crc.png")


def test_files_are_refused_with_their_path(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    good = encode(picture(6), "JPEG", quality=90)
    path.write_bytes(good[: len(good) // 2] + b"\xff\xd9")
    with pytest.raises(CorruptSampleError) as caught:
        read_image(path)
    assert caught.value.path == path


def test_real_vstar_images_pass(vstar_dir: Path) -> None:
    files = sorted(vstar_dir.glob("*/*.jpg"))
    assert files
    for path in files:
        verify_jpeg(path.read_bytes(), str(path))
