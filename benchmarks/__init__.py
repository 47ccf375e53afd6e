"""Throughput benchmarks: the project's data, augmentation, training and prediction paths against the public kernel's."""
