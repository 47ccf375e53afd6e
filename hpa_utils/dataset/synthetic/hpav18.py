"""The embedded dataset in HPAv18 form: colour JPEGs laid out as the v18 image server serves them, and their labels.

The real external images come from ``http://v18.proteinatlas.org/images/<plate>/<rest of the Id>_<colour>.jpg``
(the address pattern of the participants' public download scripts, ``external.addresses.server_path``):
2048 px RGB JPEGs, each stain in its own colour (red in R, green in G, blue in B, yellow in R and G).
``write_hpav18`` writes the embedded samples the same way, so the downloader can be tested over HTTP against a
local server serving ``DIR/images``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hpa_utils import errors
from hpa_utils.dataset import labels as labels_module
from hpa_utils.dataset.external.addresses import server_path  # the real server's address rule
from hpa_utils.dataset.synthetic.label_sets import sample_label_sets
from hpa_utils.dataset.synthetic.sample import MIN_IMAGE_SIZE, render_sample

LABELS_CSV = "hpav18_labels.csv"
IMAGES_FOLDER = "images"  # what the server serves: its root is the base URL
BGR_PLANES = {"red": (2,), "green": (1,), "blue": (0,), "yellow": (2, 1)}  # where cv2 puts each stain's colour
_SAMPLES, _LABEL_DRAWS, _ID_DRAWS = 4, 5, 6  # random-stream purposes, apart from the Kaggle-layout writer's


def make_hpav18_ids(count: int, seed: int) -> list[str]:
    """``count`` unique Ids shaped like the real ones: <plate>_<image>_<well>_<field>, e.g. 10580_1610_C1_1."""
    rng = np.random.default_rng([seed, _ID_DRAWS, 0])
    ids, seen = [], set()
    while len(ids) < count:
        plate, image, row, column, field = (
            int(value) for value in rng.integers([1000, 1, 0, 1, 1], [99999, 9999, 8, 13, 4])
        )
        image_id = f"{plate}_{image}_{'ABCDEFGH'[row]}{column}_{field}"
        if image_id not in seen:
            seen.add(image_id)
            ids.append(image_id)
    return ids


def colour_jpeg(channel: np.ndarray, color: str, quality: int = 90) -> bytes:
    """One stain as the server's colour JPEG: the 8-bit channel in its colour's planes, zero elsewhere."""
    picture = np.zeros(channel.shape + (3,), dtype=np.uint8)
    for plane in BGR_PLANES[color]:
        picture[:, :, plane] = channel
    ok, encoded = cv2.imencode(".jpg", picture, (cv2.IMWRITE_JPEG_QUALITY, quality))
    if not ok:
        raise OSError(f"{color}: JPEG encoding failed")
    return encoded.tobytes()


def write_hpav18(out_dir, count: int, image_size: int = 512, seed: int = 0, min_per_class: int = 0) -> Path:
    """Write ``count`` embedded samples as the v18 server holds them: DIR/images/<plate>/<rest>_<colour>.jpg, and
    DIR/hpav18_labels.csv (Id,Target) as ``../shared/hpa/external_hpav18.csv`` is. Deterministic per seed."""
    count = errors.integer("count", count, minimum=1)
    image_size = errors.integer("image_size", image_size, minimum=MIN_IMAGE_SIZE)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise errors.InputError(f"{out_dir}: already exists and is not an empty folder; choose a new out_dir")
    ids = make_hpav18_ids(count, seed)
    label_sets = sample_label_sets(count, np.random.default_rng([seed, _LABEL_DRAWS, 0]), min_per_class)
    for position, (image_id, label_set) in enumerate(zip(ids, label_sets)):
        rendered = render_sample(label_set, image_size, np.random.default_rng([seed, _SAMPLES, position]))
        for color, channel in rendered.items():
            target = out_dir / IMAGES_FOLDER / server_path(image_id, color)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(colour_jpeg(channel, color))
    rows = [f"{image_id},{labels_module.format_target(label_set)}" for image_id, label_set in zip(ids, label_sets)]
    (out_dir / LABELS_CSV).write_text("Id,Target\n" + "\n".join(rows) + "\n")
    return out_dir
