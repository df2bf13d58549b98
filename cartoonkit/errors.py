"""The package's own exceptions.

Everything a user can cause (a bad file, a bad setting, a missing or damaged model) raises a
subclass of :class:`CartoonkitError` whose message says what went wrong and what to do. The
command line turns these into one line on stderr; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class CartoonkitError(Exception):
    """Base class for every error a user of cartoonkit can cause."""


class ConfigError(CartoonkitError, ValueError):
    """A setting is out of range or of the wrong kind; the message names setting, value and range."""


class InvalidImageError(CartoonkitError):
    """An input could not be used as an image; the message starts with the file's name."""


class OutputError(CartoonkitError):
    """An output could not be written (folder not writable, disk full, would overwrite an input)."""


class ModelError(CartoonkitError):
    """A model is missing, cannot be imported, or failed its integrity check."""


class WeightImportError(ModelError):
    """A weight file is not the network it claims to be; the message says what was expected and found."""


class IntegrityError(ModelError):
    """A file's sha256 does not match the checksum it must have."""


class MissingDependencyError(CartoonkitError, ImportError):
    """An optional package is not installed; the message names the pip extra that provides it."""


def reason_of(exc: BaseException, *, whole: bool = False) -> str:
    """A short human reason for ``exc``, to put in a message: its ``strerror`` where it has one (an OS error, a
    PyAV error: "No such file or directory" rather than "[Errno 2] No such file or directory: 'x'"), else its
    message, else its type's name.

    ``whole``: its whole message on one line instead, ``strerror`` or not. For object storage: pyarrow's errors
    carry no useful errno, and their long messages ("When initiating multiple part upload for key 'x' in bucket
    'b': AWS Error ACCESS_DENIED during CreateMultipartUpload operation: ...") are the reason."""
    if whole:
        return " ".join(str(exc).split()) or type(exc).__name__
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
