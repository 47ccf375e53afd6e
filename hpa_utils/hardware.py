"""Hardware: the distribution strategy (TPU, GPUs, CPU replicas), the precision policy, what a stage records.

``BATCH_SIZE`` is **global**: the images of one training step over all replicas together. Each replica
takes ``BATCH_SIZE / replicas`` of them, and the gradients are summed over replicas into one step that is
the same step, in expectation, as one device taking the whole batch. So a run keeps its learning rate when
the replica count changes (one T4 or two; 1 or 2 CPU replicas), and two replicas halve each one's memory and
work per step. To fill two GPUs better, raise BATCH_SIZE and scale the learning rates with it (linear
scaling: twice the batch, twice the rate; keep a warm-up). What does differ per replica: BatchNormalization
layers that train (a backbone from scratch, ``input_bn``) normalise with each replica's own batch statistics.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess

import keras
import tensorflow as tf

from hpa_utils import environment, memory

PRECISION_SETTINGS = ("auto", "on", "off")
MIXED, FULL = "mixed_float16", "float32"
TENSOR_CORES = (7, 0)  # compute capability from which float16 runs on tensor cores (V100, T4, A100, H100, ...)


@dataclasses.dataclass(frozen=True)
class Hardware:
    """Where a stage trains: its tf.distribute strategy, in words, and the Keras precision policy it set."""

    strategy: tf.distribute.Strategy
    description: str
    precision_policy: str

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def strategy_name(self) -> str:
        """ "MirroredStrategy", "TPUStrategy" or "default" (one device)."""
        name = type(self.strategy).__name__
        return "default" if name.startswith("_Default") else name

    def record(self) -> dict:
        """What metrics.json keeps of it."""
        return {"replicas": self.replicas, "strategy": self.strategy_name, "precision_policy": self.precision_policy}

    def __str__(self) -> str:
        return f"{self.description}; precision policy {self.precision_policy}"


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


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each visible GPU, e.g. [(7, 5), (7, 5)] on Kaggle's T4 x2; [] without GPUs."""
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        found.append(tuple(capability) if capability else (0, 0))
    return found


def choose_precision(setting: str, capabilities: list[tuple[int, int]]) -> str:
    """The policy for MIXED_PRECISION ``setting`` on GPUs of these compute capabilities.

    "auto": mixed_float16 where every GPU has tensor cores (7.0 or more), float32 on the CPU, a TPU and
    older GPUs (P100: 6.0, where float16 is no faster); "on": mixed_float16; "off": float32.
    """
    if setting not in PRECISION_SETTINGS:
        raise ValueError(f"MIXED_PRECISION={setting!r} is not supported; choose one of {PRECISION_SETTINGS}")
    if setting == "auto":
        return MIXED if capabilities and min(capabilities) >= TENSOR_CORES else FULL
    return MIXED if setting == "on" else FULL


def prepare(mixed_precision: str = "auto", *, batch_size: int | None = None) -> Hardware:
    """Choose the strategy and set Keras' global precision policy; call before building a model.

    Under mixed_float16 layers compute in float16 and keep float32 weights; ``build_model``'s sigmoid output
    stays float32, so the loss does too, and ``compile`` wraps the optimizer in Keras' LossScaleOptimizer.
    Weights files hold float32 values either way, so a stage loads the last one's whatever either's policy.
    Raises ValueError for an unknown setting, or a batch_size that the replicas do not divide.
    """
    strategy, description = distribution_strategy()
    policy = choose_precision(mixed_precision, gpu_compute_capabilities())
    keras.mixed_precision.set_global_policy(policy)
    hardware = Hardware(strategy, description, policy)
    if batch_size is not None and batch_size % hardware.replicas:
        raise ValueError(
            f"BATCH_SIZE={batch_size} is the batch of all {hardware.replicas} replicas together; "
            f"make it a multiple of {hardware.replicas}"
        )
    return hardware


def devices_of(model) -> int:
    """How many devices a model's batches are split over: its strategy's replicas (TensorFlow), or the devices of
    Keras' distribution (JAX); 1 on one device."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None:
        return int(strategy.num_replicas_in_sync)
    distribution = keras.distribution.distribution()
    return len(distribution.device_mesh.devices.flatten()) if distribution is not None else 1


class AcceleratorMemoryError(RuntimeError):
    """Training or prediction asked a device for more memory than it has; the message says what to try."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device's out-of-memory error (TensorFlow's ResourceExhaustedError, XLA's
    RESOURCE_EXHAUSTED)."""
    text = f"{type(error).__name__}: {error}"
    return any(mark in text for mark in ("ResourceExhaustedError", "RESOURCE_EXHAUSTED", "OOM when allocating"))


def device_memory() -> str:
    """The devices and their memory in words: "2 x Tesla T4 (15360 MiB each)" (nvidia-smi), else the GPUs'
    names, else "the CPU (24 GB of RAM)"."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            found = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.split("\n")[0]
            name, total = (part.strip() for part in found.split(","))
            return f"{len(gpus)} x {name} ({total} each)"
        except (OSError, ValueError, subprocess.SubprocessError):
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    total = memory.total_bytes()
    return f"the CPU ({total / 1e9:.0f} GB of RAM)" if total else "the CPU"


def out_of_memory(doing: str, *, image_size: int, batch_size: int, replicas: int, kept: str = ""):
    """The AcceleratorMemoryError for ``doing`` ("training", "predicting"): the device and its memory, the image
    size, the batch per replica, and the largest batch to try (half, still a multiple of the replicas)."""
    per_replica = math.ceil(batch_size / replicas)
    half = max(replicas, batch_size // 2 // replicas * replicas)
    over = f" over {replicas} replicas" if replicas > 1 else ""
    return AcceleratorMemoryError(
        f"out of memory on {device_memory()} {doing} at {image_size} px with {per_replica} images per replica "
        f"(a batch of {batch_size}{over}): try BATCH_SIZE={half} or less, with the learning rates scaled "
        f"down alike{kept}"
    )
