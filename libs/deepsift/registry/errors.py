"""One exception per registry failure a caller can act on; every message names the model and version.

:func:`first_line` turns the error that caused one (MLflow's, torch's, the file system's) into the
short form those messages quote.
"""

from __future__ import annotations

from deepsift.errors import DeepsiftError


class RegistryError(DeepsiftError):
    """Base of every detector-registry failure."""


class ModelNotFoundError(RegistryError, LookupError):
    """No registered model, version or alias by that name; the message lists what exists."""


class ModelArtifactError(RegistryError):
    """A version's stored file is missing, unreadable, or does not fit its architecture."""


class ContractMissingError(ModelArtifactError):
    """A version has no readable preprocessing contract, so nothing can say how to feed it."""


class CheckpointError(RegistryError):
    """A checkpoint to import cannot be read as plain tensors (``torch.load(weights_only=True)``)."""


class CheckpointMismatchError(CheckpointError, ValueError):
    """A state dict does not fit the architecture; the message names the first bad key and shapes."""


class ModelCodeNotFoundError(RegistryError, FileNotFoundError):
    """The models-from-code file ``models/detector_pyfunc.py`` is not beside the library."""


def first_line(error: BaseException) -> str:
    """``"<type>: <first line of the message>"``: a cause short enough to quote inside a registry error.

    >>> first_line(OSError("disk gone\\nsecond line"))
    'OSError: disk gone'
    """
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
