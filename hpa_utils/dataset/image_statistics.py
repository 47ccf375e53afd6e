"""Per-image statistics of the four stains, and how a folder's compare with those of real competition images.

The reference (``data/real_image_statistics.csv``, with its provenance) was measured on 100 real training
images read at 256 px with INTER_AREA; ``measure_folder`` reads any Kaggle-layout folder the same way, and
``compare`` puts the two side by side with a pass or miss per row: the median within 25 % of the real one and
the 10th-90th percentile band covering at least half of the real band.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from hpa_utils import errors
from hpa_utils.dataset import COLORS, load_sample, read_sample_submission, read_train_labels

REFERENCE_CSV = Path(__file__).with_name("real_image_statistics.csv")
MEASURE_SIZE = 256  # the side the reference images were read at
BRIGHT = 0.1  # "fraction > 0.1": pixels above a tenth of full scale
NUCLEUS_BLUR_SIGMA = 2.0  # pixels at 256 px, before Otsu's threshold on blue
NUCLEUS_MIN_PIXELS = 30  # connected components of this many pixels or fewer are not nuclei
MEDIAN_TOLERANCE = 0.25  # a median passes within 25 % of the real one
BAND_OVERLAP = 0.5  # a p10-p90 band passes when it covers at least half of the real band
STATISTICS = tuple(f"{color} {what}" for color in COLORS for what in ("mean", "99th percentile", "fraction > 0.1")) + (
    "nuclei per field",
)


def count_nuclei(blue: np.ndarray) -> int:
    """Nuclei in a 256 px blue channel: Otsu's threshold on the blurred image, components over 30 pixels."""
    blurred = cv2.GaussianBlur(blue, (0, 0), NUCLEUS_BLUR_SIGMA)
    _, mask = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return int((stats[1:, cv2.CC_STAT_AREA] > NUCLEUS_MIN_PIXELS).sum())


def measure_image(sample: np.ndarray) -> dict[str, float]:
    """The 13 statistics of one HxWx4 uint8 RGBY sample (read at 256 px), fractions of full scale."""
    if sample.ndim != 3 or sample.shape[2] != len(COLORS) or sample.dtype != np.uint8:
        raise errors.InputError(f"expected an HxWx4 uint8 RGBY sample, got shape {sample.shape} dtype {sample.dtype}")
    values = {}
    for position, color in enumerate(COLORS):
        channel = sample[:, :, position]
        values[f"{color} mean"] = float(channel.mean()) / 255.0
        values[f"{color} 99th percentile"] = float(np.percentile(channel, 99)) / 255.0
        values[f"{color} fraction > 0.1"] = float((channel > BRIGHT * 255.0).mean())
    values["nuclei per field"] = float(count_nuclei(sample[:, :, COLORS.index("blue")]))
    return values


def measure_folder(data_dir, samples: int = 100, split: str = "train", seed: int = 0) -> pd.DataFrame:
    """One row of statistics per image for ``samples`` Ids of ``split`` drawn at random (seeded), indexed by Id."""
    data_dir = Path(data_dir)
    if split not in ("train", "test"):
        raise errors.InputError(f"split must be train or test, got {split!r}")
    ids = (read_train_labels if split == "train" else read_sample_submission)(data_dir)["Id"].tolist()
    if not ids:
        raise errors.InputError(f"{data_dir}: no {split} Ids to measure")
    chosen = sorted(np.random.default_rng(seed).choice(len(ids), size=min(samples, len(ids)), replace=False))
    rows = {
        ids[index]: measure_image(load_sample(data_dir, split, ids[index], "rgby", MEASURE_SIZE)) for index in chosen
    }
    return pd.DataFrame.from_dict(rows, orient="index")[list(STATISTICS)]


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """Median, 10th and 90th percentile over images, one row per statistic."""
    return pd.DataFrame(
        {
            "median": per_image.median(),
            "p10": per_image.quantile(0.1),
            "p90": per_image.quantile(0.9),
        }
    ).loc[list(STATISTICS)]


