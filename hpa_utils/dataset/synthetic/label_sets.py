"""Label sets for the embedded dataset, drawn from the real train.csv's statistics, with a floor per class."""

from __future__ import annotations

import numpy as np

from hpa_utils import errors
from hpa_utils.dataset import labels as labels_module


def sample_label_sets(n: int, rng: np.random.Generator, min_per_class: int = 2) -> list[list[int]]:
    """Draw ``n`` label sets from the real train.csv distribution (frequencies, set sizes, co-occurrence).

    Then every class is made to appear at least ``min_per_class`` times (or the largest smaller floor
    that ``n`` images can hold): draws of the most common sets are replaced by real label sets that
    contain a missing class, rarest class first. Deterministic given ``rng``. Raises ValueError for
    n < 1 or a negative floor.
    """
    n = errors.integer("n", n, minimum=1)
    min_per_class = errors.integer("min_per_class", min_per_class, minimum=0)
    sets, counts = labels_module.train_label_sets()
    membership = labels_module.to_multi_hot(sets, dtype=bool)
    draws = rng.choice(len(sets), size=n, p=counts / counts.sum())
    for floor in range(min_per_class, 0, -1):
        enforced = _enforce_floor(draws.copy(), floor, membership, counts, rng)
        if enforced is not None:
            draws = enforced
            break
    return [list(sets[index]) for index in draws]


def _enforce_floor(draws, floor, membership, set_counts, rng):
    """Replace draws until every class occurs ``floor`` times; None when n images cannot hold it."""
    real_class_counts = membership.T.astype(np.int64) @ set_counts
    class_counts = membership[draws].sum(axis=0)
    while True:
        missing = np.flatnonzero(class_counts < floor)
        if missing.size == 0:
            return draws
        label = missing[np.argmin(real_class_counts[missing])]
        # a draw may go only if every class it carries stays at or above the floor without it
        removable_sets = np.all(~membership | (class_counts > floor), axis=1)
        removable = np.flatnonzero(removable_sets[draws])
        if removable.size == 0:
            return None
        set_frequency = np.bincount(draws[removable], minlength=len(membership))
        most_common = np.flatnonzero(set_frequency == set_frequency.max())
        victim_set = most_common[rng.integers(most_common.size)]
        victim = rng.choice(removable[draws[removable] == victim_set])
        candidates = np.flatnonzero(membership[:, label])
        weights = set_counts[candidates] / set_counts[candidates].sum()
        replacement = candidates[rng.choice(candidates.size, p=weights)]
        class_counts -= membership[draws[victim]]
        class_counts += membership[replacement]
        draws[victim] = replacement
