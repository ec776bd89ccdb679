"""Optional fine-tuning of the backbone's top layers, kept only when it beats the frozen head.

Fine-tuning can add a few points on catalogs that look unlike ImageNet, and can as easily
overfit a few hundred images. So both candidates are judged on the same held-out images (one
fold of the k-fold assignment, near-duplicates kept together): the frozen head trained on the
other folds, and the fine-tuned network started from that same head. The fine-tuned model is
kept only if its held-out accuracy is higher (or equal with a lower loss).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset import LabelledItem, Split, build_cache
from training.head import HeadParams, fit_head, nll
from training.hparams import HParams
from training.train import ProgressFn


@dataclasses.dataclass
class FineTuneResult:
    """The fine-tuned model (when kept), and what both candidates scored on the same images."""

    kept: bool
    model: Any
    heldout_rows: np.ndarray
    heldout_logits: np.ndarray
    frozen_accuracy: float
    tuned_accuracy: float
    history: dict[str, list]
    weights_digest: str


def fine_tune(*, items: list[LabelledItem], labels: np.ndarray, names: list[str],
              embeddings: np.ndarray, fold_of: np.ndarray, head_params: HeadParams,
              extractor: Any, hparams: HParams, workdir: Path,
              progress: ProgressFn | None, say: Callable[[str], None]) -> FineTuneResult:
    """Fine-tune the top ``hparams.fine_tune_layers`` backbone layers on all but fold 0.

    When the fine-tune is discarded the backbone's frozen weights are restored, so the frozen
    model (which shares the backbone) is exported exactly as it was evaluated.

    Args:
        items: the kept labelled items, row-aligned with ``labels`` and ``embeddings``.
        labels: class indices.
        names: class names.
        embeddings: frozen embeddings (for the frozen candidate's head).
        fold_of: k-fold assignment; fold 0 is held out for the comparison.
        head_params: the cross-validated head recipe.
        extractor: the ``FeatureExtractor`` (its Keras model is unfrozen here).
        hparams: epochs, learning rates, augmentation, batch size.
        workdir: where the decoded images' memmap lives while tuning.
    """
    import keras

    from training.model import unfreeze_top
    from training.train import _compile, _dataset, _fit_phase

    say(f"Fine-tuning: decoding {len(items)} images for {hparams.fine_tune_epochs} epochs...")
    cache = build_cache(items, size=hparams.image_size, cache_dir=workdir / "fine-tune-cache",
                        workers=hparams.decode_workers)
    # An image that cannot be read now (gone since its embedding was stored) leaves both
    # candidates: rows are re-indexed to the decoded images so labels stay aligned.
    row_of = {item.key: row for row, item in enumerate(items)}
    rows = np.array([row_of[key] for key in cache.keys], dtype=np.int64)
    if len(rows) < len(items):
        say(f"Fine-tuning without {len(items) - len(rows)} images that could not be read.")
    labels, embeddings, fold_of = labels[rows], embeddings[rows], fold_of[rows]
    cache = dataclasses.replace(cache, labels=np.asarray(labels, np.int32),
                                label_names=list(names))
    held, train_rows = np.flatnonzero(fold_of == 0), np.flatnonzero(fold_of != 0)
    frozen, _ = fit_head(embeddings[train_rows], labels[train_rows], len(names), head_params,
                         seed=hparams.seed)
    frozen_logits = frozen.logits(embeddings[held])
    kernel, bias = frozen.folded()
    inputs, embedding = extractor.model.input, extractor.model.output
    dense = keras.layers.Dense(len(names), name="logits")
    # One dense layer, two graphs: dropout while training, none in the exported model.
    model = keras.Model(inputs, dense(keras.layers.Dropout(hparams.dropout)(embedding)))
    exported = keras.Model(inputs, {"logits": dense(embedding), "embedding": embedding})
    dense.set_weights([kernel, bias])
    # The backbone is trained in place (the frozen candidate's exported graph shares it), so its
    # weights are put back when the fine-tune loses.
    frozen_backbone = extractor.model.get_weights()
    unfreeze_top(extractor.model, hparams.fine_tune_layers)
    _compile(model, hparams.learning_rate * hparams.fine_tune_lr_factor)
    split = Split(train=train_rows, validation=held, test=np.zeros(0, np.int64))
    train_ds = _dataset(cache, split.train, hparams, training=True, num_classes=len(names))
    val_ds = _dataset(cache, split.validation, hparams, training=False, num_classes=len(names))
    history: dict[str, list] = {k: [] for k in ("loss", "accuracy", "val_loss", "val_accuracy",
                                                "phase")}
    # A fixed number of epochs: fold 0 judges the two candidates, so it must not also pick the
    # tuned model's best epoch (that would favour keeping it).
    _fit_phase(model, train_ds, val_ds, "fine_tune", 0, hparams.fine_tune_epochs, hparams,
               progress, history, early_stopping=False)
    tuned_logits = np.concatenate([np.asarray(model(b, training=False)) for b, _ in val_ds])
    y = labels[held]
    frozen_acc = float((frozen_logits.argmax(1) == y).mean())
    tuned_acc = float((tuned_logits.argmax(1) == y).mean())
    kept = tuned_acc > frozen_acc or (tuned_acc == frozen_acc
                                      and nll(tuned_logits, y) < nll(frozen_logits, y))
    say(f"Fine-tuning {'kept' if kept else 'discarded'}: held-out accuracy {tuned_acc:.3f} "
        f"vs {frozen_acc:.3f} for the frozen head ({len(held)} images).")
    digest = _digest(extractor.model)
    if not kept:
        extractor.model.set_weights(frozen_backbone)
        extractor.model.trainable = False
    return FineTuneResult(kept=kept, model=exported if kept else None,
                          heldout_rows=held, heldout_logits=tuned_logits,
                          frozen_accuracy=frozen_acc, tuned_accuracy=tuned_acc,
                          history=history, weights_digest=digest)


def _digest(model: Any) -> str:
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
