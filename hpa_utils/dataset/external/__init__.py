"""External training data: the HPAv18 images (``downloader``), near-duplicates of competition ones (``duplicates``)."""

from hpa_utils.dataset.external.downloader import V18_URL, Settings, describe, download, image_url
from hpa_utils.dataset.external.duplicates import green_hashes, near_duplicates
from hpa_utils.dataset.external.training_images import ExternalImages, load_external, with_external

__all__ = [
    "Settings",
    "V18_URL",
    "ExternalImages",
    "describe",
    "download",
    "green_hashes",
    "image_url",
    "load_external",
    "near_duplicates",
    "with_external",
]
