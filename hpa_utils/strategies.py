"""Where a stage's batches run: TensorFlow's tf.distribute strategies (a TPU, several GPUs, CPU replicas for tests)
or, under Keras' JAX backend, keras.distribution's DataParallel over every device (a TPU's chips; simulated CPU
devices for tests, JAX_NUM_CPU_DEVICES)."""

from __future__ import annotations

import keras
import tensorflow as tf

from hpa_utils import environment


def _tpu_resolver():
    """A TPUClusterResolver when a TPU is reachable, else None."""
    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()  # a named TPU (TPU_NAME, Colab, Kaggle)
    except Exception:  # ValueError "Please provide a TPU Name" and the like: no named TPU
        pass
    if tf.config.list_physical_devices("TPU"):  # a TPU VM: the chips are attached to this machine
        return tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
    return None


def split_cpu(replicas: int) -> list[str]:
    """Split the CPU into ``replicas`` logical devices (before TensorFlow first runs) and return their names.

    Raises RuntimeError when TensorFlow already runs with another number of CPU devices (restart the kernel).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError:  # TensorFlow is initialised: its devices are fixed; fine if they are already split so
        pass
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    if len(devices) != replicas:
        raise RuntimeError(
            f"{environment.CPU_REPLICAS_VARIABLE}={replicas}, but TensorFlow already runs with {len(devices)} CPU "
            "device(s): choose the strategy before anything else uses TensorFlow (restart the kernel)"
        )
    return devices


def distribution_strategy() -> tuple[tf.distribute.Strategy, str]:
    """The tf.distribute strategy for this machine and a one-line description of it.

    ``HPA_CPU_REPLICAS`` = N > 1 -> MirroredStrategy over N logical CPU devices (several GPUs simulated on
    a CPU, for tests); a TPU -> TPUStrategy; more than one GPU -> MirroredStrategy; else the default
    strategy (one GPU or the CPU). Build and compile the model inside ``strategy.scope()``.
    """
    replicas = environment.cpu_replicas()
    if replicas > 1:
        strategy = tf.distribute.MirroredStrategy(split_cpu(replicas))
        return strategy, f"MirroredStrategy, {replicas} CPU replicas ({environment.CPU_REPLICAS_VARIABLE})"
    resolver = _tpu_resolver()
    if resolver is not None:
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
        return strategy, f"TPUStrategy, {strategy.num_replicas_in_sync} TPU cores"
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        return strategy, f"MirroredStrategy, {len(gpus)} GPUs"
    device = "1 GPU" if gpus else "CPU"
    return tf.distribute.get_strategy(), f"default strategy, {device}"


def jax_data_parallel() -> tuple[int, str, str]:
    """Keras' DataParallel over every device JAX sees (set as Keras' distribution when there are several): (device
    count, device kind "CPU" / "GPU" / "TPU", a one-line description)."""
    devices = keras.distribution.list_devices()
    kind = devices[0].split(":")[0].upper()
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return len(devices), kind, f"DataParallel (JAX), {len(devices)} {kind} devices"
    return 1, kind, f"one {kind} device (JAX)"
