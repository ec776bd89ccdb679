"""Model bundle export: a stored model version as ``model.tflite`` + ``labels.txt`` + metadata."""

from __future__ import annotations

import hashlib
from pathlib import Path

from catalog.exports.records import export_record_log
from catalog.models import ExportKind
from classifier.bundle import BundleError, bundle_zip_bytes
from classifier.contract import InputContract
from classifier.models import ModelVersion
from classifier.preprocessing import source_size

# Bumped when a bundle's layout or metadata keys change, so consumers can check what they read.
# 2: ``source_size``, the size an image is reduced to before the final resize.
BUNDLE_FORMAT = "catalog-classifier-bundle/2"


def model_version_bundle_metadata(model_version: ModelVersion, *, checksum: str) -> dict:
    """``metadata.json`` for a version: what a runtime needs to feed the model, and its record.

    The input size, dtype and value range are repeated at the top level (from the stored input
    contract, never a copied constant) so a consumer need not know the contract's layout.
    ``source_size`` is ``classifier.preprocessing.source_size`` of the input: a runtime that
    decodes JPEGs at a reduced scale (or asks a server for a preview) uses it to see the pixels
    the model was trained on.
    """
    contract = InputContract.from_dict(model_version.input_contract)
    return {
        "format": BUNDLE_FORMAT,
        "model_version": model_version.number,
        "name": model_version.name,
        "input_size": [contract.height, contract.width],
        "source_size": list(source_size(contract.size)),
        "input_dtype": contract.dtype,
        "value_range": list(contract.value_range),
        "output": contract.output,
        "input_contract": contract.to_dict(),
        "architecture": model_version.architecture,
        "quantization": model_version.quantization,
        "metrics": model_version.metrics,
        "created": model_version.created_at.isoformat(),
        "checksum": checksum,
        "checksum_algorithm": "sha256",
    }


def model_version_bundle(*, model_version: ModelVersion, user=None) -> tuple[str, bytes]:
    """The version's bundle as ``(file name, zip bytes)``, recorded as an export.

    The stored file is checked against the version's SHA-256 first, so a damaged file is refused
    instead of shipped.

    Raises:
        BundleError: the model file is missing, damaged, or a label contains a line break.
    """
    try:
        with model_version.file.open("rb") as handle:
            tflite_bytes = handle.read()
    except (OSError, ValueError) as exc:
        raise BundleError(f"The model file of v{model_version.number} cannot be read ({exc}). "
                          "Retrain, or export another version.") from exc
    checksum = hashlib.sha256(tflite_bytes).hexdigest()
    if model_version.checksum and checksum != model_version.checksum:
        raise BundleError(f"The model file of v{model_version.number} does not match its stored "
                          "SHA-256: it was damaged or replaced. Retrain, or export another "
                          "version.")
    data = bundle_zip_bytes(tflite_bytes, model_version.labels,
                            model_version_bundle_metadata(model_version, checksum=checksum))
    export_record_log(
        kind=ExportKind.MODEL_BUNDLE, user=user, count=1,
        filters={"model_version": model_version.number},
        message=f"Exported model bundle of v{model_version.number}",
        logged_object=model_version,
    )
    return f"model-v{model_version.number}.zip", data


def model_version_export_to(*, model_version: ModelVersion, output: str | Path,
                            user=None) -> Path:
    """Write the bundle zip to ``output`` (the command's path); returns the path written."""
    _, data = model_version_bundle(model_version=model_version, user=user)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target
