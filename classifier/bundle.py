"""Model bundles: ``model.tflite`` + ``labels.txt`` + ``metadata.json``, as a folder or a zip.

The layout any LiteRT/TFLite runtime (and the Appwrite Function in ``examples/``) reads without
this project's code. It lives here, TensorFlow-free, so the web process can build a bundle; the
training pipeline's ``training.export.write_bundle`` delegates to it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier.exceptions import ClassifierError

BUNDLE_MODEL = "model.tflite"
BUNDLE_LABELS = "labels.txt"
BUNDLE_METADATA = "metadata.json"


class BundleError(ClassifierError):
    """A bundle cannot be written from this model (bad labels, damaged model file)."""

    default_message = "The model bundle cannot be written. Re-export the model version."


def bundle_files(tflite_bytes: bytes, labels: Sequence[str],
                 metadata: dict[str, Any]) -> dict[str, bytes]:
    """The three bundle members by name.

    ``labels`` and (unless ``metadata`` gives one) ``created`` are added to the metadata.

    Raises:
        BundleError: a label contains a line break (``labels.txt`` is one label per line).
    """
    if any("\n" in label or "\r" in label for label in labels):
        raise BundleError("A category name contains a line break; rename it before exporting.")
    meta = {"created": dt.datetime.now(dt.UTC).isoformat(), **metadata, "labels": list(labels)}
    return {
        BUNDLE_MODEL: bytes(tflite_bytes),
        BUNDLE_LABELS: ("\n".join(labels) + "\n").encode(),
        BUNDLE_METADATA: json.dumps(meta, indent=2, sort_keys=True).encode(),
    }


def bundle_zip_bytes(tflite_bytes: bytes, labels: Sequence[str],
                     metadata: dict[str, Any]) -> bytes:
    """The bundle as zip bytes (models are a few MB, so one buffer is fine for a download)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in bundle_files(tflite_bytes, labels, metadata).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def write_bundle(dir_or_zip: str | Path, tflite_bytes: bytes, labels: Sequence[str],
                 metadata: dict[str, Any]) -> Path:
    """Write the bundle; a path ending in ``.zip`` gets a zip archive, anything else a folder."""
    target = Path(dir_or_zip)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".zip":
        target.write_bytes(bundle_zip_bytes(tflite_bytes, labels, metadata))
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name, data in bundle_files(tflite_bytes, labels, metadata).items():
        (target / name).write_bytes(data)
    return target
