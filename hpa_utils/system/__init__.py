"""The machine a stage runs on: where it runs (Kaggle or not, its inputs in any mount layout, the CPU, the commit:
``environment``), its disks (``disk``: free space, a full disk in one line) and files written whole
(``atomic_files``), a kernel's peak memory (``memory``), the backend, devices, strategy and precision
(``hardware``), and what Kaggle's image lacks, from the dataset's wheels (``offline_wheels``).

Exports its modules; importing this package imports none of them (``hardware`` starts TensorFlow).
"""
