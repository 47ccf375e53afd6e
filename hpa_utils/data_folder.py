"""The data folder a stage reads: DATA_DIR as given, Kaggle's competition data on Kaggle, else the embedded dataset
(generated on first use). ``environment`` finds Kaggle's data, ``synthetic`` writes the embedded one."""

from __future__ import annotations

from pathlib import Path

from hpa_utils import environment
from hpa_utils.synthetic import ensure_dataset


def resolve_data_dir(
    data_dir="",
    *,
    synthetic_train: int = 600,
    synthetic_test: int = 200,
    synthetic_size: int = 512,
    synthetic_seed: int = 0,
    synthetic_min_per_class: int = 2,
) -> Path:
    """The data folder a notebook reads: ``DATA_DIR = ""`` means Kaggle's competition data, else the synthetic dataset.

    A non-empty ``data_dir`` is used as given (FileNotFoundError when it is not a folder). On Kaggle
    it is the competition data wherever it is mounted (InputNotFoundError when it is not attached).
    Elsewhere the embedded synthetic dataset under <repo>/data/ is generated on first use with the
    ``synthetic_*`` arguments and reused afterwards.
    """
    if data_dir is not None and str(data_dir) != "":
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"DATA_DIR {str(data_dir)!r}: folder not found")
        return path
    if environment.is_kaggle():
        return environment.find_competition_data()
    return Path(
        ensure_dataset(
            environment.REPO_ROOT / "data",
            n_train=synthetic_train,
            n_test=synthetic_test,
            image_size=synthetic_size,
            seed=synthetic_seed,
            min_per_class=synthetic_min_per_class,
        )
    )
