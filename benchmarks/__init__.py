"""Throughput benchmarks: data, augmentation, training and prediction paths beside the public kernel's."""
