"""Hyperparameters of one training run, validated up front and stored with the model version."""

from __future__ import annotations

import dataclasses
from typing import Any

from training.exceptions import InvalidHParamsError

ARCHITECTURES = ("cnn", "mobilenet_v3_small")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
# MobileNetV3 refuses inputs below 32x32, and the tutorial CNN's three 2x2 pools leave a 4x4 map.
MIN_IMAGE_SIDE = 32
# Above this the uint8 cache of a 10k-image catalogue passes ~10 GB and CPU training crawls.
MAX_IMAGE_SIDE = 512
# Thread pool bound: decoding is CPU-bound in Pillow (releases the GIL), fetching is I/O-bound.
MAX_DECODE_WORKERS = 64


@dataclasses.dataclass
class HParams:
    """What to train and how; the defaults beat the tutorial recipe (see training/README notes).

    ``weights`` only matters for pretrained architectures: ``"imagenet"`` (Keras download cache),
    a path to a ``*_no_top*.h5`` weights file for the chosen architecture, or ``None`` for a
    random initialisation. The tutorial ``cnn`` always starts from random weights.
    """

    architecture: str = "mobilenet_v3_small"
    image_size: tuple[int, int] = (180, 180)
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_split: float = 0.2
    test_split: float = 0.0
    seed: int = 42
    min_images_per_class: int = 5
    augment: bool = True
    patience: int = 3
    fine_tune_epochs: int = 0
    # Top layers of the backbone unfrozen in the fine-tune phase (BatchNorm stays frozen).
    fine_tune_layers: int = 30
    # Fine-tuning runs at learning_rate * this, so pretrained features are nudged, not wiped.
    fine_tune_lr_factor: float = 0.1
    dropout: float = 0.2
    weights: str | None = "imagenet"
    quantization: str = "float32"
    decode_workers: int = 4

    def __post_init__(self) -> None:
        self.image_size = tuple(int(s) for s in self.image_size)  # JSON gives lists
        self._check_choices()
        self._check_numbers()

    def _check_choices(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InvalidHParamsError(
                f"Unknown architecture {self.architecture!r}: "
                f"choose one of {', '.join(ARCHITECTURES)}."
            )
        if self.quantization not in QUANTIZATIONS:
            raise InvalidHParamsError(
                f"Unknown quantization {self.quantization!r}: choose one of "
                f"{', '.join(QUANTIZATIONS)}."
            )
        if len(self.image_size) != 2 or not all(
            MIN_IMAGE_SIDE <= s <= MAX_IMAGE_SIDE for s in self.image_size
        ):
            raise InvalidHParamsError(
                f"image_size {self.image_size} must be two sides between {MIN_IMAGE_SIDE} and "
                f"{MAX_IMAGE_SIDE} pixels, e.g. (180, 180)."
            )

    def _check_numbers(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size,
                    "patience": self.patience, "min_images_per_class": self.min_images_per_class}
        for name, value in positive.items():
            if int(value) != value or value < 1:
                raise InvalidHParamsError(
                    f"{name} must be a whole number of at least 1, got {value}."
                )
        if not 0 < self.learning_rate < 1:
            raise InvalidHParamsError(
                f"learning_rate must be between 0 and 1 (e.g. 0.001), got {self.learning_rate}."
            )
        if not 0 < self.validation_split < 1 or not 0 <= self.test_split < 1:
            raise InvalidHParamsError(
                "validation_split must be in (0, 1) and test_split in [0, 1), e.g. 0.2 and 0.1."
            )
        if self.validation_split + self.test_split >= 0.9:
            raise InvalidHParamsError(
                "validation_split + test_split leave under 10% of images for training: lower them."
            )
        if self.fine_tune_epochs < 0 or self.fine_tune_layers < 0:
            raise InvalidHParamsError("fine_tune_epochs and fine_tune_layers must be 0 or more.")
        if not 0 <= self.dropout < 1:
            raise InvalidHParamsError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not 1 <= self.decode_workers <= MAX_DECODE_WORKERS:
            raise InvalidHParamsError(
                f"decode_workers must be between 1 and {MAX_DECODE_WORKERS}, "
                f"got {self.decode_workers}."
            )

    @property
    def pretrained(self) -> bool:
        """True when the run starts from pretrained backbone weights."""
        return self.architecture != "cnn" and self.weights is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, stored on the model version so a run can be repeated."""
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HParams:
        """Inverse of ``to_dict``; unknown keys are an error so typos don't pass silently."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidHParamsError(
                f"Unknown hyperparameters {unknown}: valid ones are {sorted(known)}."
            )
        return cls(**data)
