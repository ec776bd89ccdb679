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
    """Pretrained weights cannot be loaded: not installed, not downloadable, corrupt or unknown.

    The parts are kept apart so each adapter can word the error for where it was asked (the
    command says ``--weights PATH``, the admin form names its field, the API its parameter):

    Attributes:
        problem: what went wrong, without the fix.
        path: the weights file concerned, or ``None`` when there is none (e.g. a download).
        sha256: hex SHA-256 of that file, or ``None`` when it is missing or unreadable.
        fix: what the operator can do about it (worded for the command line).
    """

    def __init__(self, problem: str, *, path: object | None = None, sha256: str | None = None,
                 fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.sha256 = sha256
        self.fix = fix
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.problem]
        if self.path is not None:
            parts.append(f"(file {self.path}, SHA-256 {self.sha256 or 'unknown: not readable'})")
        if self.fix:
            parts.append(self.fix)
        return " ".join(parts)
