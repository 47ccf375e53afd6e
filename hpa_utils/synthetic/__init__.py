"""The embedded HPA-like dataset: label sets drawn from the real statistics, rendered cells, the Kaggle layout.

One idea per file: ``label_sets`` (which classes a sample carries), ``cells`` (the field's geometry),
``drawing`` (canvas helpers), ``stains`` (red, yellow, blue), ``green_patterns`` (one per class, from
``green_nucleus``, ``green_cytoplasm`` and ``green_cytoskeleton``),
``sample`` (one field of view) and ``writer`` (the dataset on disk).
"""

from hpa_utils.synthetic.label_sets import sample_label_sets
from hpa_utils.synthetic.sample import MIN_IMAGE_SIZE, render_sample
from hpa_utils.synthetic.writer import GENERATOR_VERSION, dataset_name, ensure_dataset, generate, make_ids

__all__ = [
    "GENERATOR_VERSION",
    "MIN_IMAGE_SIZE",
    "dataset_name",
    "ensure_dataset",
    "generate",
    "make_ids",
    "render_sample",
    "sample_label_sets",
]
