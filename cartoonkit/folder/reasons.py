"""How a problem with one file, or with the output folder itself, is put into words for the report."""

from __future__ import annotations

import errno

# An output folder that fails with one of these will fail every following file too: stop.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                 getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_fatal(exc: BaseException) -> bool:
    """An error of the output folder itself (full, read-only, not writable), not of one file."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in _FATAL_ERRNOS:
            return True
        cause = cause.__cause__
    return False


def unexpected(exc: BaseException) -> str:
    return f"unexpected {type(exc).__name__}: {exc}"


def strip_name(message: str, name: str) -> str:
    """``"<name>: problem"`` -> ``"problem"``: the report names the file separately."""
    prefix = f"{name}: "
    return message[len(prefix):] if message.startswith(prefix) else message


_FAILURE_KINDS = (  # (words in the reason, the kind the report counts it under); the first match wins
    ("file is empty", "empty file"),
    ("not an image", "not an image (by content)"),
    ("not a photo format", "unsupported image type (by content)"),
    ("needs pillow-jxl-plugin", "JPEG XL without the jxl extra"),
    ("built without avif", "AVIF without Pillow support"),
    ("needs pillow-heif", "HEIC without pillow-heif"),
    ("size header cannot be found", "truncated or corrupt"),
    ("pixel limit", "over the pixel limit"),
    ("larger than the limit of", "over the file size limit"),
    ("zero size", "zero size"),
    ("truncated or corrupt", "truncated or corrupt"),
    ("broken symbolic link", "broken link"),
    ("no such file or folder", "no such file or folder"),
    ("file does not exist", "no such file or folder"),
    ("permission denied", "permission denied"),
    ("out of memory", "out of memory"),
    ("not enough memory", "out of memory"),
    ("cannot list this folder", "folder cannot be listed"),
    ("would be written outside", "output refused"),
    ("would overwrite an input", "output refused"),
    ("is already the output of", "output refused"),
    ("cannot write", "cannot write the output"),
    ("cannot encode", "cannot write the output"),
    ("unexpected", "unexpected error"),
)


def failure_kind(reason: str) -> str:
    """The kind of problem a failure's reason describes (the report's counts by reason); ``other`` if none."""
    lowered = reason.lower()
    for words, kind in _FAILURE_KINDS:
        if words in lowered:
            return kind
    return "other"
