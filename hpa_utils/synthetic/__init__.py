"""The embedded HPA-like dataset: label sets drawn from the real statistics, rendered cells, the Kaggle layout.

One idea per file: ``label_sets`` (which classes a sample carries), ``cells`` (the field's geometry),
``drawing`` (canvas helpers), ``stains`` (red, yellow, blue), ``green_patterns`` (one per class, from
``green_nucleus``, ``green_cytoplasm`` and ``green_cytoskeleton``),
``sample`` (one field of view), ``writer`` (the dataset on disk) and ``data_dir`` (the folder a notebook
reads: Kaggle's competition data on Kaggle, the embedded dataset elsewhere).
"""

from hpa_utils.synthetic.data_dir import resolve_data_dir
from hpa_utils.synthetic.label_sets import sample_label_sets
from hpa_utils.synthetic.sample import MIN_IMAGE_SIZE, render_sample, render_sample_and_field
from hpa_utils.synthetic.writer import GENERATOR_VERSION, dataset_name, ensure_dataset, generate, make_ids

__all__ = [
    "GENERATOR_VERSION",
    "MIN_IMAGE_SIZE",
    "dataset_name",
    "ensure_dataset",
    "generate",
    "make_ids",
    "render_sample",
    "render_sample_and_field",
    "resolve_data_dir",
    "sample_label_sets",
]
