"""The data: the Kaggle-layout folder (train.csv, sample_submission.csv, channel images) and its validator, the 28
classes, the uint8 image cache, splits and folds, stain statistics, the embedded dataset and the HPAv18 images.

Exported here, the Kaggle layout that the notebooks and the rest of the package use: ``label_files`` reads the CSV
files, ``images`` (with ``png``) the channel images, ``validation`` checks a whole folder. Its other modules are
imported by name: ``labels`` (the classes), ``cache``, ``folds``, ``image_statistics``, and the sub-packages
``synthetic`` (the embedded dataset) and ``external`` (HPAv18).
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
