"""Hardware: the backend, the devices and the strategy (tf.distribute, or JAX's DataParallel), the precision
policy, device memory, what a stage records.

``BATCH_SIZE`` is **global**: the images of one training step over all replicas together. Each replica
takes ``BATCH_SIZE / replicas`` of them, and the gradients are summed over replicas into one step that is
the same step, in expectation, as one device taking the whole batch. So a run keeps its learning rate when
the replica count changes (one T4 or two; 1 or 2 CPU replicas), and two replicas halve each one's memory and
work per step. To fill two GPUs better, raise BATCH_SIZE and scale the learning rates with it (linear
scaling: twice the batch, twice the rate; keep a warm-up). What does differ per replica: BatchNormalization
layers that train (a backbone from scratch, ``input_bn``) normalise with each replica's own batch statistics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import subprocess

import keras
import tensorflow as tf

from hpa_utils import errors
from hpa_utils.system import environment, memory


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
        raise errors.SetupError(
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


PRECISION_SETTINGS = ("auto", "on", "off")
MIXED, MIXED_TPU, FULL = "mixed_float16", "mixed_bfloat16", "float32"
TENSOR_CORES = (7, 0)  # compute capability from which float16 runs on tensor cores (V100, T4, A100, H100, ...)


@dataclasses.dataclass(frozen=True)
class Hardware:
    """Where a stage trains: Keras' backend, the devices (kind and count), the tf.distribute strategy (TensorFlow;
    None under JAX, where Keras' distribution spreads the batches), in words, and the precision policy it set."""

    backend: str
    device_kind: str
    devices: int
    description: str
    precision_policy: str
    strategy: tf.distribute.Strategy | None = None

    @property
    def replicas(self) -> int:
        return self.devices

    @property
    def strategy_name(self) -> str:
        """ "MirroredStrategy", "TPUStrategy", "default" (one device) or "DataParallel" / "none" (JAX)."""
        if self.strategy is None:
            return "DataParallel" if self.devices > 1 else "none"
        name = type(self.strategy).__name__
        return "default" if name.startswith("_Default") else name

    def scope(self):
        """The context models are built and compiled in: the strategy's scope (TensorFlow), none needed (JAX)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def record(self) -> dict:
        """What metrics.json keeps of it."""
        return {
            "backend": self.backend,
            "device_kind": self.device_kind,
            "devices": self.devices,
            "replicas": self.replicas,
            "strategy": self.strategy_name,
            "precision_policy": self.precision_policy,
        }

    def __str__(self) -> str:
        return f"{self.description}; precision policy {self.precision_policy}"


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each GPU, e.g. [(7, 5), (7, 5)] on Kaggle's T4 x2; [] without GPUs. TensorFlow's
    devices under its backend; nvidia-smi's under JAX (Kaggle's TPU image has TensorFlow's CPU build)."""
    if keras.backend.backend() == "tensorflow":
        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            found.append(tuple(capability) if capability else (0, 0))
        return found
    try:
        return [tuple(int(part) for part in line.split(".")) for line in _nvidia_smi("compute_cap")]
    except ValueError:
        return []


def _nvidia_smi(query: str) -> list[str]:
    """nvidia-smi's answer to ``--query-gpu=<query>``, a line per GPU; [] where it is missing or fails."""
    try:
        found = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in found.stdout.splitlines() if line.strip()] if found.returncode == 0 else []


def choose_precision(setting: str, capabilities: list[tuple[int, int]], tpu: bool = False) -> str:
    """The policy for MIXED_PRECISION ``setting`` on GPUs of these compute capabilities (or on a TPU).

    "auto": mixed_bfloat16 on a TPU (its native format: no loss scaling), mixed_float16 where every GPU has tensor
    cores (7.0 or more), float32 on the CPU and older GPUs (P100: 6.0, where float16 is no faster); "on": mixed
    (bfloat16 on a TPU, float16 elsewhere); "off": float32.
    """
    if setting not in PRECISION_SETTINGS:
        raise errors.InputError(f"MIXED_PRECISION={setting!r} is not supported; choose one of {PRECISION_SETTINGS}")
    mixed = MIXED_TPU if tpu else MIXED
    if setting == "auto":
        return mixed if tpu or (capabilities and min(capabilities) >= TENSOR_CORES) else FULL
    return mixed if setting == "on" else FULL


