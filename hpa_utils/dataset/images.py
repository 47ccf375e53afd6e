"""Channel images: where each file is, decoding PNG/JPEG/TIFF into 8-bit grayscale, samples in a channel mode."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile

from hpa_utils import errors
from hpa_utils.dataset import png
from hpa_utils.dataset.label_files import check_image_id

COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow")

CHANNEL_MODES: dict[str, tuple[str, ...]] = {
    "rgby": COLORS,  # all four stains: microtubules, protein, nucleus, endoplasmic reticulum
    "rgb": COLORS[:3],  # what the public kernels fed ImageNet backbones
}

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")

_PNG_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"

_JPEG_START = b"\xff\xd8"

_JPEG_END = b"\xff\xd9"

_TRAILER_SEARCH_BYTES = 1024  # a complete file has its end marker within this many bytes of the end


class ImageError(errors.InputError):
    """A channel image that cannot be used: empty, not an image, truncated or corrupt. The message names the file."""


def channel_file_names(image_id: str, color: str) -> list[str]:
    return [f"{image_id}_{color}{extension}" for extension in IMAGE_EXTENSIONS]


def image_path(data_dir, split: str, image_id: str, color: str) -> Path:
    """The file of one channel: ``data_dir/split/<image_id>_<color>.png``, else .jpg/.jpeg/.tif/.tiff.

    Raises ValueError for an unknown colour or an Id that is not a plain file name, and
    FileNotFoundError naming the Id, colour and folder when no such file exists.
    """
    if color not in COLORS:
        raise errors.InputError(f"unknown colour {color!r}; expected one of {', '.join(COLORS)}")
    check_image_id(image_id)
    folder = Path(data_dir) / split
    for file_name in channel_file_names(image_id, color):
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    extensions = "/".join(IMAGE_EXTENSIONS)
    raise errors.MissingError(
        f"{folder}: no {color} image for Id {image_id} (looked for {image_id}_{color}{extensions})"
    )


def _check_complete(path: Path, data: bytes) -> None:
    """Raise ImageError when a PNG or JPEG file is cut short (a partial download or copy)."""
    tail_start = max(0, len(data) - _TRAILER_SEARCH_BYTES)
    if data.startswith(png.SIGNATURE):
        if data.find(_PNG_IEND_CHUNK, tail_start) == -1:
            raise ImageError(f"{path}: truncated PNG (no IEND chunk at the end; the file is incomplete)")
    elif data.startswith(_JPEG_START) and data.find(_JPEG_END, tail_start) == -1:
        # No end-of-image marker near the end: either truncated, or trailing bytes after a complete
        # image. Only a full decode can tell; PIL refuses truncated JPEGs.
        try:
            with Image.open(io.BytesIO(data)) as image:
                if ImageFile.LOAD_TRUNCATED_IMAGES:
                    raise OSError("no end-of-image marker")
                image.load()
        except Exception as error:
            raise ImageError(f"{path}: truncated JPEG (no end-of-image marker; {error})") from error


def _decode_with_pil(path: Path, data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            array = np.asarray(image)
    except Exception as error:
        raise ImageError(f"{path}: not a readable image, or a truncated or corrupt one ({error})") from error
    if mode.startswith("I;16"):
        array = array.astype(np.uint16)
    elif mode == "I":  # 32-bit integer mode: what PIL gives for some 16-bit files
        array = np.clip(array, 0, 65535).astype(np.uint16)
    return array


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Any numeric image as uint8: 16-bit by >> 8, other integers by their type's range, floats by 255 or their max."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        top = float(np.iinfo(array.dtype).max)
        return np.clip(array.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(array.max()) if array.size else 0.0
        scale = 255.0 if top <= 1.0 else 255.0 / top
        return np.clip(array * scale, 0, 255).round().astype(np.uint8)
    raise errors.InputError(f"unsupported pixel type {array.dtype}")


def _half_size_decode(data: bytes, image_size: int | None) -> bool:
    """Whether ``data`` may be decoded at half size (``cv2.IMREAD_REDUCED_GRAYSCALE_2``) with the same pixels:
    an 8-bit grayscale PNG with even sides, each at least twice ``image_size``. cv2 decodes such a file whole
    and halves it by averaging 2x2 blocks, as ``_resize``'s first INTER_AREA halving does.
    """
    fields = png.header(data) if image_size is not None else None
    if fields is None or fields[2:] != (8, 0):  # not an 8-bit grayscale PNG
        return False
    width, height = fields[:2]
    return width % 2 == 0 and height % 2 == 0 and min(width, height) >= 2 * image_size


def _decode_with_cv2(data: bytes, image_size: int | None) -> np.ndarray | None:
    flags = cv2.IMREAD_UNCHANGED
    if _half_size_decode(data, image_size):  # the first halving done by the decoder: a few % faster, same pixels
        flags = cv2.IMREAD_REDUCED_GRAYSCALE_2 | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    except cv2.error:
        return None


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    if array.shape[:2] == (height, width):
        return array
    if not (height <= array.shape[0] and width <= array.shape[1]):
        return cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)
    while array.shape[0] >= 2 * height and array.shape[1] >= 2 * width:  # halving first: same look, ~2x faster
        array = cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA)


def load_channel(path, image_size: int | None = None) -> np.ndarray:
    """Decode one channel file into an HxW uint8 array, converting what differs from the Kaggle format.

    Conversions (not rejections), for the external HPAv18 images among others:
    - a colour file (RGB, BGR, RGBA) becomes the maximum over its colour channels (alpha ignored):
      an HPAv18 "_green.jpg" holds its signal in one or two colour channels, and the maximum keeps
      its full intensity where an average or luminance would darken it;
    - 16-bit becomes 8-bit by ``>> 8`` (exact for 8-bit data stored as 16-bit), other integer types
      are scaled by their type's range, floats by 255 (values in 0..1) or by their maximum;
    - ``image_size`` (an int) resizes to image_size x image_size, with cv2.INTER_AREA when shrinking
      and bilinear when enlarging; None keeps the native size.

    Decodes 8-bit grayscale PNGs with Wuffs (``png``) when pywuffs is installed, anything else (or everything
    without it) with cv2, and falls back to PIL. Raises FileNotFoundError for a missing file and
    ImageError (a ValueError) naming the file when it is empty, not an image, truncated or corrupt.
    """
    path = Path(path)
    _check_size(image_size)
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise errors.MissingError(f"{path}: image file not found") from error
    except IsADirectoryError as error:
        raise ImageError(f"{path}: is a folder, not an image file") from error
    return decode_channel(data, path, image_size)


def _check_size(image_size) -> None:
    if image_size is not None and not (errors.is_integer(image_size) and image_size >= 1):
        raise errors.InputError(f"image_size must be a positive int or None, got {image_size!r}")


def decode_channel(data: bytes, path, image_size: int | None = None) -> np.ndarray:
    """load_channel on bytes already read (a download, say); ``path`` names them in errors."""
    _check_size(image_size)
    if not data:
        raise ImageError(f"{path}: empty file (0 bytes)")
    _check_complete(path, data)
    array = png.decode_grayscale(data)  # Wuffs, when installed: the Kaggle format, the same pixels, faster
    if array is None:
        array = _decode_with_cv2(data, image_size)
    if array is None:
        array = _decode_with_pil(path, data)
    if array.ndim == 3:
        channels = array.shape[2]
        if channels == 1 or channels == 2:  # grey, or grey + alpha
            array = array[:, :, 0]
        else:  # BGR / RGB (+ alpha): the order does not matter for the maximum
            array = array[:, :, :3].max(axis=2)
    if array.ndim != 2 or array.size == 0:
        raise ImageError(f"{path}: unexpected image shape {array.shape} (expected a 2-D image)")
    try:
        array = _to_uint8(array)
    except ValueError as error:
        raise ImageError(f"{path}: {error}") from error
    if image_size is not None:
        array = _resize(array, int(image_size), int(image_size))
    return np.ascontiguousarray(array)


def load_sample(
    data_dir, split: str, image_id: str, channels: str = "rgby", image_size: int | None = None
) -> np.ndarray:
    """One sample as an HxWxC uint8 array, channels in the order of CHANNEL_MODES[channels].

    With ``image_size`` None every channel keeps the red channel's native size (a channel of
    another size is resized to it), so the result is always one consistent HxW.
    Raises ValueError for an unknown channel mode, plus whatever image_path/load_channel raise.
    """
    if channels not in CHANNEL_MODES:
        raise errors.InputError(f"unknown channel mode {channels!r}; expected one of {', '.join(CHANNEL_MODES)}")
    colors = CHANNEL_MODES[channels]
    first = load_channel(image_path(data_dir, split, image_id, colors[0]), image_size)
    result = np.empty(first.shape + (len(colors),), dtype=np.uint8)
    result[:, :, 0] = first
    for position, color in enumerate(colors[1:], start=1):
        channel = load_channel(image_path(data_dir, split, image_id, color), image_size)
        result[:, :, position] = _resize(channel, *first.shape)
    return result
