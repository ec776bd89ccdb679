"""The input contract: what a model's input tensor expects, stored with each model version."""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields

from classifier.exceptions import ModelContractError

# The only resize method classifier.preprocessing implements; stored in each contract so a model
# trained with another method is refused instead of silently fed differently resized pixels.
RESIZE_METHOD = "bilinear-squash"

_CONTRACT_DTYPES = ("float32", "uint8", "int8")
_CONTRACT_OUTPUTS = ("logits", "probabilities")


@dataclass(frozen=True)
class InputContract:
    """What a model's input tensor expects, stored with each model version and checked on load.

    Attributes:
        height: Input height in pixels.
        width: Input width in pixels.
        channels: Colour channels; only 3 (RGB) is produced by ``classifier.preprocessing``.
        dtype: The model's input tensor dtype: ``"float32"``, ``"uint8"`` or ``"int8"``.
        value_range: Real-valued range the 0-255 pixels are mapped to before the tensor. The
            default ``(0.0, 255.0)`` means raw pixels: the graph rescales.
        mean: Optional per-channel mean subtracted after ``value_range`` mapping.
        std: Optional per-channel std divided by after ``mean``.
        resize: Name of the resize method; must be ``RESIZE_METHOD``.
        output: ``"logits"`` (softmax applied in NumPy) or ``"probabilities"``.
    """

    height: int
    width: int
    channels: int = 3
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 255.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str = RESIZE_METHOD
    output: str = "logits"

    def __post_init__(self):
        # Accept lists (from JSON) and NumPy integers (from training code) but store plain tuples
        # and ints, so contracts stay hashable, JSON-safe and equal however they were built.
        for key in ("height", "width", "channels"):
            value = getattr(self, key)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                object.__setattr__(self, key, int(value))
        for key in ("value_range", "mean", "std"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, tuple(float(v) for v in value))
        problem = self._problem()
        if problem:
            raise ModelContractError(
                f"Invalid input contract: {problem}. Re-export the model version so its contract "
                "is written by the current training code."
            )

    def _problem(self) -> str | None:
        if not all(isinstance(v, int) and v > 0 for v in (self.height, self.width)):
            return f"height and width must be positive integers, got {self.height}x{self.width}"
        if self.channels != 3:
            return f"channels must be 3 (RGB), got {self.channels}"
        if self.dtype not in _CONTRACT_DTYPES:
            return f"dtype must be one of {_CONTRACT_DTYPES}, got {self.dtype!r}"
        if len(self.value_range) != 2 or not self.value_range[0] < self.value_range[1]:
            return f"value_range must be (low, high) with low < high, got {self.value_range}"
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != self.channels:
                return f"{name} needs {self.channels} values, got {values}"
        if self.std is not None and any(v == 0 for v in self.std):
            return f"std values must be non-zero, got {self.std}"
        if self.resize != RESIZE_METHOD:
            return f"resize method {self.resize!r} is not implemented (only {RESIZE_METHOD!r})"
        if self.output not in _CONTRACT_OUTPUTS:
            return f"output must be one of {_CONTRACT_OUTPUTS}, got {self.output!r}"
        return None

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``, the order :func:`decode_image` takes."""
        return (self.height, self.width)

    def to_dict(self) -> dict:
        """JSON-safe dict (tuples become lists) for storing with the model version."""
        data = asdict(self)
        for key in ("value_range", "mean", "std"):
            if data[key] is not None:
                data[key] = [float(v) for v in data[key]]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> InputContract:
        """Rebuild a contract from :meth:`to_dict` output.

        Raises:
            ModelContractError: Unknown keys (a contract from newer code whose meaning this code
                cannot honour), missing height/width, or invalid values.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelContractError(
                f"Input contract has fields this code does not understand: {unknown}. Deploy the "
                "code version that trained the model, or re-export the model."
            )
        if "height" not in data or "width" not in data:
            raise ModelContractError("Input contract lacks height/width. Re-export the model.")
        return cls(**data)