def prepare(mixed_precision: str = "auto", *, batch_size: int | None = None) -> Hardware:
    """Choose where batches run (``distribution_strategy``, ``jax_data_parallel``) and set Keras' global precision
    policy; call before building a model.

    Under mixed_float16 layers compute in float16 and keep float32 weights; ``build_model``'s sigmoid output
    stays float32, so the loss does too, and ``compile`` wraps the optimizer in Keras' LossScaleOptimizer.
    Under mixed_bfloat16 (TPU) no loss scaling is needed. Weights files hold float32 values either way, so a stage
    loads the last one's whatever either's policy or backend. Raises ValueError for an unknown setting, or a
    batch_size that the devices do not divide.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        devices, kind, description = jax_data_parallel()
        strategy = None
    else:
        strategy, description = distribution_strategy()
        devices, kind = int(strategy.num_replicas_in_sync), _tensorflow_device_kind(strategy)
    policy = choose_precision(mixed_precision, gpu_compute_capabilities(), tpu=kind == "TPU")
    keras.mixed_precision.set_global_policy(policy)
    hardware = Hardware(backend, kind, devices, description, policy, strategy)
    if batch_size is not None and batch_size % hardware.replicas:
        raise errors.InputError(
            f"BATCH_SIZE={batch_size} is the batch of all {hardware.replicas} devices together; "
            f"make it a multiple of {hardware.replicas}"
        )
    return hardware


def _tensorflow_device_kind(strategy) -> str:
    if type(strategy).__name__.startswith("TPU"):
        return "TPU"
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


def scope_of(model):
    """The context a model was built in, to compile it in the same: its strategy's scope (TensorFlow), none (JAX)."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def devices_of(model) -> int:
    """How many devices a model's batches are split over: its strategy's replicas (TensorFlow), or the devices of
    Keras' distribution (JAX); 1 on one device."""
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is not None:
        return int(strategy.num_replicas_in_sync)
    distribution = keras.distribution.distribution()
    return len(distribution.device_mesh.devices.flatten()) if distribution is not None else 1


class AcceleratorMemoryError(errors.StoppedError):
    """Training or prediction asked a device for more memory than it has; the message says what to try."""


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device's out-of-memory error (TensorFlow's ResourceExhaustedError, XLA's
    RESOURCE_EXHAUSTED)."""
    text = f"{type(error).__name__}: {error}"
    return any(mark in text for mark in ("ResourceExhaustedError", "RESOURCE_EXHAUSTED", "OOM when allocating"))


def device_memory() -> str:
    """The devices and their memory in words: "2 x Tesla T4 (15360 MiB each)" (nvidia-smi), else the GPUs'
    names, else "the CPU (24 GB of RAM)"."""
    if keras.backend.backend() == "jax" and keras.distribution.list_devices()[0].startswith("tpu"):
        return f"{len(keras.distribution.list_devices())} TPU chips (16 GB each on a v5e)"
    gpus = tf.config.list_physical_devices("GPU")
    answers = _nvidia_smi("name,memory.total")
    if answers and "," in answers[0]:
        name, total = (part.strip() for part in answers[0].split(",", 1))
        return f"{len(answers)} x {name} ({total} each)"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    total = memory.total_bytes()
    return f"the CPU ({total / 1e9:.0f} GB of RAM)" if total else "the CPU"


def out_of_memory(doing: str, *, image_size: int, batch_size: int, replicas: int, more: str = ""):
    """The AcceleratorMemoryError for ``doing`` ("training", "predicting ..."): the device and its memory, the image
    size, the batch per replica, and the largest batch to try (half, still a multiple of the replicas); ``more``: what
    else the caller has to say (training: the learning rates, where its best epoch is kept)."""
    per_replica = math.ceil(batch_size / replicas)
    half = max(replicas, batch_size // 2 // replicas * replicas)
    over = f" over {replicas} replicas" if replicas > 1 else ""
    return AcceleratorMemoryError(
        f"out of memory on {device_memory()} {doing} at {image_size} px with {per_replica} images per replica "
        f"(a batch of {batch_size}{over}): try BATCH_SIZE={half} or less{more}"
    )
