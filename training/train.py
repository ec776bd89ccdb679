"""Training loop: seeded tf.data over the memmap cache, early stopping, optional fine-tune."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset import DatasetCache, Split, class_weights
from training.hparams import HParams

ProgressFn = Callable[[dict[str, Any]], None]
MODEL_FILENAME = "model.keras"
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclasses.dataclass
class TrainResult:
    """What a finished run leaves: the kept best model and its learning curves.

    ``history`` maps each of ``HISTORY_KEYS`` plus ``"phase"`` to one entry per epoch run,
    across the train and fine-tune phases. ``best_epoch`` is 1-based.
    """

    model_path: Path
    labels: list[str]
    history: dict[str, list]
    best_epoch: int
    best_val_loss: float


def train(cache: DatasetCache, split: Split, hparams: HParams, *,
          progress: ProgressFn | None = None, workdir: str | Path) -> TrainResult:
    """Train on ``split.train``, validate on ``split.validation``, keep the best model on disk.

    Seeds every generator (``keras.utils.set_random_seed``) and turns on TensorFlow op
    determinism, so two CPU runs with the same seed give the same weights and metrics. Batches
    are read from the memmap one at a time; class weights balance rare categories; early
    stopping on ``val_loss`` restores the best epoch.

    Args:
        cache: decoded images and labels (labels already renumbered to the kept classes).
        split: index arrays into ``cache``.
        hparams: the run's hyperparameters.
        progress: called after every batch and epoch with ``{"event": "batch"|"epoch",
            "phase": "train"|"fine_tune", "epoch": i, "epochs": n, "batch": b, "batches": m,
            "logs": {...}}`` (1-based ``epoch`` and ``batch``), for progress bars and ETAs.
        workdir: folder where ``model.keras`` (the best model) is written.

    Returns:
        The kept model's path, label list and per-epoch history.
    """
    import keras
    import tensorflow as tf

    from training.model import build_model, unfreeze_top

    keras.utils.set_random_seed(hparams.seed)
    tf.config.experimental.enable_op_determinism()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model_path = workdir / MODEL_FILENAME
    num_classes = len(cache.label_names)
    model = build_model(hparams, num_classes)
    train_ds = _dataset(cache, split.train, hparams, training=True, num_classes=num_classes)
    val_ds = _dataset(cache, split.validation, hparams, training=False, num_classes=num_classes)
    history: dict[str, list] = {k: [] for k in (*HISTORY_KEYS, "phase")}

    _compile(model, hparams.learning_rate)
    best = _fit_phase(
        model, train_ds, val_ds, "train", 0, hparams.epochs, hparams, progress, history
    )
    model.save(model_path)
    if hparams.fine_tune_epochs and unfreeze_top(model, hparams.fine_tune_layers):
        _compile(model, hparams.learning_rate * hparams.fine_tune_lr_factor)
        done = len(history["loss"])
        tuned = _fit_phase(model, train_ds, val_ds, "fine_tune", done,
                           done + hparams.fine_tune_epochs, hparams, progress, history)
        # Keep the fine-tuned model only if it beat the frozen one on validation loss.
        if tuned[1] < best[1]:
            best = tuned
            model.save(model_path)
    return TrainResult(model_path=model_path, labels=list(cache.label_names), history=history,
                       best_epoch=best[0] + 1, best_val_loss=float(best[1]))


def _compile(model: Any, learning_rate: float) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def _fit_phase(model: Any, train_ds: Any, val_ds: Any, phase: str, first: int, last: int,
               hparams: HParams, progress: ProgressFn | None,
               history: dict[str, list], *, early_stopping: bool = True) -> tuple[int, float]:
    """Run epochs ``first..last-1``; append to ``history``; return (best epoch, best val_loss).

    With ``early_stopping`` the run stops after ``hparams.patience`` epochs without a better
    validation loss and keeps the best epoch's weights; without it, every epoch runs and the
    last weights stay (the validation set is then only reported, never used to choose).
    """
    import keras

    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=hparams.patience,
                                               restore_best_weights=True)
                 ] if early_stopping else []
    if progress is not None:
        callbacks.append(_progress_callback(progress, phase, last, int(train_ds.cardinality())))
    fit = model.fit(train_ds, validation_data=val_ds, initial_epoch=first, epochs=last,
                    callbacks=callbacks, shuffle=False, verbose=0)  # batches come shuffled
    for key in HISTORY_KEYS:
        history[key].extend(float(v) for v in fit.history.get(key, []))
    history["phase"].extend([phase] * len(fit.history.get("loss", [])))
    losses = fit.history["val_loss"]
    best = int(np.argmin(losses))
    return first + best, float(losses[best])


def _progress_callback(progress: ProgressFn, phase: str, epochs: int, batches: int) -> Any:
    import keras

    class Progress(keras.callbacks.Callback):
        epoch = 0

        def _emit(self, event: str, batch: int, logs: dict | None) -> None:
            progress({"event": event, "phase": phase, "epoch": self.epoch + 1, "epochs": epochs,
                      "batch": batch, "batches": batches,
                      "logs": {k: float(v) for k, v in (logs or {}).items()}})

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._emit("batch", batch + 1, logs)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._emit("epoch", batches, logs)

    return Progress()


def _dataset(cache: DatasetCache, indices: np.ndarray, hparams: HParams, *, training: bool,
             num_classes: int) -> Any:
    """Batches of (float32 0..255 pixels, label[, class weight]) read from the memmap per batch.

    Only the training set is shuffled (a new seeded order each epoch), weighted and augmented.
    """
    import tensorflow as tf

    from training.model import augmentation

    h, w = cache.size
    bs = hparams.batch_size
    labels = cache.labels
    weights = class_weights(labels[indices], num_classes) if training else None
    weight_lut = np.array([weights[c] for c in range(num_classes)], np.float32) if weights else None
    epochs = itertools.count()

    def batches():
        order = indices
        if training:  # tf.data calls this once per epoch: a fresh, seeded permutation each time.
            order = np.random.default_rng([hparams.seed, next(epochs)]).permutation(indices)
        for start in range(0, len(order), bs):
            # Sorted reads are sequential on disk; the batch's order is irrelevant to the loss.
            idx = np.sort(order[start:start + bs])
            y = labels[idx]
            if training:
                yield cache.images[idx], y, weight_lut[y]
            else:
                yield cache.images[idx], y

    sig = [tf.TensorSpec((None, h, w, 3), tf.uint8), tf.TensorSpec((None,), tf.int32)]
    if training:
        sig.append(tf.TensorSpec((None,), tf.float32))
    ds = tf.data.Dataset.from_generator(batches, output_signature=tuple(sig))
    ds = ds.apply(tf.data.experimental.assert_cardinality(math.ceil(len(indices) / bs)))
    ds = ds.map(lambda x, *rest: (tf.cast(x, tf.float32), *rest))
    if training and hparams.augment:
        augment = augmentation(hparams.seed)
        # Augmented pixels stay in 0..255 floats: the model's own Rescaling scales them once.
        ds = ds.map(lambda x, *rest: (tf.clip_by_value(augment(x, training=True), 0.0, 255.0),
                                      *rest))
    return ds.prefetch(1)
