"""Stratified (group) k-fold cross-validation of the embedding head, out-of-fold predictions.

One 20 % split of a 48-image catalog is a handful of images per category: its accuracy swings by
ten points with the seed, and an early-stopping rule watching it stops on noise. Every labelled
image is predicted exactly once here, by a head that never saw it (out of fold), so metrics,
calibration and the auto-fill threshold rest on all the data; on embeddings this costs seconds.

Near-duplicate images (the same product photographed twice, colour variants) are kept in the
same fold: otherwise a validation image has its twin in the training folds and the estimate, and
every threshold chosen from it, is optimistic for genuinely new products.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from training.calibration import fit_temperature
from training.head import HeadParams, fit_head, nll

MAX_FOLDS = 5
MIN_FOLDS = 2
# Weight decays tried on standardised embeddings: from barely regularised to strongly
# (1e-2 already shrinks a 1280-d kernel hard). The best by calibrated out-of-fold NLL wins.
L2_GRID = (1e-4, 1e-3, 1e-2)
# Epoch candidates are checked every EVAL_EVERY epochs up to max_epochs(); never fewer than
# MIN_EPOCHS, so a noisy dip early in training cannot choose an under-trained head.
EVAL_EVERY = 5
MIN_EPOCHS = 20
MAX_EPOCHS = 100
# Optimiser steps that cap the epoch budget on large catalogs, where each epoch already holds
# many steps; MIN_EPOCHS still wins, so past ~6,400 training images (MAX_STEPS / MIN_EPOCHS
# batches) a head gets 20 epochs and its training time grows linearly with the catalog.
MAX_STEPS = 4000
# Cosine similarity of embeddings above which two images of one category count as the same
# product for fold assignment (photos of one item, colour variants, re-uploads). Measured on
# EfficientNet-Lite0 features of the demo's variant renderings: pairs of one item have a 5th
# percentile of 0.89, pairs of different items in one category a 95th percentile of 0.65; the
# cut sits between, nearer the items' side (joining two items only costs a group).
NEAR_DUPLICATE_COSINE = 0.85
# Rows per block in the pairwise-similarity pass (memory: BLOCK x N floats).
SIMILARITY_BLOCK = 2048


@dataclasses.dataclass
class CrossValidation:
    """What k-fold gave: the chosen head recipe and every image's out-of-fold logits.

    ``oof_logits`` are uncalibrated; ``temperature`` calibrates them (divide). ``candidates``
    lists every (l2, epochs) tried with its calibrated out-of-fold NLL and accuracy.
    """

    folds: int
    params: HeadParams
    temperature: float
    oof_logits: np.ndarray
    fold_of: np.ndarray
    groups: np.ndarray
    candidates: list[dict]

    def summary(self) -> dict:
        return {"method": "stratified_group_kfold", "folds": self.folds,
                "count": int(len(self.fold_of)),
                "groups": int(len(np.unique(self.groups))),
                "chosen": {"l2": self.params.l2, "epochs": self.params.epochs},
                "candidates": self.candidates}


def near_duplicate_groups(embeddings: np.ndarray, labels: np.ndarray,
                          threshold: float = NEAR_DUPLICATE_COSINE) -> np.ndarray:
    """Group ids: connected components of the "same label and cosine >= threshold" graph.

    Only images of one category are joined (a near-identical pair under two labels is label
    noise, and joining across labels could chain whole categories together). A category whose
    images all end up in one group (a backbone that sees them all alike) is split back into
    single images: grouping must never leave a category with nothing to validate on.

    Returns:
        ``(N,)`` int array; images in one group are near-duplicates (directly or by a chain).
    """
    labels = np.asarray(labels)
    x = np.asarray(embeddings, np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    parent = np.arange(len(x))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(x), SIMILARITY_BLOCK):
        sims = x[start:start + SIMILARITY_BLOCK] @ x.T
        rows, cols = np.nonzero(sims >= threshold)
        for i, j in zip(rows + start, cols):
            if i < j and labels[i] == labels[j]:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(len(x))])
    for label in np.unique(labels):
        mine = np.flatnonzero(labels == label)
        if len(mine) > 1 and len(np.unique(roots[mine])) == 1:
            roots[mine] = mine
    return np.unique(roots, return_inverse=True)[1]


def fold_count(labels: np.ndarray, groups: np.ndarray) -> int:
    """Folds: at most MAX_FOLDS, and no more than the fewest distinct groups of any class."""
    per_class = [len(np.unique(groups[labels == c])) for c in np.unique(labels)]
    return int(min(MAX_FOLDS, max(MIN_FOLDS, min(per_class))))


def stratified_group_folds(labels: np.ndarray, groups: np.ndarray, k: int,
                           seed: int) -> np.ndarray:
    """Assign whole groups to ``k`` folds so each fold keeps the class proportions.

    Greedy, like scikit-learn's StratifiedGroupKFold: groups are placed largest first (seeded
    order among equals) into the fold that keeps the per-class spread across folds smallest,
    ties going to the smaller fold.

    Returns:
        ``(N,)`` fold index per image.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    num_classes = int(labels.max()) + 1
    unique_groups = np.unique(groups)
    counts = np.zeros((len(unique_groups), num_classes))
    np.add.at(counts, (np.searchsorted(unique_groups, groups), labels), 1)
    totals = np.maximum(counts.sum(axis=0), 1)
    rng = np.random.default_rng(seed)
    order = sorted(range(len(unique_groups)),
                   key=lambda g: (-counts[g].sum(), rng.random()))
    fold_counts = np.zeros((k, num_classes))
    group_fold = np.zeros(len(unique_groups), np.int64)
    for g in order:
        spreads = []
        for f in range(k):
            trial = fold_counts.copy()
            trial[f] += counts[g]
            spreads.append(((trial / totals).std(axis=0).mean(), trial[f].sum()))
        best = min(range(k), key=lambda f: spreads[f])
        fold_counts[best] += counts[g]
        group_fold[g] = best
    return group_fold[np.searchsorted(unique_groups, groups)]


def max_epochs(train_size: int, batch_size: int) -> int:
    """Epoch budget: MAX_EPOCHS on small sets, fewer when one epoch is already many steps."""
    steps = max(1, math.ceil(train_size / max(1, batch_size)))
    budget = (MAX_STEPS // steps) // EVAL_EVERY * EVAL_EVERY
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, budget)))


def cross_validate(embeddings: np.ndarray, labels: np.ndarray, num_classes: int, *,
                   base: HeadParams, seed: int, groups: np.ndarray | None = None,
                   l2_grid: tuple[float, ...] = L2_GRID) -> CrossValidation:
    """Choose the head's weight decay and epochs by k-fold, and predict every image out of fold.

    Each (fold, l2) head is trained once for the full epoch budget, recording its held-out logits
    every ``EVAL_EVERY`` epochs; the (l2, epochs) with the lowest out-of-fold NLL after
    temperature scaling wins (calibrated NLL: ranks recipes by how well their confidences can be
    trusted, which is what auto-fill relies on).

    Args:
        embeddings: ``(N, D)`` embeddings of the labelled images.
        labels: ``(N,)`` class indices.
        num_classes: number of classes.
        base: the recipe whose dropout, smoothing, learning rate and batch size are kept.
        seed: fold assignment and training seed.
        groups: near-duplicate group per image (``near_duplicate_groups``); default: each image
            its own group.

    Returns:
        The chosen recipe, its temperature and out-of-fold logits.
    """
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    k = fold_count(labels, groups)
    fold_of = stratified_group_folds(labels, groups, k, seed)
    epochs = max_epochs(int(len(labels) * (k - 1) / k), base.batch_size)
    checkpoints = list(range(EVAL_EVERY, epochs + 1, EVAL_EVERY))
    # recorded[l2][checkpoint] -> (N, C) out-of-fold logits
    recorded = {l2: np.zeros((len(checkpoints), len(labels), num_classes), np.float32)
                for l2 in l2_grid}
    for fold, l2 in itertools.product(range(k), l2_grid):
        train, held = fold_of != fold, fold_of == fold
        params = dataclasses.replace(base, l2=l2, epochs=epochs)
        _, logits = fit_head(embeddings[train], labels[train], num_classes, params,
                             seed=seed + fold, eval_embeddings=embeddings[held],
                             eval_every=EVAL_EVERY)
        recorded[l2][:, held] = np.stack(logits)
    candidates, best = [], None
    for l2, (i, epoch) in itertools.product(l2_grid, enumerate(checkpoints)):
        if epoch < MIN_EPOCHS:
            continue
        logits = recorded[l2][i]
        temperature = fit_temperature(logits, labels)
        score = nll(logits / temperature, labels)
        accuracy = float((logits.argmax(1) == labels).mean())
        candidates.append({"l2": l2, "epochs": epoch, "nll": round(score, 5),
                           "accuracy": round(accuracy, 5)})
        if best is None or score < best[0]:
            best = (score, l2, epoch, i, temperature)
    _, l2, epoch, i, temperature = best
    return CrossValidation(folds=k, params=dataclasses.replace(base, l2=l2, epochs=epoch),
                           temperature=temperature, oof_logits=recorded[l2][i].copy(),
                           fold_of=fold_of, groups=groups, candidates=candidates)
