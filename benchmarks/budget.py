"""The ``full`` preset's hours per stage on Kaggle's GPU T4 x2, projected: ``python -m benchmarks.budget``.

Not measured: no GPU has been lent to this project. The projection starts from NVIDIA's published ResNet-50 v1.5
figures (NVIDIA/DeepLearningExamples, TensorFlow/Classification/ConvNets/resnet50v1.5/README.md, 20.06-tf1
container). They publish no T4 *training* throughput, only T4 inference, so a T4's training rate is its
inference rate times the training/inference ratio they publish for the V100 in the same precision; two T4s
scale as their DGX-1 weak scaling; the cost per image grows with the pixels (224 -> 512: 5.2x) and, for
InceptionV3, with its multiply-adds (5.7 against ResNet-50's 4.1 G). TTA runs on one GPU (predict_tta).

The TPU v5e-8 column is on paper too, and rougher: no published ResNet-50 training figure for it was found, so it
is the T4 x2 mixed-precision projection scaled by peak throughput, 8 chips x 197 TFLOPS bfloat16 (Google Cloud's
v5e specification) against 2 x 65 TFLOPS float16 (NVIDIA's T4 specification), at the same utilisation. With
``--external``, training takes the 74,606 HPAv18 images too (every fold trains on them; none is held out).
"""

from __future__ import annotations

import argparse

from hpa_utils.stages import parameters
from hpa_utils.system import environment

TRAIN_IMAGES = 31_072  # the competition's train.csv
TEST_IMAGES = 11_702  # its sample_submission.csv
# images/s at 224 px, batch 128-256 (the README above): T4 inference; V100 training and inference
T4_INFERENCE = {"mixed_float16": 995.81, "float32": 429.83}
V100_TRAINING = {"mixed_float16": 1270.0, "float32": 412.0}
V100_INFERENCE = {"mixed_float16": 2770.61, "float32": 1324.91}
TWO_GPU_SCALING = 7.48 / 8 * 2  # DGX-1 mixed precision weak scaling, 8 GPUs: 7.48x
GIGA_MULTIPLY_ADDS = {"resnet50": 4.1, "inceptionv3": 5.7}
PEAK_TFLOPS = {"T4 float16": 65.0, "v5e bfloat16": 197.0}  # per T4 (NVIDIA) and per v5e chip (Google Cloud)
TPU_V5E8_OVER_T4X2 = 8 * PEAK_TFLOPS["v5e bfloat16"] / (2 * PEAK_TFLOPS["T4 float16"])
EXTERNAL_IMAGES = 74_606  # HPAv18: ../shared/hpa/external_hpav18.csv


def images_per_second(backbone: str, image_size: int, policy: str, *, training: bool, gpus: int) -> float:
    """Projected images/s of ``backbone`` at ``image_size`` on ``gpus`` T4s (1 or 2) in ``policy``."""
    rate = T4_INFERENCE[policy] * (V100_TRAINING[policy] / V100_INFERENCE[policy] if training else 1.0)
    rate *= GIGA_MULTIPLY_ADDS["resnet50"] / GIGA_MULTIPLY_ADDS[backbone] * (224 / image_size) ** 2
    return rate * (TWO_GPU_SCALING if gpus == 2 else 1.0)


def stage_hours(settings: dict, policy: str, folds: int = 1, external: int = 0) -> float:
    """Hours of one stage on T4 x2: its epochs over the training images (and ``external`` ones) with a validation
    pass each, and (04) each fold's TTA over its held-out images and the test set."""
    epochs = settings.get("EPOCHS", 0) + settings.get("WARMUP_EPOCHS", 0) + settings.get("FINETUNE_EPOCHS", 0)
    validation = TRAIN_IMAGES // folds if folds > 1 else round(TRAIN_IMAGES * settings["VALIDATION_FRACTION"])
    backbone, size = settings["BACKBONE"], settings["IMAGE_SIZE"]
    train_rate = images_per_second(backbone, size, policy, training=True, gpus=2)
    predict_rate = images_per_second(backbone, size, policy, training=False, gpus=2)
    seconds = epochs * ((TRAIN_IMAGES + external - validation) / train_rate + validation / predict_rate)
    if folds > 1:
        tta_rate = images_per_second(backbone, size, policy, training=False, gpus=1)
        seconds += settings.get("TTA", 1) * (validation + TEST_IMAGES) / tta_rate
    return seconds * folds / 3600


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="full")
    parser.add_argument("--external", action="store_true", help="train on the 74,606 HPAv18 images too")
    arguments = parser.parse_args(argv)
    preset, external = parameters.load_preset(arguments.preset), EXTERNAL_IMAGES if arguments.external else 0
    limit = environment.KAGGLE_SESSION_HOURS - environment.KAGGLE_MARGIN_HOURS
    with_external = f", with the {EXTERNAL_IMAGES:,} external images" if external else ""
    print(f"# projected hours (not measured: published figures, scaled{with_external}), session limit {limit:g} h")
    print(f"{'stage':<20} {'T4x2 mixed':>11} {'T4x2 fp32':>10} {'TPU v5e-8':>10}  fits one session (T4 mixed / TPU)")
    for stage in ("01_baseline", "02_warmup_finetune", "03_upscale", "04_kfold"):
        settings = preset["parameters"] | (preset["stages"].get(stage) or {})
        settings.setdefault("VALIDATION_FRACTION", 0.2)
        if stage == "03_upscale":
            settings = preset["parameters"] | (preset["stages"]["02_warmup_finetune"]) | settings
        folds = settings.get("N_FOLDS", 1) if stage == "04_kfold" else 1
        hours = {policy: stage_hours(settings, policy, folds, external) for policy in ("mixed_float16", "float32")}
        tpu = hours["mixed_float16"] / TPU_V5E8_OVER_T4X2
        verdict = " / ".join(
            "yes" if value <= limit else "no: --fold-kernels" for value in (hours["mixed_float16"], tpu)
        )
        print(f"{stage:<20} {hours['mixed_float16']:>11.2f} {hours['float32']:>10.2f} {tpu:>10.2f}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
