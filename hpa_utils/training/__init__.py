"""Training a model: tf.data pipelines (``inputs``), augmentation (``augment``: the dihedral views, imgaug's
"strong" with the NumPy names imgaug 0.4.0 needs), compiling, callbacks, fitting and the warm-up recipe
(``fitting``), and the time budget of a session (``budget``).

Exports its modules; importing this package imports none of them (``fitting`` and ``inputs`` start TensorFlow).
"""
