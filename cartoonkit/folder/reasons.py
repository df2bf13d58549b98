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


def os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
