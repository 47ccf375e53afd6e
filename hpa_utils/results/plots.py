"""Plots the notebooks show: label statistics, montages, intensities, likeness to real images, training curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn

from hpa_utils import dataset, stages
from hpa_utils.dataset import labels

CHANNEL_TITLES = {
    "red": "red: microtubules",
    "green": "green: protein (the label)",
    "blue": "blue: nucleus",
    "yellow": "yellow: endoplasmic reticulum",
}


def label_counts(label_lists, title="Images per class"):
    """Horizontal bars of how many images carry each class, log scale, named."""
    counts = labels.to_multi_hot(label_lists).sum(axis=0)
    names = [f"{index} {name}" for index, name in enumerate(labels.CLASS_NAMES)]
    figure, axis = plt.subplots(figsize=(8, 8))
    axis.barh(names[::-1], counts[::-1], color="tab:green")
    axis.set_xscale("log")
    axis.set_xlabel("images (log scale)")
    axis.set_title(title)
    for position, count in enumerate(counts[::-1]):
        axis.text(count, position, f" {count}", va="center", fontsize=8)
    figure.tight_layout()
    return figure


def labels_per_image(label_lists):
    """Bar chart of the share of images with 1, 2, 3, ... labels."""
    sizes = pd.Series([len(labels_of_image) for labels_of_image in label_lists]).value_counts(normalize=True)
    figure, axis = plt.subplots(figsize=(5, 3))
    axis.bar(sizes.index.astype(str), sizes.values * 100)
    axis.set_xlabel("labels per image")
    axis.set_ylabel("% of images")
    figure.tight_layout()
    return figure


def cooccurrence_heatmap(label_lists):
    """Heatmap of P(column class | row class): how often classes appear together."""
    multi_hot = labels.to_multi_hot(label_lists).astype(np.float64)
    together = multi_hot.T @ multi_hot
    conditional = together / np.maximum(np.diag(together)[:, None], 1)
    np.fill_diagonal(conditional, np.nan)
    names = [f"{index} {name}" for index, name in enumerate(labels.CLASS_NAMES)]
    figure, axis = plt.subplots(figsize=(11, 9))
    seaborn.heatmap(
        pd.DataFrame(conditional, index=names, columns=names),
        cmap="viridis",
        ax=axis,
        cbar_kws={"label": "P(column | row)"},
    )
    axis.set_title("Class co-occurrence")
    figure.tight_layout()
    return figure


def composite(image: np.ndarray) -> np.ndarray:
    """An RGBY (or RGB) uint8 image as an RGB float picture; yellow adds to red and green."""
    picture = image[..., :3].astype(np.float32) / 255
    if image.shape[-1] == 4:
        yellow = image[..., 3].astype(np.float32) / 255
        picture[..., 0] += yellow / 2
        picture[..., 1] += yellow / 2
    return np.clip(picture / max(picture.max(), 1e-6), 0, 1)


def montage(data_dir, train_df, count=4, image_size=256):
    """One row per sample: the four channels and the colour composite, titled with the labels."""
    rows = train_df.head(count)
    figure, axes = plt.subplots(len(rows), 5, figsize=(15, 3.2 * len(rows)), squeeze=False)
    for row_axes, (_, row) in zip(axes, rows.iterrows()):
        image = dataset.load_sample(data_dir, "train", row["Id"], "rgby", image_size)
        for channel, (axis, color) in enumerate(zip(row_axes, dataset.COLORS)):
            axis.imshow(image[..., channel], cmap="gray")
            axis.set_title(CHANNEL_TITLES[color], fontsize=9)
        row_axes[4].imshow(composite(image))
        names = ", ".join(labels.CLASS_NAMES[label] for label in row["labels"])
        row_axes[4].set_title(names[:45], fontsize=9)
        for axis in row_axes:
            axis.axis("off")
    figure.tight_layout()
    return figure


def class_gallery(data_dir, train_df, image_size=128):
    """The green channel of one single-label image per class (where the dataset has one)."""
    figure, axes = plt.subplots(4, 7, figsize=(16, 10))
    for label, axis in zip(range(labels.NUM_CLASSES), axes.ravel()):
        matches = train_df[train_df["labels"].map(lambda found, label=label: found == [label])]
        if matches.empty:
            matches = train_df[train_df["labels"].map(lambda found, label=label: label in found)]
        if not matches.empty:
            image = dataset.load_sample(data_dir, "train", matches.iloc[0]["Id"], "rgby", image_size)
            axis.imshow(image[..., 1], cmap="Greens_r")
        axis.set_title(f"{label} {labels.CLASS_NAMES[label]}", fontsize=8)
        axis.axis("off")
    figure.tight_layout()
    return figure


def cell_montage(data_dir, ids, count=6):
    """Colour composites of the centre quarter of ``count`` images at their full resolution: the cells up close."""
    figure, axes = plt.subplots(2, (count + 1) // 2, figsize=(4 * ((count + 1) // 2), 8), squeeze=False)
    for axis, image_id in zip(axes.ravel(), list(ids)[:count]):
        image = dataset.load_sample(data_dir, "train", image_id)
        quarter = image.shape[0] // 4
        axis.imshow(composite(image[quarter:-quarter, quarter:-quarter]))
        axis.set_title(image_id[:13], fontsize=8)
    for axis in axes.ravel():
        axis.axis("off")
    figure.tight_layout()
    return figure


def real_statistics(table: pd.DataFrame):
    """Each statistic's p10-p90 band and median, here (coloured: pass green, miss red) and in real images (grey),
    relative to the real median on a log scale."""
    figure, axis = plt.subplots(figsize=(9, 0.45 * len(table) + 1.2))
    for row, (_, values) in enumerate(table.iloc[::-1].iterrows()):
        scale = values["real median"]
        axis.plot([values["real p10"] / scale, values["real p90"] / scale], [row + 0.15] * 2, color="0.6", lw=6)
        axis.plot([1.0], [row + 0.15], "|", color="0.3", ms=12)
        color = "tab:green" if values["pass"] else "tab:red"
        axis.plot([values["p10"] / scale, values["p90"] / scale], [row - 0.15] * 2, color=color, lw=6)
        axis.plot([values["median"] / scale], [row - 0.15], "|", color="black", ms=12)
    axis.set_yticks(range(len(table)), list(table.index[::-1]), fontsize=8)
    axis.set_xscale("log")
    axis.axvline(1.0, color="0.8", lw=0.8, zorder=0)
    axis.set_xlabel("value / real median (bars: 10th-90th percentile over images, ticks: medians)")
    axis.set_title("This data (green: pass, red: miss) against real competition images (grey)")
    figure.tight_layout()
    return figure


def intensity_histograms(data_dir, ids, image_size=256):
    """Histogram of pixel values per channel (log counts): how dark the images are."""
    images = np.stack([dataset.load_sample(data_dir, "train", image_id, "rgby", image_size) for image_id in ids])
    figure, axis = plt.subplots(figsize=(7, 3.5))
    for channel, color in enumerate(dataset.COLORS):
        axis.hist(
            images[..., channel].ravel(),
            bins=64,
            range=(0, 255),
            histtype="step",
            log=True,
            color={"yellow": "goldenrod"}.get(color, color),
            label=color,
        )
    axis.set_xlabel("pixel value")
    axis.set_ylabel("pixels (log)")
    axis.legend()
    figure.tight_layout()
    return figure


def per_class_f1(per_class: dict):
    """A grouped bar chart of per-class F1 for each stage ({stage: 28 values}); the legend beside the axes."""
    figure, axis = plt.subplots(figsize=(14, 5.5), layout="constrained")
    width = 0.8 / max(1, len(per_class))
    positions = np.arange(labels.NUM_CLASSES)
    for offset, (stage, values) in enumerate(per_class.items()):
        axis.bar(positions + offset * width, values, width=width, label=stage)
    axis.set_xticks(
        positions + 0.4 - width / 2,
        [f"{i} {name}" for i, name in enumerate(labels.CLASS_NAMES)],
        rotation=75,
        ha="right",
        fontsize=8,
    )
    axis.set_ylabel("F1 (each stage's own images and threshold)")
    axis.set_ylim(0, 1)
    axis.set_xlim(-0.5, labels.NUM_CLASSES - 0.3)
    figure.legend(loc="outside right upper", frameon=False)
    axis.set_title("Per-class F1 by stage")
    return figure


def scores_with_intervals(rows: list[dict]):
    """Each stage's macro F1 at its best threshold as a dot with its 95 % interval, the prior as a cross;
    stages scored on other images are labelled so."""
    figure, axis = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.4), layout="constrained")
    for position, row in enumerate(rows):
        value, interval = row.get(stages.HEADLINE), row.get(stages.HEADLINE + "_ci95")
        if value is None:
            continue
        if interval:  # a line, not error bars: a percentile interval need not hold its score (see metrics)
            axis.plot(interval, [position, position], "|-", color="tab:blue", markersize=12)
        axis.plot(value, position, "o", color="tab:blue")
        if row.get("prior_baseline_f1") is not None:
            axis.plot(row["prior_baseline_f1"], position, "x", color="grey")
    axis.set_yticks(range(len(rows)), [f"{row['stage']}\n({row['image_set']})" for row in rows])
    axis.invert_yaxis()
    axis.set_xlabel("macro F1 at the best single threshold, 95 % bootstrap interval (x: prior)")
    axis.grid(axis="x", alpha=0.3)
    return figure


def augmentation_examples(image: np.ndarray, views, augmentation: str):
    """One HWC uint8 image (as a colour composite) beside ``views`` of it, the training pipeline's draws for
    ``augmentation`` (``inputs.augment_images`` of the image repeated): the views training sees."""
    views = np.asarray(views)
    draws = len(views)
    figure, axes = plt.subplots(1, draws + 1, figsize=(2 * (draws + 1), 2.3), squeeze=False)
    titles = ["original"] + [f"{augmentation}, draw {i + 1}" for i in range(draws)]
    for axis, picture, title in zip(axes[0], [image, *views], titles):
        axis.imshow(composite(picture))
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    return figure


def fold_class_counts(targets, fold_of):
    """Heatmap of how many images of each class every fold holds."""
    counts = pd.DataFrame(
        {f"fold {fold}": np.asarray(targets)[fold_of == fold].sum(axis=0) for fold in range(int(fold_of.max()) + 1)},
        index=[f"{index} {name}" for index, name in enumerate(labels.CLASS_NAMES)],
    )
    figure, axis = plt.subplots(figsize=(2 + 1.2 * counts.shape[1], 8))
    seaborn.heatmap(counts, annot=True, fmt=".0f", cmap="Blues", cbar=False, ax=axis)
    axis.set_title("Images per class and fold")
    figure.tight_layout()
    return figure


def thresholds(per_class_thresholds, global_threshold):
    """Per-class thresholds as bars, the global threshold as a line; the legend beside the axes."""
    figure, axis = plt.subplots(figsize=(13, 3.8), layout="constrained")
    axis.bar([f"{index} {name}" for index, name in enumerate(labels.CLASS_NAMES)], per_class_thresholds, label="class")
    axis.axhline(global_threshold, color="black", linestyle="--", label=f"global {global_threshold:.2f}")
    axis.tick_params(axis="x", rotation=80, labelsize=8)
    axis.set_ylabel("threshold")
    figure.legend(loc="outside right upper", frameon=False)
    return figure


def training_curves(history: pd.DataFrame, title="Training"):
    """Loss and macro F1 per epoch, training and validation; a dashed line where fine-tuning starts."""
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=(11, 3.8))
    epochs = np.arange(1, len(history) + 1)
    for axis, metric in ((loss_axis, "loss"), (f1_axis, "f1")):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + metric in history:
                axis.plot(epochs, history[prefix + metric], style, marker="o", label=(prefix or "train_") + metric)
        if "phase" in history and history["phase"].nunique() > 1:
            start = int(np.argmax(history["phase"].to_numpy() != history["phase"].iloc[0])) + 0.5
            axis.axvline(start, color="grey", linestyle=":", label="fine-tune starts")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        if len(epochs) < 3:  # one or two epochs: ticks at the epochs, not at fractions between them
            axis.set_xticks(epochs)
            axis.set_xlim(0.5, len(epochs) + 0.5)
        axis.set_title(f"{title}: {metric}")
        axis.legend()
    figure.tight_layout()
    return figure


def ablation_scores(settings: pd.Series, scores: pd.Series):
    """An ablation: every run's score as a dot (a row per setting, a dot per seed), the setting's mean as a bar |."""
    order = list(dict.fromkeys(settings))
    figure, axis = plt.subplots(figsize=(10, 0.7 * len(order) + 1.4), layout="constrained")
    for position, setting in enumerate(order):
        values = scores[settings == setting]
        axis.plot(values, [position] * len(values), "o", color="tab:blue", alpha=0.7)
        axis.plot(values.mean(), position, "|", color="black", markersize=22, markeredgewidth=2)
    axis.set_yticks(range(len(order)), [setting.replace(" (", "\n(") for setting in order])  # long ones: two lines
    axis.set_xlabel("macro F1 at the best single threshold (dots: seeds, |: their mean)")
    axis.set_ylim(len(order) - 0.5, -0.5)
    axis.grid(axis="x", alpha=0.3)
    return figure
