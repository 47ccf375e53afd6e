"""The Kaggle-layout data folder: train.csv, sample_submission.csv, channel images, and a validator for all of it.

``label_files`` reads the CSV files, ``images`` the channel images, ``validation`` checks a whole folder;
the names below are the ones the notebooks and the rest of the package use.
"""

from hpa_utils.dataset.images import (
    CHANNEL_MODES,
    COLORS,
    IMAGE_EXTENSIONS,
    ImageError,
    decode_channel,
    image_path,
    load_channel,
    load_sample,
)
from hpa_utils.dataset.label_files import (
    SAMPLE_SUBMISSION_CSV,
    TEST_LABELS_CSV,
    TRAIN_CSV,
    DatasetError,
    image_counts,
    read_sample_submission,
    read_test_labels,
    read_train_labels,
)
from hpa_utils.dataset.validation import main_validate, validate

__all__ = [
    "image_counts",
    "CHANNEL_MODES",
    "COLORS",
    "IMAGE_EXTENSIONS",
    "SAMPLE_SUBMISSION_CSV",
    "TEST_LABELS_CSV",
    "TRAIN_CSV",
    "DatasetError",
    "ImageError",
    "image_path",
    "decode_channel",
    "load_channel",
    "load_sample",
    "main_validate",
    "read_sample_submission",
    "read_test_labels",
    "read_train_labels",
    "validate",
]
