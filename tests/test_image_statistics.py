"""Image statistics: the real reference, the measures on known images, and the generator measured against them."""

import cv2
import numpy as np
import pandas as pd
import pytest

from hpa_utils import cli, errors
from hpa_utils.dataset import image_statistics, synthetic
from hpa_utils.dataset.synthetic import field

SMALL_SAMPLE = 80  # images of the generated dataset measured; small, so the tolerances below are wider
SMALL_TOLERANCE, SMALL_BAND_OVERLAP = 0.4, 0.35

# The green channel over seeds (issue 23). A median over images of fields as varied as the real ones is itself
# uncertain: over seeds 0-21 at 256 px (2200 images, subsampled), median / real of green mean, 99th percentile
# and fraction > 0.1 has a standard deviation of 0.14, 0.08 and 0.18 at 100 images, and 0.06, 0.03 and 0.08 at
# 500. So: each seed's 100 images within 0.4 (2.2 standard deviations of the bright fraction's, 2.8 of the
# mean's), and the 500 together within 0.15 (2.5 of the mean's, 1.9 of the fraction's), which the old green
# (mean and fraction at 1.22x and 1.23x the real medians on average) misses.
GREEN_ROWS = ["green mean", "green 99th percentile", "green fraction > 0.1"]
SEEDS, PER_SEED = (1, 2, 3, 4, 5), 100
PER_SEED_TOLERANCE, POOLED_TOLERANCE = 0.4, 0.15


@pytest.fixture(scope="module")
def seed_sets(tmp_path_factory):
    """{seed: a generated dataset of PER_SEED train images at 256 px} for five seeds in a row."""
    root = tmp_path_factory.mktemp("statistics")
    return {
        seed: synthetic.generate(root / f"seed{seed}", PER_SEED, 4, image_size=256, seed=seed, progress=False)
        for seed in SEEDS
    }


@pytest.fixture(scope="module")
def generated(seed_sets):
    return seed_sets[3]


def test_reference_holds_every_statistic_with_its_provenance():
    reference = image_statistics.read_reference()
    assert list(reference.index) == list(image_statistics.STATISTICS)
    assert (reference["p10"] <= reference["median"]).all() and (reference["median"] <= reference["p90"]).all()
    assert reference.loc["nuclei per field"].tolist() == [19, 10, 35]
    assert reference.loc["green mean", "median"] == pytest.approx(0.031)
    header = image_statistics.REFERENCE_CSV.read_text().split("statistic,")[0]
    assert "100 real competition training images" in header and "INTER_AREA" in header


def test_measures_of_a_drawn_field():
    sample = np.zeros((256, 256, 4), dtype=np.uint8)
    sample[:, :, 0] = 51  # red: a fifth of full scale everywhere
    sample[:128, :, 3] = 255  # yellow: the top half saturated
    sample[:2, :, 1] = 200  # green: 2 of 256 rows bright
    blue = np.zeros((256, 256), dtype=np.uint8)
    for row in range(3):
        for column in range(4):
            cv2.circle(blue, (32 + 64 * column, 40 + 80 * row), 9, 200, -1)  # 12 nuclei of ~250 px
    cv2.circle(blue, (250, 250), 2, 200, -1)  # a speck of ~13 px: not a nucleus
    sample[:, :, 2] = blue
    values = image_statistics.measure_image(sample)
    assert values["red mean"] == pytest.approx(0.2) and values["red 99th percentile"] == pytest.approx(0.2)
    assert values["red fraction > 0.1"] == 1.0
    assert values["yellow mean"] == pytest.approx(0.5) and values["yellow fraction > 0.1"] == 0.5
    assert values["yellow 99th percentile"] == 1.0
    assert values["green fraction > 0.1"] == pytest.approx(2 / 256)
    assert values["green mean"] == pytest.approx(2 / 256 * 200 / 255)
    assert values["green 99th percentile"] == 0.0
    assert values["nuclei per field"] == 12
    with pytest.raises(errors.InputError, match="HxWx4 uint8"):
        image_statistics.measure_image(sample[:, :, :3])


