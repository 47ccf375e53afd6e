"""What a stage measured and how it is shown: macro F1, thresholds and intervals (``metrics``), TTA and submissions
(``predict``), a stage's scores on the images it names (``evaluation``), the stage table and paired differences
(``comparison``), figures (``plots``), the run's report (``report``) and an ablation's tables (``ablation_tables``).

Exports its modules; importing this package imports none of them (``predict`` and ``evaluation`` start TensorFlow).
"""
