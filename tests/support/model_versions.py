"""A stored ModelVersion for a TFLite model's bytes: what tests and benches classify with."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from django.core.files.base import ContentFile

from classifier.contract import InputContract


def stored_model_version(content: bytes, *, labels: Sequence[str], number: int,
                         contract: InputContract, architecture: str = "tiny",
                         activate: bool = True, embedding_dim: int = 0,
                         embedding_backbone: str = ""):
    """Save ``content`` as version ``number`` through the models storage; activate it.

    ``embedding_dim``: the width of the model's embedding output, when it has one.
    """
    from classifier.models import ModelVersion
    from classifier.services import model_version_activate

    version = ModelVersion(number=number, labels=list(labels), architecture=architecture,
                           input_contract=contract.to_dict(), size_bytes=len(content),
                           checksum=hashlib.sha256(content).hexdigest(),
                           embedding_dim=embedding_dim,
                           embedding_backbone=embedding_backbone)
    version.file.save(f"{architecture}-{number}.tflite", ContentFile(content), save=False)
    version.save()
    if activate:
        version = model_version_activate(model_version=version)
    return version
