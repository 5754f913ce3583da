"""Safe image I/O: path containment, guarded decoding, colour modes, and the byte-bounded cache."""

from __future__ import annotations

import functools
import io
import pickle
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mapo_env.data import io as dio
from mapo_env.errors import ConfigError, CorruptSampleError, DatasetNotFound, ImageTooLargeError, UnsafePathError

# ------------------------------------------------------------------ helpers


def noise(width: int, height: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares ``width`` x ``height`` (no real pixel data behind it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.fixture
def fresh_default_cache():
    dio.set_default_image_cache(None)
    yield
    dio.set_default_image_cache(None)


# ------------------------------------------------------------------ safe_join


def test_safe_join_accepts_paths_inside(tmp_path):
    (tmp_path / "a").mkdir()
    assert dio.safe_join(tmp_path, "a/x.jpg") == (tmp_path / "a" / "x.jpg").resolve()
    assert dio.safe_join(tmp_path, "a/../b.jpg") == (tmp_path / "b.jpg").resolve()


@pytest.mark.parametrize("relative", ["../x.jpg", "a/../../x.jpg", "/etc/passwd", "\\share\\x.jpg", "", "a\x00.jpg"])
def test_safe_join_refuses_escapes(tmp_path, relative):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.raises(UnsafePathError) as info:
        dio.safe_join(data_dir, relative)
    assert str(data_dir.resolve()) in str(info.value) or repr(relative)[1:-1] in str(info.value)


def test_safe_join_refuses_absolute_path_even_inside(tmp_path):
    with pytest.raises(UnsafePathError, match="absolute"):
        dio.safe_join(tmp_path, str(tmp_path / "x.jpg"))


def test_safe_join_refuses_symlink_pointing_out(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"x")
    (data_dir / "link.jpg").symlink_to(outside)
    with pytest.raises(UnsafePathError) as info:
        dio.safe_join(data_dir, "link.jpg")
    assert "secret.jpg" in str(info.value)


def test_safe_join_follows_symlinks_that_stay_inside(tmp_path):
    (tmp_path / "real.jpg").write_bytes(b"x")
    (tmp_path / "alias.jpg").symlink_to(tmp_path / "real.jpg")
    assert dio.safe_join(tmp_path, "alias.jpg") == (tmp_path / "real.jpg").resolve()


# ------------------------------------------------------------------ read_image: formats and modes


def test_png_roundtrip_is_exact_and_read_only(tmp_path):
    pixels = noise(37, 23)
    path = tmp_path / "x.png"
    path.write_bytes(encode(Image.fromarray(pixels), "PNG"))
    image = dio.read_image(path)
    assert image.dtype == np.uint8 and image.shape == (23, 37, 3)
    np.testing.assert_array_equal(image, pixels)
    assert not image.flags.writeable
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_matches_pillow_decode(tmp_path, mode):
    source = Image.fromarray(noise(64, 48)).convert(mode)
    path = tmp_path / "x.jpg"
    path.write_bytes(encode(source, "JPEG", quality=90))
    reference = np.asarray(Image.open(path).convert("RGB")).astype(int)
    image = dio.read_image(path)
    assert image.shape == (48, 64, 3)
    assert np.abs(image.astype(int) - reference).max() <= 1


def test_jpeg_with_trailing_bytes_after_end_marker_still_decodes(tmp_path):
    data = encode(Image.fromarray(noise(32, 16)), "JPEG")
    path = tmp_path / "x.jpg"
    path.write_bytes(data + b"TRAILER" * 10)
    assert dio.read_image(path).shape == (16, 32, 3)


def test_exif_orientation_is_not_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    path.write_bytes(encode(Image.fromarray(noise(40, 20)), "JPEG", exif=exif.tobytes()))
    assert Image.open(path).getexif()[0x0112] == 6
    assert dio.read_image(path).shape == (20, 40, 3)  # stored frame, as the V* boxes expect
    assert dio.read_image_size(path) == (40, 20)


def test_grey_palette_and_alpha_images_become_rgb(tmp_path):
    rgb = noise(8, 6)
    cases = {
        "L": Image.fromarray(rgb[:, :, 0]),
        "P": Image.fromarray(rgb).quantize(16),
        "RGBA": Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
        "LA": Image.fromarray(rgb[:, :, 0]).convert("LA"),
        "1": Image.fromarray(rgb[:, :, 0] > 127),
    }
    for mode, image in cases.items():
        assert image.mode == mode
        path = tmp_path / f"{mode}.png"
        path.write_bytes(encode(image, "PNG"))
        decoded = dio.read_image(path)
        assert decoded.shape == (6, 8, 3), mode
        np.testing.assert_array_equal(decoded, np.asarray(image.convert("RGB")), err_msg=mode)
    np.testing.assert_array_equal(dio.read_image(tmp_path / "RGBA.png"), rgb)  # alpha dropped, colours kept


def test_cmyk_jpeg_is_converted(tmp_path):
    image = Image.fromarray(noise(16, 8)).convert("CMYK")
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(encode(image, "JPEG", quality=95))
    decoded = dio.read_image(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(decoded, expected)


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(encode(Image.fromarray(values), "PNG"))
    assert Image.open(path).mode.startswith("I")
    decoded = dio.read_image(path)
    assert decoded.shape == (1, 4, 3)
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 3, 128, 255])
    assert (decoded[..., 0] == decoded[..., 2]).all()


# ------------------------------------------------------------------ read_image: failures


def test_missing_file_is_dataset_not_found(tmp_path):
    path = tmp_path / "nope.jpg"
    for fn in (dio.read_image, dio.read_image_size):
        with pytest.raises(DatasetNotFound, match="nope.jpg"):
            fn(path)


def test_directory_is_corrupt_sample(tmp_path):
    (tmp_path / "d.jpg").mkdir()
    with pytest.raises(CorruptSampleError, match="d.jpg"):
        dio.read_image(tmp_path / "d.jpg")


def test_non_image_bytes_are_corrupt(tmp_path):
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"<html>not an image</html>" * 20)
    for fn in (dio.read_image, dio.read_image_size):
        with pytest.raises(CorruptSampleError, match="fake.jpg"):
            fn(path)


