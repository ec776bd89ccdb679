"""Errors raised by the training pipeline, each with a message that says how to fix it."""


class TrainingError(Exception):
    """Base class: training cannot go on. The message tells the operator what to change."""


class InvalidHParamsError(TrainingError):
    """A hyperparameter is out of range or of the wrong kind."""


class NotEnoughDataError(TrainingError):
    """No labelled images, only one category, or too few images per category."""


class DatasetReadError(TrainingError):
    """The image folder or archive cannot be read (missing, not a folder/zip, corrupt zip)."""


class WeightsUnavailableError(TrainingError):
    """Pretrained ImageNet weights cannot be loaded (typically: no internet on this machine)."""
