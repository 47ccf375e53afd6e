"""The uint8 image cache: exact pixels (the half-size decode included), reuse without decoding, keys, atomic builds."""

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from hpa_utils import dataset, errors
from hpa_utils.dataset import cache
from hpa_utils.dataset import images as images_module
from hpa_utils.system import disk, environment

NATIVE_SIZE = 40


def write_kaggle_folder(root, count=6, seed=0):
    """A tiny Kaggle-layout folder: train.csv and train/<Id>_<color>.png, 8-bit grayscale."""
    rng = np.random.default_rng(seed)
    (root / "train").mkdir(parents=True)
    ids = [f"{index:08x}-sample-{index}" for index in range(count)]
    for image_id in ids:
        for color in dataset.COLORS:
            pixels = rng.integers(0, 256, (NATIVE_SIZE, NATIVE_SIZE), dtype=np.uint8)
            assert cv2.imwrite(str(root / "train" / f"{image_id}_{color}.png"), pixels)
    (root / "train.csv").write_text(
        "Id,Target\n" + "".join(f"{image_id},{index % 28}\n" for index, image_id in enumerate(ids))
    )
    return ids


@pytest.fixture()
def folder(tmp_path):
    data_dir = tmp_path / "data"
    ids = write_kaggle_folder(data_dir)
    return data_dir, ids, tmp_path / "cache"


@pytest.mark.parametrize("channels", ["rgby", "rgb"])
def test_cache_holds_exactly_the_decoded_pixels(folder, channels):
    data_dir, ids, cache_dir = folder
    ids = ids[::-1]  # the cache follows the order of ids, not the folder's
    images = cache.build_cache(data_dir, "train", ids, 32, channels, cache_dir=cache_dir)
    assert isinstance(images, np.memmap)
    assert images.shape == (len(ids), 32, 32, len(channels)) and images.dtype == np.uint8
    for index, image_id in enumerate(ids):
        expected = dataset.load_sample(data_dir, "train", image_id, channels=channels, image_size=32)
        np.testing.assert_array_equal(images[index], expected)
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0, 0] = 1
    path = cache.cache_path(data_dir, "train", ids, 32, channels, cache_dir)
    assert path.name.startswith(f"train-32px-{channels}-") and path.suffix == ".u8"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["shape"] == list(images.shape) and sidecar["dtype"] == "uint8" and sidecar["count"] == len(ids)


def test_second_call_reuses_the_cache_without_decoding(folder):
    data_dir, ids, cache_dir = folder
    first = np.array(cache.build_cache(data_dir, "train", ids, 24, cache_dir=cache_dir))
    for png in (data_dir / "train").glob("*.png"):
        png.unlink()  # any decoding would now fail
    second = cache.build_cache(data_dir, "train", ids, 24, cache_dir=cache_dir)
    np.testing.assert_array_equal(second, first)
    assert len(list(cache_dir.glob("*.u8"))) == 1


