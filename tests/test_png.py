"""dataset.png: Wuffs gives libpng's pixels for every encoder's 8-bit grayscale PNGs, and refuses the rest; idat."""

import io
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image

from hpa_utils import dataset, errors
from hpa_utils.dataset import png

needs_wuffs = pytest.mark.skipif(not png.available(), reason="pywuffs is not installed")


def images():
    rng = np.random.default_rng(0)
    blurred = cv2.GaussianBlur(rng.normal(60, 40, (96, 80)).clip(0, 255).astype(np.uint8), (7, 7), 2)
    return {
        "noise": rng.integers(0, 256, (64, 64), dtype=np.uint8),
        "gradient": (np.add.outer(np.arange(33), np.arange(65)) % 256).astype(np.uint8),
        "blurred": blurred,
        "one row": rng.integers(0, 256, (1, 7), dtype=np.uint8),
        "flat": np.full((16, 16), 9, np.uint8),
    }


def encodings(image):
    """The same pixels as PNG files from PIL (adaptive filters: Paeth, Average and the rest) and from cv2."""

    def pil(**options):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "PNG", **options)
        return buffer.getvalue()

    def opencv(*options):
        ok, encoded = cv2.imencode(".png", image, list(options))
        assert ok
        return encoded.tobytes()

    return {
        "PIL level 0": pil(compress_level=0),
        "PIL level 6": pil(),
        "PIL level 9": pil(compress_level=9),
        "PIL optimize": pil(optimize=True),
        "cv2 default": opencv(),
        "cv2 level 9": opencv(cv2.IMWRITE_PNG_COMPRESSION, 9),
        "cv2 huffman only": opencv(cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY),
    }


def row_filters(data, height, width):
    raw = np.frombuffer(zlib.decompress(png.idat(data)), np.uint8).reshape(height, width + 1)
    return set(raw[:, 0].tolist())


@needs_wuffs
def test_wuffs_gives_libpngs_pixels_for_every_encoder():
    filters = set()
    for name, image in images().items():
        for encoder, data in encodings(image).items():
            assert png.is_grayscale_8bit(data)
            decoded = png.decode_grayscale(data)
            expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(decoded, expected, err_msg=f"{name}, {encoder}")
            np.testing.assert_array_equal(decoded, image, err_msg=f"{name}, {encoder}")
            filters |= row_filters(data, *image.shape)
    assert filters == {0, 1, 2, 3, 4}  # every PNG row filter was decoded: none, sub, up, average, Paeth


@needs_wuffs
def test_wuffs_gives_the_pixels_of_the_embedded_dataset(tmp_path):
    from hpa_utils.dataset import synthetic

    data_dir = synthetic.generate(tmp_path / "data", 3, 1, image_size=64, seed=3, min_per_class=0, progress=False)
    for path in sorted((data_dir / "train").glob("*.png")):
        data = path.read_bytes()
        expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(png.decode_grayscale(data), expected, err_msg=path.name)


def damaged(data: bytes, where: str) -> bytes:
    """``data`` with one byte changed: in the IDAT chunk's CRC-32, or in the zlib stream's Adler-32."""
    position = data.find(b"IDAT")
    (length,) = struct.unpack(">I", data[position - 4 : position])
    offset = {"crc": position + 4 + length, "adler": position + 4 + length - 1}[where]
    changed = bytearray(data)
    changed[offset] ^= 0x01
    return bytes(changed)


@needs_wuffs
def test_decode_grayscale_refuses_other_kinds_and_damaged_files():
    image = images()["noise"]
    good = encodings(image)["cv2 default"]
    cases = {
        "colour": cv2.imencode(".png", np.dstack([image, image, image]))[1].tobytes(),
        "16-bit": cv2.imencode(".png", image.astype(np.uint16) * 257)[1].tobytes(),
        "jpeg": cv2.imencode(".jpg", image)[1].tobytes(),
        "not an image": b"GIF89a, or anything else",
        "truncated": good[: len(good) // 2],
        "bad CRC-32": damaged(good, "crc"),
        "bad Adler-32": damaged(good, "adler"),
    }
    for name, data in cases.items():
        assert png.decode_grayscale(data) is None, name
    assert png.header(good) == (64, 64, 8, 0)
    assert png.header(cases["jpeg"]) is None


@needs_wuffs
def test_a_damaged_file_is_an_error_naming_it_with_or_without_wuffs(tmp_path, without_wuffs):
    path = tmp_path / "abc_green.png"
    path.write_bytes(damaged(encodings(images()["noise"])["cv2 default"], "adler"))
    with pytest.raises(dataset.ImageError, match="abc_green.png"):
        dataset.load_channel(path, 32)
    with pytest.raises(dataset.ImageError, match="abc_green.png"):
        without_wuffs(lambda: dataset.load_channel(path, 32))


@needs_wuffs
def test_a_bad_crc_alone_still_gives_the_pixels_as_before(tmp_path, without_wuffs):
    image = images()["noise"]  # the pixel data is intact (its Adler-32 holds): Wuffs and cv2 refuse, PIL reads it
    path = tmp_path / "abc_green.png"
    path.write_bytes(damaged(encodings(image)["cv2 default"], "crc"))
    np.testing.assert_array_equal(dataset.load_channel(path), image)
    np.testing.assert_array_equal(without_wuffs(lambda: dataset.load_channel(path)), image)


@needs_wuffs
def test_threads_decode_as_one_thread_does():
    files = [data for image in images().values() for data in encodings(image).values()] * 4
    alone = [png.decode_grayscale(data) for data in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(png.decode_grayscale, files))
    for index, (first, second) in enumerate(zip(alone, together, strict=True)):
        np.testing.assert_array_equal(first, second, err_msg=str(index))


@needs_wuffs
@pytest.mark.parametrize("image_size", [None, 224, 100, 300])
def test_load_channel_gives_the_same_pixels_without_pywuffs(tmp_path, without_wuffs, image_size):
    rng = np.random.default_rng(image_size or 0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (512, 512), dtype=np.uint8), (5, 5), 1.5)
    path = tmp_path / "x_red.png"
    Image.fromarray(image).save(path)
    assert without_wuffs(png.available) is False
    with_wuffs = dataset.load_channel(path, image_size)
    np.testing.assert_array_equal(without_wuffs(lambda: dataset.load_channel(path, image_size)), with_wuffs)


def test_idat_is_the_zlib_stream_of_the_pixels():
    image = np.arange(40 * 30, dtype=np.uint8).reshape(30, 40)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    data = encoded.tobytes()
    raw = zlib.decompress(png.idat(data))
    assert len(raw) == 30 * (40 + 1)  # one filter byte per row
    with pytest.raises(errors.InputError, match="not a PNG"):
        png.idat(b"GIF89a" + data)
    with pytest.raises(errors.InputError, match="truncated PNG"):
        png.idat(data[: data.find(b"IDAT") + 10])
