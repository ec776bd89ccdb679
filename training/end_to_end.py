"""End-to-end training on decoded images: the tutorial CNN and randomly initialised backbones.

Every weight is learned from the catalog, so images are decoded once into a memmap and the
network trains on one stratified split with early stopping. Kept as the tutorial baseline and
for catalogs unlike anything ImageNet has seen; the pretrained default is training/transfer.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from classifier.preprocessing import InputContract
from training.dataset import (
    build_cache,
    dataset_stats,
    filter_small_classes,
    stratified_split,
)
from training.hparams import HParams
from training.outcome import TrainingOutcome, heldout_report
from training.train import ProgressFn


def train_end_to_end(items: Iterable, hparams: HParams, *, workdir: Path,
                     progress: ProgressFn | None, say: Callable[[str], None],
                     keep_cache: bool = False) -> TrainingOutcome:
    """Cache → filter/split → train → calibrate on validation → export and measure TFLite.

    The temperature is fitted on the validation split and folded into the logits layer before
    export, so the exported model's confidences are the calibrated ones its thresholds were
    chosen on.
    """
    import keras

    from training.evaluate import evaluate_keras, evaluate_tflite, keras_probs
    from training.export import representative_images
    from training.model import fold_temperature
    from training.quantization import export_quantized
    from training.train import train

    cache_dir = workdir / "cache"
    say(f"Decoding images at {hparams.image_size[0]}x{hparams.image_size[1]}...")
    try:
        full = build_cache(items, size=hparams.image_size, cache_dir=cache_dir,
                           workers=hparams.decode_workers)
        warnings = [f"Skipped {s.key}: {s.reason}" for s in full.skipped]
        cache, dropped_warnings = filter_small_classes(
            full, min_images=hparams.min_images_per_class)
        warnings += dropped_warnings
        for line in warnings:
            say(line)
        split = stratified_split(cache.labels, validation_split=hparams.validation_split,
                                 test_split=hparams.test_split, seed=hparams.seed)
        stats = dataset_stats(cache, split, dropped=_dropped_counts(full, cache),
                              warnings=warnings).to_dict()
        say(f"Training {hparams.architecture} end to end on {len(split.train)} images, "
            f"validating on {len(split.validation)}, {len(cache.label_names)} categories...")
        result = train(cache, split, hparams, progress=progress, workdir=workdir)
        model = keras.models.load_model(result.model_path, compile=False)
        val = split.validation
        logits = np.log(np.clip(keras_probs(model, cache, val), 1e-12, 1.0))
        report, thresholds, gate, heldout = heldout_report(
            keys=[cache.keys[i] for i in val], labels=cache.labels[val], logits=logits,
            label_names=cache.label_names, target_precision=hparams.target_precision,
            method="validation_split")
        fold_temperature(model, report["calibration"]["temperature"])
        model.save(result.model_path)
        contract = InputContract(height=hparams.image_size[0], width=hparams.image_size[1],
                                 output="logits")
        say(f"Exporting TFLite ({hparams.quantization})...")
        train_pixels = representative_images(cache.images, split.train, seed=hparams.seed)
        choice = export_quantized(model, requested=hparams.quantization,
                                  pixels=np.asarray(cache.images[val]), labels=cache.labels[val],
                                  label_names=cache.label_names, contract=contract,
                                  representative=train_pixels)
        report["quantization"] = choice.table
        report["keras_validation"] = evaluate_keras(model, cache, val).to_dict()
        report["tflite_validation"] = evaluate_tflite(choice.tflite_bytes, cache, val,
                                                      cache.label_names, contract).to_dict()
        if len(split.test):
            report["keras_test"] = evaluate_keras(model, cache, split.test).to_dict()
            report["tflite_test"] = evaluate_tflite(choice.tflite_bytes, cache, split.test,
                                                    cache.label_names, contract).to_dict()
        report["best_epoch"] = result.best_epoch
    finally:
        if not keep_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
    say(f"Done: held-out accuracy {report['accuracy']:.3f}, exported as {choice.name}.")
    return TrainingOutcome(
        tflite_bytes=choice.tflite_bytes, labels=result.labels, contract=contract,
        hparams=hparams, quantization=choice.name, keras_model_path=result.model_path,
        report=report, thresholds=thresholds, gate=gate, heldout=heldout, dataset_stats=stats,
        history=result.history, warnings=warnings)


def _dropped_counts(full, kept) -> dict[str, int]:
    counts = np.bincount(full.labels, minlength=len(full.label_names))
    return {n: int(c) for n, c in zip(full.label_names, counts) if n not in kept.label_names}
