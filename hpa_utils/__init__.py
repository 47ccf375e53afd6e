"""Utilities for the Human Protein Atlas notebooks: data, models, training, the pipeline runner.

Import the modules you need (``from hpa_utils import labels, dataset``); nothing runs at import. A notebook
starts its stage with ``run = hpa_utils.start("01_baseline", globals())`` (``stage_run.start``).
"""

__version__ = "0.1.0"


def start(stage: str, namespace: dict):
    """Set up a notebook's stage in one call and print one line: see ``stage_run.start``."""
    from hpa_utils.pipeline import stage_run  # on call: `python -m hpa_utils` and 00_eda start without TensorFlow

    return stage_run.start(stage, namespace)
