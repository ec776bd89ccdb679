"""Benchmark: the EfficientNet-Lite0 backbone, weights conversion and feature extraction speed.

Each measurement runs in its own process (so caches, graph tracing and TF start-up of one do not
flatter another) and prints one JSON line; the parent prints a table:

1. ``import tensorflow + keras`` (baseline: what every training process pays first);
2. first use: convert the installed ``.pth`` (read without torch, assign, save ``.weights.h5``)
   into an empty cache, and build the feature extractor; then the same with the cache filled;
3. Keras feature extraction at 224x224, batch 32 (ms/image), beside MobileNetV3-Small (random
   weights, same input) as the baseline of the architecture it replaces as default;
4. the feature extractor exported to TFLite (``training.export``: float32, dynamic-range, full
   int8 calibrated on demo images) run with ``ai_edge_litert`` on 2 threads at batch 1, 8 and
   32 (ms/image), and the quantized features' cosine similarity to float32 on other demo images.

Usage: ``python bench/backbone_speed.py`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEMO_IMAGES = REPO / "demo" / "catalog" / "images"
SIDE = 224
BATCH = 32
# Timed batches after one warm-up batch; the median is reported (2 shared cores are noisy).
REPEATS = 5
# MediaPipe Model Maker calibrates int8 on a few dozen images; the bench does the same.
CALIBRATION_IMAGES = 32
EVALUATION_IMAGES = 64
LITERT_THREADS = 2
# Per-image cost depends on the batch: big batches spill the expanded activations out of cache.
LITERT_BATCHES = (1, 8, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # internal: run one measurement
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(MODES[args.mode](args)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as cache_dir:
        results = {mode: _run(mode, cache_dir) for mode in MODES}
    _print_table(results)


def _run(mode: str, cache_dir: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--mode", mode, "--cache-dir", cache_dir],
                            capture_output=True, text=True, check=True, cwd=REPO).stdout
    return json.loads(next(line[7:] for line in output.splitlines()
                           if line.startswith("RESULT ")))


def _timed(function) -> tuple[object, float]:
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def _import(args) -> dict:
    _, seconds = _timed(lambda: (__import__("tensorflow"), __import__("keras")))
    return {"seconds": seconds}


def _load(args) -> dict:
    import keras  # noqa: F401  (imported first: its start-up is the baseline row, not ours)

    from training.backbones.efficientnet_lite_weights import efficientnet_lite_weights_file
    from training.backbones.pretrained import pretrained_efficientnet_lite_feature_extractor

    cache = Path(args.cache_dir)
    _, resolve = _timed(lambda: efficientnet_lite_weights_file("imagenet", cache_dir=cache))
    _, build = _timed(lambda: pretrained_efficientnet_lite_feature_extractor(cache_dir=cache))
    return {"resolve": resolve, "build": build}


def _per_image_ms(run, batch: np.ndarray) -> float:
    run(batch)  # warm-up: graph tracing / tensor allocation
    times = [_timed(lambda: run(batch))[1] for _ in range(REPEATS)]
    return float(np.median(times)) / len(batch) * 1000


def _keras(args) -> dict:
    import keras

    from training.backbones.pretrained import pretrained_efficientnet_lite_feature_extractor

    batch = _demo_images(BATCH, offset=0).astype(np.float32)
    lite0 = pretrained_efficientnet_lite_feature_extractor(cache_dir=args.cache_dir)
    mobilenet = keras.applications.MobileNetV3Small(
        input_shape=(SIDE, SIDE, 3), include_top=False, weights=None, pooling="avg",
        include_preprocessing=True)
    return {"lite0": _per_image_ms(lite0.predict_on_batch, batch),
            "mobilenet": _per_image_ms(mobilenet.predict_on_batch, batch)}


def _tflite(args) -> dict:
    from training.backbones.pretrained import pretrained_efficientnet_lite_feature_extractor
    from training.export import export_tflite

    model = pretrained_efficientnet_lite_feature_extractor(cache_dir=args.cache_dir)
    calibration = _demo_images(CALIBRATION_IMAGES, offset=0)
    evaluation = _demo_images(EVALUATION_IMAGES, offset=CALIBRATION_IMAGES)
    rows, reference = {}, None
    for quantization in ("float32", "dynamic", "int8"):
        flatbuffer, export_seconds = _timed(lambda q=quantization: export_tflite(
            model, quantization=q, representative=calibration))
        features = _litert_features(flatbuffer, evaluation)
        reference = features if reference is None else reference
        cosine = np.sum(features * reference, 1) / (
            np.linalg.norm(features, axis=1) * np.linalg.norm(reference, axis=1))
        rows[quantization] = {
            "export_s": export_seconds, "mb": len(flatbuffer) / 1e6,
            **{f"ms_b{size}": _per_image_ms(_litert_runner(flatbuffer, size), evaluation[:size])
               for size in LITERT_BATCHES},
            "cos_mean": float(cosine.mean()), "cos_min": float(cosine.min()),
        }
    return rows


def _litert_runner(flatbuffer: bytes, batch_size: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer, num_threads=LITERT_THREADS)
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(source["index"], (batch_size, SIDE, SIDE, 3))
    interpreter.allocate_tensors()

    def run(images: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], images.astype(np.float32))
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])

    return run


def _litert_features(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    run = _litert_runner(flatbuffer, BATCH)
    return np.concatenate([run(images[i:i + BATCH]) for i in range(0, len(images), BATCH)])


def _demo_images(count: int, *, offset: int) -> np.ndarray:
    """``count`` demo catalog images (every category in turn), decoded as the site decodes."""
    from classifier.preprocessing import decode_image

    folders = sorted(p for p in DEMO_IMAGES.iterdir() if p.is_dir())
    files = [sorted(f.glob("*.*")) for f in folders]
    interleaved = [f[i] for i in range(max(map(len, files))) for f in files if i < len(f)]
    chosen = interleaved[offset:offset + count]
    return np.stack([decode_image(p.read_bytes(), size=(SIDE, SIDE)) for p in chosen])


MODES = {"import": _import, "convert": _load, "cached": _load, "keras": _keras,
         "tflite": _tflite}


def _print_table(results: dict) -> None:
    convert, cached = results["convert"], results["cached"]
    print(f"\n{'EfficientNet-Lite0 backbone':<58}{'value':>12}")
    print("-" * 70)
    print(f"{'import tensorflow + keras (baseline)':<58}{results['import']['seconds']:>10.1f} s")
    print(f"{'first use: convert .pth -> .weights.h5':<58}{convert['resolve']:>10.1f} s")
    print(f"{'first use: build feature extractor + load weights':<58}{convert['build']:>10.1f} s")
    print(f"{'cached: find converted weights':<58}{cached['resolve'] * 1000:>9.1f} ms")
    print(f"{'cached: build feature extractor + load weights':<58}{cached['build']:>10.1f} s")
    keras_ms = results["keras"]
    print(f"{f'Keras MobileNetV3-Small 224, batch {BATCH} (baseline)':<58}"
          f"{keras_ms['mobilenet']:>7.1f} ms/img")
    print(f"{f'Keras EfficientNet-Lite0 224, batch {BATCH}':<58}{keras_ms['lite0']:>7.1f} ms/img")
    batches = "".join(f"{f'ms/img b{size}':>12}" for size in LITERT_BATCHES)
    print(f"\nTFLite, ai_edge_litert {LITERT_THREADS} threads\n{'':<10}{'MB':>6}{'export s':>10}"
          f"{batches}{'cos mean':>10}{'cos min':>9}")
    for name, row in results["tflite"].items():
        timings = "".join(f"{row[f'ms_b{size}']:>12.1f}" for size in LITERT_BATCHES)
        print(f"{name:<10}{row['mb']:>6.1f}{row['export_s']:>10.1f}{timings}"
              f"{row['cos_mean']:>10.4f}{row['cos_min']:>9.4f}")


if __name__ == "__main__":
    main()