def test_size_channels_ids_and_dataset_change_the_file(folder):
    data_dir, ids, cache_dir = folder
    paths = {
        cache.cache_path(data_dir, "train", ids, 24, "rgby", cache_dir),
        cache.cache_path(data_dir, "train", ids, 32, "rgby", cache_dir),
        cache.cache_path(data_dir, "train", ids, 24, "rgb", cache_dir),
        cache.cache_path(data_dir, "train", ids[:-1], 24, "rgby", cache_dir),
        cache.cache_path(data_dir, "train", ids[::-1], 24, "rgby", cache_dir),
    }
    assert len(paths) == 5
    for image_size, channels, subset in ((24, "rgby", ids), (32, "rgby", ids), (24, "rgb", ids), (24, "rgby", ids[:3])):
        cache.build_cache(data_dir, "train", subset, image_size, channels, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.u8"))) == 4
    before = cache.cache_path(data_dir, "train", ids, 24, "rgby", cache_dir)
    with open(data_dir / "train.csv", "a") as file:  # a replaced dataset: the label file changed
        file.write(f"{ids[0]}-extra,0\n")
    assert cache.cache_path(data_dir, "train", ids, 24, "rgby", cache_dir) != before


def test_failed_build_leaves_no_cache_and_names_the_id(folder):
    data_dir, ids, cache_dir = folder
    broken = ids[len(ids) // 2]
    (data_dir / "train" / f"{broken}_green.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(errors.InputError) as raised:
        cache.build_cache(data_dir, "train", ids, 24, cache_dir=cache_dir)
    message = str(raised.value) + " ".join(getattr(raised.value, "__notes__", []))
    assert f"{broken}_green.png" in message and f"sample {broken}" in message
    assert list(cache_dir.iterdir()) == []  # no final file, no sidecar, no temporary file
    (data_dir / "train" / f"{broken}_green.png").unlink()
    cv2.imwrite(str(data_dir / "train" / f"{broken}_green.png"), np.zeros((NATIVE_SIZE, NATIVE_SIZE), np.uint8))
    images = cache.build_cache(data_dir, "train", ids, 24, cache_dir=cache_dir)
    assert images.shape[0] == len(ids)


def write_image(path, array):
    assert cv2.imwrite(str(path), array), path
    return path


def full_decode_then_area_halvings(path, image_size):
    """The pixels before the half-size decode: a full decode, INTER_AREA halvings while the side stays at least
    twice the target, then one INTER_AREA resize."""
    array = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    while min(array.shape) >= 2 * image_size:
        array = cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(array, (image_size, image_size), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize(
    ("height", "width", "image_size"), [(512, 512, 224), (512, 512, 256), (512, 512, 100), (96, 64, 24), (130, 258, 60)]
)
def test_half_size_decode_gives_the_pixels_of_a_full_decode(tmp_path, without_wuffs, height, width, image_size):
    rng = np.random.default_rng(height + width + image_size)
    images = {
        "noise": rng.integers(0, 256, (height, width), dtype=np.uint8),
        "binary": (rng.integers(0, 2, (height, width)) * 255).astype(np.uint8),  # worst case for rounding
        "gradient": (np.add.outer(np.arange(height), np.arange(width)) % 256).astype(np.uint8),
    }
    for name, image in images.items():
        path = write_image(tmp_path / f"{name}_red.png", image)
        assert images_module._half_size_decode(path.read_bytes(), image_size)  # cv2's path, without pywuffs
        expected = full_decode_then_area_halvings(path, image_size)
        for decoded in (
            without_wuffs(lambda path=path: dataset.load_channel(path, image_size)),
            dataset.load_channel(path, image_size),
        ):
            np.testing.assert_array_equal(decoded, expected, err_msg=name)


def test_half_size_decode_only_for_even_8_bit_grayscale_pngs_twice_the_size(tmp_path):
    gray = np.zeros((64, 64), np.uint8)
    cases = {
        "gray_red.png": (gray, 32, True),
        "small_red.png": (gray, 33, False),  # not twice the target
        "odd_red.png": (np.zeros((65, 64), np.uint8), 16, False),  # an odd side: cv2 and INTER_AREA round apart
        "deep_red.png": (gray.astype(np.uint16), 16, False),  # 16-bit: converted by >> 8 after a full decode
        "colour_red.png": (np.zeros((64, 64, 3), np.uint8), 16, False),  # colour: the maximum over channels
        "photo_red.jpg": (gray, 16, False),
    }
    for name, (image, image_size, expected) in cases.items():
        data = write_image(tmp_path / name, image).read_bytes()
        assert images_module._half_size_decode(data, image_size) is expected, name
    assert images_module._half_size_decode(data, None) is False


def test_cache_without_sidecar_is_rebuilt(folder):
    data_dir, ids, cache_dir = folder
    path = cache.cache_path(data_dir, "train", ids, 24, "rgby", cache_dir)
    cache_dir.mkdir()
    path.write_bytes(b"\0" * (len(ids) * 24 * 24 * 4))  # the size is right, but no sidecar: not trusted
    images = cache.build_cache(data_dir, "train", ids, 24, cache_dir=cache_dir)
    expected = dataset.load_sample(data_dir, "train", ids[0], image_size=24)
    np.testing.assert_array_equal(images[0], expected)


def test_bad_arguments_raise_clear_errors(folder):
    data_dir, ids, cache_dir = folder
    with pytest.raises(errors.InputError, match="image_size"):
        cache.build_cache(data_dir, "train", ids, 0, cache_dir=cache_dir)
    with pytest.raises(errors.InputError, match="channels"):
        cache.build_cache(data_dir, "train", ids, 24, "rg", cache_dir=cache_dir)
    with pytest.raises(errors.InputError, match="no ids"):
        cache.build_cache(data_dir, "train", [], 24, cache_dir=cache_dir)


def test_default_cache_dir_is_in_the_repo_locally_and_in_tmp_on_kaggle(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    assert cache.default_cache_dir() == environment.REPO_ROOT / "data" / "cache"
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch")
    assert cache.default_cache_dir() == Path(tempfile.gettempdir()) / "hpa_cache"  # /kaggle/working is the output


def test_streamed_images_are_the_cached_pixels_read_any_way(folder):
    data_dir, ids, cache_dir = folder
    cached = cache.build_cache(data_dir, "train", ids, 32, "rgby", cache_dir=cache_dir)
    streamed = cache.build_cache(data_dir, "train", ids, 32, "rgby", cache_dir=cache_dir / "unused", mode="stream")
    assert isinstance(streamed, cache.StreamedImages) and not (cache_dir / "unused").exists()  # nothing on disk
    assert (streamed.shape, streamed.dtype, streamed.ndim, len(streamed)) == (cached.shape, np.uint8, 4, len(ids))
    rows = np.array([5, 0, 3, 3])
    for index in (2, -1, slice(1, 4), rows, np.arange(len(ids)) % 2 == 0):
        np.testing.assert_array_equal(streamed[index], cached[index])
    np.testing.assert_array_equal(np.asarray(streamed), np.asarray(cached))


def test_a_stream_decodes_batches_for_the_input_pipeline_in_the_caches_order(folder):
    from hpa_utils.training import inputs

    data_dir, ids, cache_dir = folder
    cached = cache.build_cache(data_dir, "train", ids, 32, "rgb", cache_dir=cache_dir)
    streamed = cache.StreamedImages(data_dir, "train", ids, 32, "rgb", workers=2)
    targets = np.eye(28, dtype="float32")[: len(ids)]
    batches = [
        list(inputs.make_dataset(images, targets, 4, shuffle=True, augmentation="dihedral", seed=3))
        for images in (cached, streamed)
    ]
    for (cached_images, cached_targets), (streamed_images, streamed_targets) in zip(*batches):
        np.testing.assert_array_equal(streamed_images, cached_images)
        np.testing.assert_array_equal(streamed_targets, cached_targets)


def test_auto_streams_where_the_cache_would_not_leave_the_disk_room_and_says_so(folder, monkeypatch, capsys):
    data_dir, ids, cache_dir = folder
    built = cache.build_cache(data_dir, "train", ids, 32, "rgb", cache_dir=cache_dir, mode="auto")
    assert isinstance(built, np.memmap)  # room enough here
    monkeypatch.setattr(cache, "FREE_SPACE_KEPT", disk.free_bytes(cache_dir))  # as if the disk were full
    assert isinstance(cache.build_cache(data_dir, "train", ids, 32, "rgb", cache_dir=cache_dir, mode="auto"), np.memmap)
    streamed = cache.build_cache(data_dir, "train", ids, 24, "rgb", cache_dir=cache_dir, mode="auto")  # not built yet
    assert isinstance(streamed, cache.StreamedImages)
    printed = capsys.readouterr().out
    assert "train images: the cache would need 0.0 GiB" in printed and "decoding them on the fly instead" in printed
    with pytest.raises(errors.InputError, match="CACHE='disk' is not supported; choose one of auto, memmap, stream"):
        cache.build_cache(data_dir, "train", ids, 32, "rgb", cache_dir=cache_dir, mode="disk")


def test_a_streamed_sample_that_fails_names_its_id(folder):
    data_dir, ids, _ = folder
    (data_dir / "train" / f"{ids[2]}_green.png").write_bytes(b"not a png")
    streamed = cache.StreamedImages(data_dir, "train", ids, 32, "rgb")
    np.testing.assert_array_equal(streamed[[0, 1]].shape, (2, 32, 32, 3))
    with pytest.raises(Exception) as raised:
        streamed[[1, 2]]
    assert f"while decoding train sample {ids[2]} (3 of 6)" in "\n".join(getattr(raised.value, "__notes__", []))
