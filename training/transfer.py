"""Transfer learning on a frozen pretrained backbone: cached embeddings, k-fold head, export.

1. Embed every labelled image once (``training/embeddings.py``; cached by content).
2. Group near-duplicates, cross-validate the head (``training/validation.py``): the recipe, the
   temperature and out-of-fold predictions for every image.
3. Metrics, calibration, auto-fill thresholds and the gate from those predictions.
4. Train the final head on all images, fold standardisation and temperature into one dense
   layer on the backbone, export every quantisation and keep the best (``quantization.py``).
Optionally (``fine_tune_epochs``) the top of the backbone is fine-tuned too, and kept only when it
beats the frozen head on the same held-out images (``training/fine_tune.py``).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from classifier.preprocessing import InputContract
from training.embeddings import EmbeddingCache, embed_items
from training.features import build_feature_extractor
from training.fine_tune import fine_tune
from training.head import HeadParams, fit_head
from training.hparams import HParams
from training.outcome import TrainingOutcome, filter_classes, heldout_report
from training.references import near_duplicate_rule, reference_bytes
from training.train import ProgressFn
from training.validation import cross_validate, near_duplicate_groups

# Serving threads on a small machine: the quantisation timings use what production uses.
SERVING_THREADS = 2
# The kept Keras model, for re-export without retraining.
MODEL_FILENAME = "model.keras"


def train_on_embeddings(items: list, hparams: HParams, *, workdir: Path, cache_root: Path,
                        progress: ProgressFn | None,
                        say: Callable[[str], None]) -> TrainingOutcome:
    """Train the head of ``hparams.architecture`` on cached embeddings and export the model."""
    extractor = build_feature_extractor(hparams, weights_dir=cache_root / "weights")
    embedded = _embed(items, extractor, hparams, cache_root, progress, say)
    names, y, rows, dropped = filter_classes(embedded.labels,
                                             min_images=hparams.min_images_per_class)
    warnings = [f"Skipped {s.key}: {s.reason}" for s in embedded.skipped] + dropped
    for line in warnings:
        say(line)
    data = _Labelled(x=embedded.vectors[rows], y=y, names=names,
                     keys=[embedded.keys[i] for i in rows])
    groups = near_duplicate_groups(data.x, data.y)
    cv, evaluated = _cross_validate(data, groups, hparams, say)
    trained = _final_model(data, cv, extractor, evaluated, items, hparams, workdir, progress,
                           say)
    contract = InputContract(height=hparams.image_size[0], width=hparams.image_size[1],
                             output="logits")
    choice = _export(trained.model, embedded, rows, data, contract, hparams, workdir, say)
    trained.report["quantization"] = choice.table
    say(_done_line(trained.report, choice.name))
    return TrainingOutcome(
        tflite_bytes=choice.tflite_bytes, labels=names, contract=contract, hparams=hparams,
        quantization=choice.name, keras_model_path=workdir / MODEL_FILENAME,
        report=trained.report, thresholds=trained.thresholds, gate=trained.gate,
        heldout=trained.heldout,
        dataset_stats=_stats(names, y, groups, embedded, dropped, warnings),
        history=trained.history, warnings=warnings,
        embedding_backbone=trained.embedding_backbone, embedding_dim=extractor.dim,
        reference_bytes=trained.references)


@dataclasses.dataclass
class _Labelled:
    """The kept labelled images: embeddings, class indices, class names and item keys."""

    x: np.ndarray
    y: np.ndarray
    names: list[str]
    keys: list[str]


@dataclasses.dataclass
class _Trained:
    """The model to export and everything judged about it."""

    model: Any
    report: dict
    thresholds: dict
    gate: Any
    heldout: Any
    history: dict
    embedding_backbone: str
    references: bytes


def _embed(items: list, extractor, hparams: HParams, cache_root: Path,
           progress: ProgressFn | None, say: Callable[[str], None]):
    cache = EmbeddingCache(cache_root / "embeddings" / f"{_file_safe(extractor.backbone_id)}"
                           ".sqlite3")
    say(f"Embedding {len(items)} images with {extractor.backbone_id}...")
    started = time.monotonic()
    try:
        embedded = embed_items(items, extract=extractor, cache=cache, size=hparams.image_size,
                               workers=hparams.decode_workers, backbone=extractor.backbone_id,
                               progress=_embed_progress(progress))
    finally:
        cache.close()
    say(f"Embedded {len(embedded.keys)} images in {time.monotonic() - started:.1f} s: "
        f"{embedded.computed} computed, {embedded.cached} from the cache"
        + (f", {embedded.given} stored with their products" if embedded.given else "")
        + (f"; read {embedded.read} image files, decoded {embedded.decoded}."
           if embedded.read else "; read no image."))
    return embedded


def _cross_validate(data: _Labelled, groups: np.ndarray, hparams: HParams,
                    say: Callable[[str], None]):
    """The k-fold recipe and the held-out report, thresholds and gate it gives."""
    base = HeadParams(dropout=hparams.dropout, label_smoothing=hparams.label_smoothing,
                      learning_rate=hparams.learning_rate, batch_size=hparams.batch_size)
    cv = cross_validate(data.x, data.y, len(data.names), base=base, seed=hparams.seed,
                        groups=groups)
    say(f"Cross-validated the head ({cv.folds} folds over {len(np.unique(groups))} distinct "
        f"products): weight decay {cv.params.l2:g}, {cv.params.epochs} epochs, "
        f"temperature {cv.temperature:.2f}.")
    evaluated = heldout_report(
        keys=data.keys, labels=data.y, logits=cv.oof_logits, label_names=data.names,
        target_precision=hparams.target_precision, method="stratified_group_kfold",
        temperature=cv.temperature)
    report, thresholds = evaluated[0], evaluated[1]
    report["evaluation"] = cv.summary()
    rule = near_duplicate_rule(data.x, data.y, target=hparams.target_precision)
    thresholds["near_duplicate"] = rule
    report["auto_fill"]["near_duplicate"] = rule
    return cv, evaluated


def _final_model(data: _Labelled, cv, extractor, evaluated, items: list, hparams: HParams,
                 workdir: Path, progress: ProgressFn | None,
                 say: Callable[[str], None]) -> _Trained:
    """The frozen backbone with the head trained on every image (or a better fine-tune)."""
    from training.model import classifier_on_features

    report, thresholds, gate, heldout = evaluated
    head, _ = fit_head(data.x, data.y, len(data.names), cv.params, seed=hparams.seed)
    kernel, bias = head.folded(cv.temperature)
    trained = _Trained(model=classifier_on_features(extractor.model, kernel, bias),
                       report=report, thresholds=thresholds, gate=gate, heldout=heldout,
                       history=_history(cv), embedding_backbone=extractor.backbone_id,
                       references=reference_bytes(data.x, data.y))
    if not hparams.fine_tune_epochs:
        return trained
    by_key = {item.key: item for item in items}
    tuned = fine_tune(items=[by_key[k] for k in data.keys], labels=data.y, names=data.names,
                      embeddings=data.x, fold_of=cv.fold_of, head_params=cv.params,
                      extractor=extractor, hparams=hparams, workdir=workdir, progress=progress,
                      say=say)
    report["fine_tune"] = {"kept": tuned.kept, "frozen_accuracy": tuned.frozen_accuracy,
                           "tuned_accuracy": tuned.tuned_accuracy,
                           "heldout_count": int(len(tuned.heldout_rows))}
    trained.history = {k: trained.history.get(k, []) + tuned.history.get(k, [])
                       for k in ("loss", "accuracy", "val_loss", "val_accuracy", "phase")}
    if tuned.kept:
        (trained.model, trained.report, trained.thresholds, trained.gate,
         trained.heldout) = _tuned_outcome(tuned, data.keys, data.y, data.names, hparams, report)
        # The tuned backbone embeds differently: the frozen references no longer apply.
        trained.embedding_backbone = f"{extractor.backbone_id}+ft:{tuned.weights_digest[:12]}"
        trained.references = b""
    return trained


def _export(model, embedded, rows: np.ndarray, data: _Labelled, contract: InputContract,
            hparams: HParams, workdir: Path, say: Callable[[str], None]):
    """Keep the Keras model for re-export; export and measure the TFLite forms on the sample."""
    from training.quantization import export_quantized

    workdir.mkdir(parents=True, exist_ok=True)
    model.save(workdir / MODEL_FILENAME)
    sample_rows = [n for n, i in enumerate(rows) if int(i) in embedded.sample]
    pixels = (np.stack([embedded.sample[int(rows[n])] for n in sample_rows]) if sample_rows
              else np.zeros((0, *hparams.image_size, 3), np.uint8))
    say(f"Exporting TFLite ({hparams.quantization}), checked on {len(pixels)} images...")
    return export_quantized(model, requested=hparams.quantization, pixels=pixels,
                            labels=data.y[sample_rows], label_names=data.names,
                            contract=contract, representative=pixels,
                            num_threads=SERVING_THREADS)


def _tuned_outcome(tuned, keys: list[str], y: np.ndarray, names: list[str], hparams: HParams,
                   frozen_report: dict):
    """Report, thresholds and gate of a kept fine-tuned model, from its held-out fold."""
    from training.model import fold_temperature

    rows = tuned.heldout_rows
    report, thresholds, gate, heldout = heldout_report(
        keys=[keys[i] for i in rows], labels=y[rows], logits=tuned.heldout_logits,
        label_names=names, target_precision=hparams.target_precision,
        method="fine_tune_validation")
    report["evaluation"] = {**frozen_report["evaluation"], "method": "fine_tune_validation",
                            "count": int(len(rows))}
    report["fine_tune"] = frozen_report["fine_tune"]
    report["frozen_head"] = {k: frozen_report[k] for k in ("accuracy", "macro_f1", "oof")}
    fold_temperature(tuned.model, report["calibration"]["temperature"])
    return tuned.model, report, thresholds, gate, heldout


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def _embed_progress(progress: ProgressFn | None) -> Callable[[int, int], None] | None:
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress({"event": "batch", "phase": "embed", "epoch": 1, "epochs": 1,
                  "batch": done, "batches": max(1, total), "logs": {}})

    return report


def _stats(names: list[str], y: np.ndarray, groups: np.ndarray, embedded, dropped: list[str],
           warnings: list[str]) -> dict:
    """Images per category (all are trained on and all are predicted out of fold)."""
    counts = {}
    for c, name in enumerate(names):
        mine = y == c
        n = int(mine.sum())
        counts[name] = {"train": n, "validation": n, "test": 0,
                        "distinct_products": int(len(np.unique(groups[mine])))}
    return {"classes": list(names), "counts": counts, "dropped_classes": dropped,
            "skipped": [{"key": s.key, "label": s.label, "reason": s.reason}
                        for s in embedded.skipped],
            "warnings": list(warnings), "embeddings_computed": embedded.computed,
            "embeddings_cached": embedded.cached}


def _history(cv) -> dict[str, list]:
    """Held-out loss and accuracy of the chosen weight decay at each checked epoch."""
    rows = sorted((c for c in cv.candidates if c["l2"] == cv.params.l2),
                  key=lambda c: c["epochs"])
    return {"epoch": [c["epochs"] for c in rows], "val_loss": [c["nll"] for c in rows],
            "val_accuracy": [c["accuracy"] for c in rows], "loss": [], "accuracy": [],
            "phase": ["head"] * len(rows)}


def _done_line(report: dict, quantization: str) -> str:
    auto = report["auto_fill"]
    threshold = auto["threshold"]
    fill = (f"auto-fill at confidence >= {threshold:.2f} covers {auto['coverage']:.0%}"
            if threshold is not None else "no confidence reaches the target precision yet")
    rule = auto.get("near_duplicate") or {}
    if rule.get("enabled"):
        fill += (f"; near-duplicates of labelled products are filled too ({rule['correct']}/"
                 f"{rule['answered']} right when measured)")
    return (f"Done: out-of-fold accuracy {report['accuracy']:.3f} "
            f"(baseline {report['baseline_accuracy']:.3f}); {fill}; exported as {quantization}.")