def test_postscript_is_never_opened(tmp_path):
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\nshowpage\n"
    assert Image.open(io.BytesIO(eps)).format == "EPS"  # Pillow alone would hand it to Ghostscript on load
    path = tmp_path / "evil.jpg"
    path.write_bytes(eps)
    with pytest.raises(CorruptSampleError, match="not a recognised image format"):
        dio.read_image(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_corrupt(tmp_path, fmt):
    data = encode(Image.fromarray(noise(120, 90)), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    assert dio.read_image_size(path) == (120, 90)  # the header survives
    with pytest.raises(CorruptSampleError, match=f"cut.{fmt.lower()}"):
        dio.read_image(path)


def test_decompression_bomb_header_is_refused_without_allocating(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    assert path.stat().st_size < 100
    for fn in (dio.read_image, dio.read_image_size):
        with pytest.raises(ImageTooLargeError, match="bomb.png"):
            fn(path)
    with pytest.raises(ImageTooLargeError, match="inline-bomb"):
        dio.decode_image_bytes(path.read_bytes(), "inline-bomb")


def test_our_pixel_limit_applies_below_pillows(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(9000, 9000))  # 81 MP: under Pillow's 89.5 MP, over our 64 MP
    with pytest.raises(ImageTooLargeError, match="max_image_pixels"):
        dio.read_image_size(path)
    small = tmp_path / "small.png"
    small.write_bytes(encode(Image.fromarray(noise(20, 10)), "PNG"))
    with pytest.raises(ImageTooLargeError, match="200"):
        dio.read_image(small, max_image_pixels=199)
    assert dio.read_image(small, max_image_pixels=200).shape == (10, 20, 3)


def test_default_limit_admits_hrbench_8k(tmp_path):
    path = tmp_path / "8k.png"
    path.write_bytes(png_header_only(7680, 4320))
    assert dio.read_image_size(path) == (7680, 4320)


def test_decode_helpers_name_their_source():
    with pytest.raises(CorruptSampleError, match="row 7"):
        dio.decode_image_bytes(b"garbage", "file.tsv row 7")
    with pytest.raises(CorruptSampleError, match="row 8"):
        dio.decode_base64_image("@@not base64@@", "file.tsv row 8")
    png = encode(Image.fromarray(noise(5, 4)), "PNG")
    assert dio.probe_image_bytes(png, "x") == (5, 4)
    import base64

    np.testing.assert_array_equal(dio.decode_base64_image(base64.b64encode(png), "x"), noise(5, 4))


# ------------------------------------------------------------------ ImageCache


def array_of(nbytes: int, value: int = 0) -> np.ndarray:
    return np.full((1, nbytes // 3, 3), value, dtype=np.uint8)


def test_cache_hits_misses_and_read_only():
    cache = dio.ImageCache(10_000)
    calls = []

    def decode():
        calls.append(1)
        return array_of(300, 5)

    first = cache.get_or_load("k", decode)
    second = cache.get_or_load("k", decode)
    assert first is second and len(calls) == 1
    assert not first.flags.writeable
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.size_bytes) == (1, 1, 1, 300)


def test_cache_evicts_least_recently_used_by_bytes():
    cache = dio.ImageCache(1000)
    for key in "abc":
        cache.get_or_load(key, lambda: array_of(300))
    cache.get_or_load("a", lambda: array_of(300))  # refresh a: b is now the oldest
    cache.get_or_load("d", lambda: array_of(300))  # 1200 > 1000: evict b
    assert "b" not in cache and all(k in cache for k in "acd")
    stats = cache.stats()
    assert stats.evictions == 1 and stats.size_bytes == 900 and stats.entries == 3


def test_cache_keeps_nothing_larger_than_its_capacity():
    cache = dio.ImageCache(100)
    value = cache.get_or_load("big", lambda: array_of(300))
    assert value.shape == (1, 100, 3) and "big" not in cache
    assert dio.ImageCache(0).get_or_load("x", lambda: array_of(3)).size == 3


def test_cache_does_not_keep_failures():
    cache = dio.ImageCache(1000)

    def broken():
        raise CorruptSampleError("boom", path="x.jpg")

    with pytest.raises(CorruptSampleError):
        cache.get_or_load("k", broken)
    assert "k" not in cache
    assert cache.get_or_load("k", lambda: array_of(3)).size == 3
    assert cache.stats().misses == 2


def test_cache_decodes_once_under_concurrency():
    cache = dio.ImageCache(10_000)
    calls = []
    barrier = threading.Barrier(8)
    results = []

    def decode():
        calls.append(1)
        time.sleep(0.05)
        return array_of(30)

    def worker():
        barrier.wait()
        results.append(cache.get_or_load("same", decode))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)
    stats = cache.stats()
    assert stats.misses == 1 and stats.hits == 7


def test_cache_rejects_bad_capacity_and_bad_values():
    with pytest.raises(ConfigError, match="capacity_bytes"):
        dio.ImageCache(-1)
    with pytest.raises(TypeError, match="np.ndarray"):
        dio.ImageCache(10).get_or_load("k", lambda: [1, 2, 3])


def test_default_cache_size_comes_from_env(monkeypatch, fresh_default_cache):
    monkeypatch.setenv("MAPO_IMAGE_CACHE_MB", "3")
    assert dio.default_image_cache().capacity_bytes == 3 * 2**20
    assert dio.default_image_cache() is dio.default_image_cache()
    dio.set_default_image_cache(None)
    monkeypatch.setenv("MAPO_IMAGE_CACHE_MB", "lots")
    with pytest.raises(ConfigError, match="MAPO_IMAGE_CACHE_MB"):
        dio.default_image_cache()
    monkeypatch.delenv("MAPO_IMAGE_CACHE_MB")
    assert dio.default_image_cache().capacity_bytes == dio.DEFAULT_CACHE_MB * 2**20


def test_cached_image_loader_uses_default_cache_and_pickles(tmp_path, fresh_default_cache):
    path = tmp_path / "x.png"
    path.write_bytes(encode(Image.fromarray(noise(6, 4)), "PNG"))
    loader = dio.cached_image_loader(dio.file_cache_key(path), functools.partial(dio.read_image, path))
    image = loader()
    assert loader() is image
    assert dio.default_image_cache().stats().hits == 1
    clone = pickle.loads(pickle.dumps(loader))
    np.testing.assert_array_equal(clone(), noise(6, 4))


def test_importing_data_package_does_not_import_torch():
    code = (
        "import sys, mapo_env.data; "
        "bad = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr
