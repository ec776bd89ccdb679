"""Labelled image sources, the decode-once uint8 cache, stratified splits and dataset statistics."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from classifier.preprocessing import ALLOWED_EXTENSIONS, decode_image
from training.exceptions import DatasetReadError, NotEnoughDataError

# Operating-system litter (".DS_Store", "._photo.jpg", "__MACOSX/") is passed over silently;
# every other file that is not a usable image is listed among the run's skipped files.
_LITTER_DIRS = frozenset({"__MACOSX"})
# Futures in flight per decode worker: enough to keep fetch and decode overlapped, few enough
# that decoded-but-unwritten images never hold more than a few MB however large N is.
IN_FLIGHT_PER_WORKER = 4


@dataclasses.dataclass(frozen=True)
class LabelledItem:
    """One training image: a stable key (path, product id…), its category and a bytes loader.

    ``embedding`` (with the ``embedding_backbone`` that made it, and the image's ``digest``)
    lets a caller that already has the image's embedding, such as a product the active model
    classified, skip reading and decoding it: the pipeline uses it when the backbone matches.
    """

    key: str
    label: str
    load: Callable[[], bytes]
    embedding: Any = None
    embedding_backbone: str = ""
    digest: str = ""


@dataclasses.dataclass(frozen=True)
class SkippedItem:
    """An image left out of the cache and why (shown to the operator, never silently dropped)."""

    key: str
    label: str
    reason: str


@dataclasses.dataclass
class DatasetCache:
    """Decoded images of one run: ``images[i]`` is ``(h, w, 3)`` uint8 with class ``labels[i]``.

    ``images`` is a NumPy memmap in ``cache_dir``, so RAM does not grow with the image count.
    ``labels`` holds indices into ``label_names``; ``-1`` marks an image whose class was dropped.
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    keys: list[str]
    skipped: list[SkippedItem]
    size: tuple[int, int]
    cache_dir: Path

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def relabel(self, keep: Sequence[str]) -> DatasetCache:
        """Same images, labels renumbered to ``keep`` (in that order); other classes become -1."""
        new_index = {name: i for i, name in enumerate(keep)}
        mapping = np.array([new_index.get(n, -1) for n in self.label_names], dtype=np.int32)
        return dataclasses.replace(self, labels=mapping[self.labels], label_names=list(keep))


@dataclasses.dataclass(frozen=True)
class Split:
    """Sorted index arrays into a ``DatasetCache``; ``test`` is empty without a test split."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


@dataclasses.dataclass
class DatasetStats:
    """Per-class image counts per split, dropped classes and skipped images, for the admin."""

    classes: list[str]
    counts: dict[str, dict[str, int]]
    dropped_classes: dict[str, int]
    skipped: list[SkippedItem]
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "counts": self.counts,
            "dropped_classes": dict(self.dropped_classes),
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "warnings": list(self.warnings),
        }


def image_folder_items(root: str | Path) -> list[LabelledItem]:
    """Items from ``root/<label>/<image>``, or a ``.zip`` of that layout.

    A zip may wrap the class folders in one top-level folder (what "compress folder" makes).
    Images are the files whose extension the classifier reads
    (``classifier.preprocessing.ALLOWED_EXTENSIONS``). Every other file (another extension, a
    file outside a category folder, one nested deeper) is an item whose loader raises
    ``SkippedFileError`` with the reason, so ``build_cache`` lists it among the skipped images
    and the run's warnings name it. Hidden files and ``__MACOSX`` are ignored. Items are sorted
    by key so the same folder always yields the same order (and so the same split for a seed).

    Raises:
        DatasetReadError: ``root`` is missing, not a folder or zip, or the zip is corrupt.
    """
    path = Path(root)
    if path.is_dir():
        return _folder_items(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return _zip_items(path)
    if path.is_file():
        raise DatasetReadError(f"{path} is not a folder or a .zip archive: pass a folder laid out "
                               "as <folder>/<category>/<image>, or a zip of it.")
    raise DatasetReadError(f"Dataset folder {path} does not exist: check the path.")


class SkippedFileError(DatasetReadError):
    """A file in a training folder that cannot be a training image; the message says why."""


def _is_litter(parts: Sequence[str]) -> bool:
    return any(part.startswith(".") or part in _LITTER_DIRS for part in parts)


def _item(key: str, parts: Sequence[str], load: Callable[[], bytes]) -> LabelledItem | None:
    """The item for file ``key`` (path ``parts`` below the dataset root), or None for litter."""
    if _is_litter(parts):
        return None
    if len(parts) != 2:
        where = "directly in the dataset folder" if len(parts) < 2 else "nested in a subfolder"
        return LabelledItem(key, "", _refuse(
            f"not in a category folder ({where}); images go in <folder>/<category>/<image>."))
    suffix = PurePosixPath(parts[1]).suffix.lower()
    if suffix not in ALLOWED_EXTENSIONS:
        kind = f"a {suffix} file" if suffix else "a file without an extension"
        return LabelledItem(key, parts[0], _refuse(
            f"{kind}, not an image type the classifier reads "
            f"({', '.join(sorted(ALLOWED_EXTENSIONS))})."))
    return LabelledItem(key, parts[0], load)


def _refuse(reason: str) -> Callable[[], bytes]:
    def load() -> bytes:
        raise SkippedFileError(reason)
    return load


def _folder_items(root: Path) -> list[LabelledItem]:
    try:
        files = [p for p in root.rglob("*") if p.is_file()]
    except OSError as exc:
        raise DatasetReadError(
            f"Cannot read dataset folder {root}: {exc}. Check permissions."
        ) from exc
    items = (_item(p.relative_to(root).as_posix(), p.relative_to(root).parts, p.read_bytes)
             for p in files)
    return sorted((i for i in items if i is not None), key=lambda i: i.key)


class _ZipReader:
    """One shared handle per archive; ZipFile reads of different members are lock-protected."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path)
        self._lock = threading.Lock()

    def loader(self, name: str) -> Callable[[], bytes]:
        def load() -> bytes:
            with self._lock:
                return self._zip.read(name)
        return load


def _zip_items(path: Path) -> list[LabelledItem]:
    try:
        reader = _ZipReader(path)
        names = [n for n in reader._zip.namelist() if not n.endswith("/")]
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetReadError(f"Cannot read archive {path}: {exc}. Re-create the zip.") from exc
    parts = {n: PurePosixPath(n).parts for n in names if not _is_litter(PurePosixPath(n).parts)}
    # "data.zip/flowers/roses/1.jpg": drop the single folder wrapping everything (one category
    # alone cannot be trained on, so a lone top folder holding folders is a wrapper).
    tops = {p[0] for p in parts.values()}
    wrapped = all(len(p) >= 2 for p in parts.values()) and any(len(p) >= 3
                                                               for p in parts.values())
    strip = 1 if len(tops) == 1 and wrapped else 0
    items = (_item(n, p[strip:], reader.loader(n)) for n, p in parts.items())
    return sorted((i for i in items if i is not None), key=lambda i: i.key)


def build_cache(items: Iterable[LabelledItem], *, size: tuple[int, int], cache_dir: str | Path,
                workers: int = 4) -> DatasetCache:
    """Fetch and decode every image once, in a thread pool, into a uint8 memmap.

    Decoding uses ``classifier.preprocessing.decode_image``, the same function inference uses, so
    training sees exactly the pixels a deployed model will see. Results are written into the
    memmap as they complete; at most ``workers * IN_FLIGHT_PER_WORKER`` images are in memory.

    Args:
        items: labelled images; their order fixes the cache order (sort them for reproducibility).
        size: ``(height, width)`` every image is resized to.
        cache_dir: folder for ``images.npy`` (memmap) and ``labels.json``; created if missing.
        workers: threads fetching and decoding concurrently.

    Returns:
        The cache, with unreadable or corrupt images listed in ``skipped`` with the reason.

    Raises:
        NotEnoughDataError: there are no items, or none of them could be decoded.
    """
    items = list(items)
    if not items:
        raise NotEnoughDataError("No labelled images found: add images to at least two categories "
                                 "(folder layout <folder>/<category>/<image>).")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    h, w = size
    images = np.lib.format.open_memmap(cache_dir / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=(len(items), h, w, 3))
    ok = np.zeros(len(items), dtype=bool)
    skipped = _decode_into(items, images, ok, size=size, workers=workers)
    if not ok.any():
        raise NotEnoughDataError(f"None of the {len(items)} images could be read "
                                 f"(first error: {skipped[0].reason}). Check the files.")
    kept = np.flatnonzero(ok)
    # Compact in place: rows only move towards the start, so a forward copy never overwrites
    # a row that is still to be moved.
    for dst, src in enumerate(kept):
        if dst != src:
            images[dst] = images[src]
    images.flush()
    names = sorted({items[i].label for i in kept})
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index[items[i].label] for i in kept], dtype=np.int32)
    keys = [items[i].key for i in kept]
    (cache_dir / "labels.json").write_text(json.dumps({"label_names": names, "keys": keys,
                                                      "labels": labels.tolist()}))
    return DatasetCache(images=images[: len(kept)], labels=labels, label_names=names, keys=keys,
                        skipped=skipped, size=(h, w), cache_dir=cache_dir)


def _load_and_decode(item: LabelledItem, size: tuple[int, int]) -> np.ndarray:
    return decode_image(item.load(), size=size)


def _decode_into(items: list[LabelledItem], images: np.ndarray, ok: np.ndarray, *,
                 size: tuple[int, int], workers: int) -> list[SkippedItem]:
    skipped: list[SkippedItem] = []
    window = max(1, workers) * IN_FLIGHT_PER_WORKER

    def collect(done: set[cf.Future]) -> None:
        for fut in done:
            i = pending.pop(fut)
            try:
                images[i] = fut.result()
                ok[i] = True
                continue
            # Loaders are caller code (Django storage, Appwrite SDK) with their own error
            # types: any failure skips that one image, the rest of the run goes on.
            except SkippedFileError as exc:
                reason = str(exc)
            except Exception as exc:  # noqa: BLE001
                reason = f"{type(exc).__name__}: {exc}"
            skipped.append(SkippedItem(items[i].key, items[i].label, reason))

    pending: dict[cf.Future, int] = {}
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, item in enumerate(items):
            if len(pending) >= window:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                collect(done)
            pending[pool.submit(_load_and_decode, item, size)] = i
        collect(set(cf.wait(pending).done))
    return sorted(skipped, key=lambda s: s.key)


def filter_small_classes(cache: DatasetCache, *, min_images: int) -> tuple[DatasetCache, list[str]]:
    """Drop classes with fewer than ``min_images`` images; return the relabelled cache and warnings.

    Raises:
        NotEnoughDataError: fewer than two classes are left.
    """
    counts = np.bincount(cache.labels[cache.labels >= 0], minlength=len(cache.label_names))
    keep = [n for n, c in zip(cache.label_names, counts) if c >= min_images]
    warnings = [f"Category {n!r} has only {c} image(s) (minimum {min_images}); it was left out."
                for n, c in zip(cache.label_names, counts) if c < min_images]
    if len(keep) < 2:
        found = ", ".join(f"{n}: {c}" for n, c in zip(cache.label_names, counts)) or "none"
        raise NotEnoughDataError(
            f"Training needs at least two categories with {min_images}+ images each; found {found}."
            " Add images, or lower min_images_per_class."
        )
    return cache.relabel(keep), warnings


def stratified_split(labels: np.ndarray, *, validation_split: float, test_split: float = 0.0,
                     seed: int) -> Split:
    """Split indices per class so every split keeps the class proportions.

    Each class with 2+ images gets at least one validation image (so per-class validation
    metrics exist) and keeps at least one training image. Labels ``< 0`` are left out. The same
    labels and seed always give the same split.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for cls in np.unique(labels[labels >= 0]):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n = len(idx)
        n_val = max(1, round(n * validation_split)) if n >= 2 else 0
        n_test = max(1, round(n * test_split)) if test_split > 0 and n >= 3 else 0
        # Never leave a class without training images.
        n_test = min(n_test, max(0, n - n_val - 1))
        parts["validation"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    joined = {k: np.sort(np.concatenate(v)).astype(np.int64) if v else np.zeros(0, np.int64)
              for k, v in parts.items()}
    return Split(**joined)


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced weights ``n / (k * count_c)`` so rare categories weigh as much as common ones."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    k = int(present.sum())
    return {
        c: float(len(labels) / (k * counts[c])) if present[c] else 0.0
        for c in range(num_classes)
    }


def dataset_stats(cache: DatasetCache, split: Split, *, dropped: dict[str, int],
                  warnings: list[str]) -> DatasetStats:
    """Count images per class per split (what the admin shows next to the metrics)."""
    counts = {name: {"train": 0, "validation": 0, "test": 0} for name in cache.label_names}
    for part in ("train", "validation", "test"):
        for cls, n in zip(*np.unique(cache.labels[getattr(split, part)], return_counts=True)):
            counts[cache.label_names[cls]][part] = int(n)
    return DatasetStats(classes=list(cache.label_names), counts=counts, dropped_classes=dropped,
                        skipped=list(cache.skipped), warnings=list(warnings))
