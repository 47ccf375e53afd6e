"""Utilities for the Human Protein Atlas notebooks: data, models, training, the pipeline runner.

Import the modules you need (``from hpa_utils import labels, dataset``); nothing runs at import.
"""

__version__ = "0.1.0"
