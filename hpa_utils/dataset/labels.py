"""The 28 classes: names in competition order, Target strings, multi-hot arrays, real counts."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np

from hpa_utils import errors

CLASS_NAMES: tuple[str, ...] = (
    "Nucleoplasm",
    "Nuclear membrane",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nuclear speckles",
    "Nuclear bodies",
    "Endoplasmic reticulum",
    "Golgi apparatus",
    "Peroxisomes",
    "Endosomes",
    "Lysosomes",
    "Intermediate filaments",
    "Actin filaments",
    "Focal adhesion sites",
    "Microtubules",
    "Microtubule ends",
    "Cytokinetic bridge",
    "Mitotic spindle",
    "Microtubule organizing center",
    "Centrosome",
    "Lipid droplets",
    "Plasma membrane",
    "Cell junctions",
    "Mitochondria",
    "Aggresome",
    "Cytosol",
    "Cytoplasmic bodies",
    "Rods & rings",
)
NUM_CLASSES = len(CLASS_NAMES)
LABEL_SETS_FILE = Path(__file__).with_name("train_label_sets.csv")


class TargetError(errors.InputError):
    """A Target (or Predicted) string that does not parse; ``kind`` and ``culprit`` say why, for callers that group.

    kind is "empty", "non-integer label" (culprit: the token) or "label outside" (culprit: the label).
    """

    def __init__(self, message: str, kind: str, culprit=None):
        super().__init__(message)
        self.kind, self.culprit = kind, culprit

    def __reduce__(self):
        return (type(self), (str(self), self.kind, self.culprit))


def parse_target(text, where: str = "Target") -> list[int]:
    """Parse a space-separated Target string ("16 0") into a sorted list of unique labels.

    ``where`` names the culprit in the error (file, row, Id). Raises TargetError (a ValueError) on an
    empty or non-integer Target or a label outside 0..27.
    """
    if not isinstance(text, str) or not text.strip():
        raise TargetError(f"{where}: empty Target (expected labels 0..{NUM_CLASSES - 1})", "empty")
    result = set()
    for token in text.split():
        try:
            label = int(token)
        except ValueError as error:
            raise TargetError(
                f"{where}: Target {text!r} has a non-integer label {token!r}", "non-integer label", token
            ) from error
        if not 0 <= label < NUM_CLASSES:
            raise TargetError(
                f"{where}: Target {text!r} has label {label} outside 0..{NUM_CLASSES - 1}", "label outside", label
            )
        result.add(label)
    return sorted(result)


def format_target(labels) -> str:
    """Labels (any iterable of ints) as a Target string, ascending: [16, 0] -> "0 16"."""
    return " ".join(str(int(label)) for label in sorted(set(int(label) for label in labels)))


def to_multi_hot(label_lists, dtype=np.uint8) -> np.ndarray:
    """A list of label lists as an (N, 28) multi-hot array."""
    result = np.zeros((len(label_lists), NUM_CLASSES), dtype=dtype)
    for row, labels in enumerate(label_lists):
        result[row, list(labels)] = 1
    return result


@lru_cache(maxsize=1)
def train_label_sets() -> tuple[tuple[tuple[int, ...], ...], np.ndarray]:
    """The distinct label sets of the real Kaggle train.csv and how often each occurs."""
    with open(LABEL_SETS_FILE, newline="") as file:
        rows = list(csv.DictReader(file))
    sets = tuple(tuple(int(label) for label in row["Target"].split()) for row in rows)
    counts = np.array([int(row["count"]) for row in rows], dtype=np.int64)
    return sets, counts


def train_class_counts() -> np.ndarray:
    """How many images of the real Kaggle train set (31,072) carry each class."""
    sets, counts = train_label_sets()
    result = np.zeros(NUM_CLASSES, dtype=np.int64)
    for label_set, count in zip(sets, counts):
        result[list(label_set)] += count
    return result
