"""The embedded HPA-like dataset: label sets drawn from the real statistics, rendered cells, the Kaggle layout.

One idea per file: ``label_sets`` (which classes a sample carries), ``cells`` (the field's geometry),
``drawing`` (canvas helpers), ``stains`` (red, yellow, blue), ``green_patterns`` (one per class, from
``green_nucleus``, ``green_cytoplasm`` and ``green_cytoskeleton``),
``sample`` (one field of view), ``writer`` (the dataset on disk) and ``hpav18`` (the same samples as the HPAv18
image server holds them). ``main`` is `python -m hpa_utils synth`.
"""

from hpa_utils.dataset.synthetic import hpav18
from hpa_utils.dataset.synthetic.label_sets import sample_label_sets
from hpa_utils.dataset.synthetic.sample import MIN_IMAGE_SIZE, render_sample
from hpa_utils.dataset.synthetic.writer import GENERATOR_VERSION, dataset_name, ensure_dataset, generate, make_ids

__all__ = [
    "GENERATOR_VERSION",
    "MIN_IMAGE_SIZE",
    "dataset_name",
    "ensure_dataset",
    "generate",
    "hpav18",
    "make_ids",
    "render_sample",
    "sample_label_sets",
]


def main(arguments) -> int:
    """Entry point of `python -m hpa_utils synth`: the embedded dataset in the Kaggle layout (or, --hpav18, as the
    HPAv18 image server holds it)."""
    if arguments.hpav18:
        path = hpav18.write_hpav18(arguments.out, arguments.train, image_size=arguments.size, seed=arguments.seed)
        print(f"wrote {path}: serve {path / hpav18.IMAGES_FOLDER}; labels {path / hpav18.LABELS_CSV}")
        return 0
    path = generate(
        arguments.out,
        arguments.train,
        arguments.test,
        image_size=arguments.size,
        seed=arguments.seed,
        min_per_class=arguments.min_per_class,
        workers=arguments.workers,
    )
    print(f"wrote {path}")
    return 0
