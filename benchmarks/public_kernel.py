"""The public kernel's way of loading, and the proposals measured beside ours."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hpa_utils.dataset import COLORS, png

PNG_TAIL_BYTES = 1024  # where dataset.load_channel looks for the IEND chunk


def kernel_load_sample(data_dir: Path, image_id: str, image_size: int) -> np.ndarray:
    """The public kernel's loader: PIL.Image.open per channel, np.stack, cv2.resize (bilinear)."""
    from PIL import Image

    folder = Path(data_dir) / "train"
    channels = [np.array(Image.open(folder / f"{image_id}_{color}.png")) for color in COLORS]
    return cv2.resize(np.stack(channels, axis=-1), (image_size, image_size))


def halve_then_resize(array: np.ndarray, image_size: int) -> np.ndarray:
    """INTER_AREA to ``image_size`` in steps: halve (OpenCV's fast 2x2 path) while the side stays at least
    twice the target, then one INTER_AREA resize. Box filters both, so close to one INTER_AREA resize
    (exactly equal for a plain halving) at about half the cost for 512 -> 224 px.
    """
    while min(array.shape[:2]) >= 2 * image_size:
        array = cv2.resize(array, (array.shape[1] // 2, array.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(array, (image_size, image_size), interpolation=cv2.INTER_AREA)


PROPOSALS = ("cv2 full decode", "cv2 half decode", "wuffs")


def proposed_load_sample(data_dir: Path, image_id: str, image_size: int, proposal: str) -> np.ndarray:
    """load_sample for 8-bit grayscale PNGs, decoded one of three ways, for the passes that compare them.

    "cv2 full decode" (the first way): cv2.IMREAD_UNCHANGED, then ``halve_then_resize``.
    "cv2 half decode" (load_channel without pywuffs): a PNG of even sides at least twice the target side is
    decoded with cv2.IMREAD_REDUCED_GRAYSCALE_2, then resized the same way.
    "wuffs" (load_channel with pywuffs): ``dataset.png.decode_grayscale`` at full size, then resized the same way.
    The rest (file lookup, the completeness check, one array per sample) is kept as load_sample does it.
    """
    from hpa_utils import dataset
    from hpa_utils.dataset import images

    if proposal not in PROPOSALS:
        raise ValueError(f"unknown proposal {proposal!r}; expected one of {', '.join(PROPOSALS)}")
    channels = []
    for color in COLORS:
        path = dataset.image_path(data_dir, "train", image_id, color)
        data = path.read_bytes()
        if data.find(b"IEND", max(0, len(data) - PNG_TAIL_BYTES)) == -1:
            raise ValueError(f"{path}: truncated PNG")
        if proposal == "wuffs":
            array = png.decode_grayscale(data)
            if array is None:
                raise ValueError(f"{path}: not decoded by Wuffs (pywuffs installed: {png.available()})")
        elif proposal == "cv2 half decode":
            array = images._decode_with_cv2(data, image_size)  # load_channel's cv2 path
        else:
            array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        channels.append(halve_then_resize(array, image_size))
    return np.stack(channels, axis=-1)