def test_compare_passes_the_reference_itself_and_misses_what_is_off():
    reference = image_statistics.read_reference()
    assert image_statistics.compare(reference)["pass"].all()
    brighter = reference.copy()
    brighter.loc["red mean"] *= 1.3  # median 30 % high, band shifted
    narrow = reference.copy()
    narrow.loc["blue mean", ["p10", "p90"]] = [0.050, 0.052]  # the right median, a tenth of the spread
    table = image_statistics.compare(brighter)
    assert not table.loc["red mean", "pass"] and table["pass"].sum() == len(table) - 1
    table = image_statistics.compare(narrow)
    assert not table.loc["blue mean", "pass"] and table.loc["blue mean", "real band covered"] < 0.1
    text = image_statistics.format_comparison(table)
    assert "blue mean" in text and "MISS" in text and "12 of 13 rows pass" in text


def test_the_generated_dataset_looks_like_the_real_images(generated):
    per_image = image_statistics.measure_folder(generated, samples=SMALL_SAMPLE)
    assert len(per_image) == SMALL_SAMPLE and per_image.notna().all().all()
    table = image_statistics.compare(
        image_statistics.summarise(per_image), tolerance=SMALL_TOLERANCE, band_overlap=SMALL_BAND_OVERLAP
    )
    assert table["pass"].all(), image_statistics.format_comparison(table, "generated")
    # the images differ from each other as the real ones do: no statistic is nearly constant
    spread = (table["p90"] - table["p10"]) / (table["real p90"] - table["real p10"])
    assert (spread > 0.5).all(), spread


def test_green_brightness_is_centred_over_seeds(seed_sets):
    per_seed = {seed: image_statistics.measure_folder(folder, samples=PER_SEED) for seed, folder in seed_sets.items()}
    for seed, per_image in per_seed.items():
        table = image_statistics.compare(image_statistics.summarise(per_image), tolerance=PER_SEED_TOLERANCE)
        assert table.loc[GREEN_ROWS, "pass"].all(), image_statistics.format_comparison(table, f"seed {seed}")
    pooled = pd.concat(per_seed.values())
    table = image_statistics.compare(image_statistics.summarise(pooled), tolerance=POOLED_TOLERANCE)
    assert table.loc[GREEN_ROWS, "pass"].all(), image_statistics.format_comparison(table, "5 seeds together")


def test_field_draws_spread_like_real_fields():
    draws = [field.draw_field(np.random.default_rng(seed)) for seed in range(2000)]
    counts = np.array([draw.cell_count for draw in draws])
    assert 16 <= np.median(counts) <= 22 and np.percentile(counts, 10) <= 12 and np.percentile(counts, 90) >= 30
    for color, (median, _) in field.STAIN_GAINS.items():
        assert np.median([draw.gains[color] for draw in draws]) == pytest.approx(median, rel=0.1)
    assert field.draw_field(np.random.default_rng(5)) == field.draw_field(np.random.default_rng(5))


def test_synth_stats_prints_the_comparison_and_checks_on_request(generated, capsys):
    assert cli.main(["synth-stats", str(generated), "--samples", "20"]) == 0
    printed = capsys.readouterr().out
    assert "20 train images, each channel read at 256 px" in printed
    for statistic in image_statistics.STATISTICS:
        assert statistic in printed
    assert "rows pass" in printed and ("PASS" in printed or "MISS" in printed)
    table = image_statistics.compare(image_statistics.summarise(image_statistics.measure_folder(generated, 20)))
    expected = 0 if table["pass"].all() else 1
    assert cli.main(["synth-stats", str(generated), "--samples", "20", "--check"]) == expected
    assert cli.main(["synth-stats", str(generated), "--split", "test", "--samples", "3"]) == 0
    assert "3 test images" in capsys.readouterr().out


def test_synth_stats_names_what_is_wrong(tmp_path, capsys):
    assert cli.main(["synth-stats", str(tmp_path / "missing")]) == 2
    assert "missing: no such folder" in capsys.readouterr().err
    assert cli.main(["synth-stats", str(tmp_path)]) == 2
    assert "train.csv" in capsys.readouterr().err
