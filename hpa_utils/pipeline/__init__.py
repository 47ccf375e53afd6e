"""Stages run as a pipeline: a notebook's one setup line (``stage_run``: its parameters, data folder, seed, device
and budget), its images, split and pipelines (``training_data``), 04's folds and their merge (``kfold``), what a stage
writes (``stage_space``), the papermill pipeline (``runner``), why a stage stopped (``stage_failures``) and ablations
(``ablation``).

Exports its modules; importing this package imports none of them (``kfold`` and ``training_data`` start TensorFlow).
"""