def read_reference(path=REFERENCE_CSV) -> pd.DataFrame:
    """The real images' median, p10 and p90 per statistic (the package's reference table)."""
    return pd.read_csv(path, comment="#", index_col="statistic").loc[list(STATISTICS)]


def compare(summary, reference=None, tolerance: float = MEDIAN_TOLERANCE, band_overlap: float = BAND_OVERLAP):
    """Side by side with the reference: median ratio, the share of the real band covered, and pass per row.

    A row passes when its median is within ``tolerance`` of the real one (relative) and its p10-p90 band
    covers at least ``band_overlap`` of the real band; looser values suit a small sample.
    """
    reference = read_reference() if reference is None else reference
    table = pd.DataFrame(index=list(STATISTICS))
    table["real median"], table["real p10"], table["real p90"] = reference["median"], reference["p10"], reference["p90"]
    table["median"], table["p10"], table["p90"] = summary["median"], summary["p10"], summary["p90"]
    table["median / real"] = table["median"] / table["real median"]
    overlap = np.minimum(table["p90"], table["real p90"]) - np.maximum(table["p10"], table["real p10"])
    table["real band covered"] = np.clip(overlap / (table["real p90"] - table["real p10"]), 0.0, 1.0)
    table["pass"] = ((table["median / real"] - 1.0).abs() <= tolerance) & (table["real band covered"] >= band_overlap)
    table.attrs.update(tolerance=tolerance, band_overlap=band_overlap)
    return table


def format_comparison(table: pd.DataFrame, label: str = "this folder") -> str:
    """A plain-text table: real and measured median (p10-p90), median ratio, band covered, PASS/MISS."""

    def band(median, low, high, statistic):
        digits = 0 if statistic == "nuclei per field" else 3
        return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"

    width = max(len(name) for name in STATISTICS)
    lines = [f"{'per image':<{width}}  {'real median (p10-p90)':<22}  {label + ' median (p10-p90)':<30}  ratio  band"]
    for statistic, row in table.iterrows():
        real = band(row["real median"], row["real p10"], row["real p90"], statistic)
        measured = band(row["median"], row["p10"], row["p90"], statistic)
        verdict = "PASS" if row["pass"] else "MISS"
        lines.append(
            f"{statistic:<{width}}  {real:<22}  {measured:<30}  {row['median / real']:5.2f}  "
            f"{row['real band covered']:4.0%}  {verdict}"
        )
    tolerance, band_overlap = (
        table.attrs.get("tolerance", MEDIAN_TOLERANCE),
        table.attrs.get("band_overlap", BAND_OVERLAP),
    )
    lines.append(
        f"{int(table['pass'].sum())} of {len(table)} rows pass (median within {tolerance:.0%} of the real one, "
        f"at least {band_overlap:.0%} of the real p10-p90 band covered)"
    )
    return "\n".join(lines)


def intensity_table(data_dir, ids, image_size: int = MEASURE_SIZE) -> pd.DataFrame:
    """Per channel: mean, standard deviation and 99th percentile of pixel/255 over the given images."""
    images = np.stack([load_sample(data_dir, "train", image_id, "rgby", image_size) for image_id in ids])
    values = images.reshape(-1, 4).astype(np.float32) / 255
    return pd.DataFrame(
        {"mean": values.mean(axis=0), "std": values.std(axis=0), "p99": np.percentile(values, 99, axis=0)},
        index=list(COLORS),
    )


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils synth-stats DATA_DIR`."""
    if not Path(arguments.data_dir).is_dir():
        raise errors.MissingError(f"{arguments.data_dir}: no such folder")
    if arguments.samples < 1:
        raise errors.InputError(f"--samples must be at least 1, got {arguments.samples}")
    per_image = measure_folder(arguments.data_dir, arguments.samples, arguments.split, arguments.seed)
    table = compare(summarise(per_image))
    print(
        f"{arguments.data_dir}: {len(per_image)} {arguments.split} images, each channel read at "
        f"{MEASURE_SIZE} px with INTER_AREA; reference: {REFERENCE_CSV.name}"
    )
    print(format_comparison(table, "this folder"))
    return 1 if arguments.check and not table["pass"].all() else 0
