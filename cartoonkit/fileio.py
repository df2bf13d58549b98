"""Writing files so that a crash, a kill or a full disk never leaves half a file behind."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

from .errors import OutputError, reason_of


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    The bytes go to a hidden temporary file in the same directory (same filesystem, so
    the final ``os.replace`` is atomic), are fsynced, then renamed over ``path``. Missing
    parent directories are created. On any failure the temporary file is removed, an
    existing ``path`` is left untouched, and :class:`OutputError` names ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp_path: str | None = None
    try:
        _ensure_directory(directory)
        # Long names are shortened by bytes, not characters, so prefix + random part + suffix stay
        # within NAME_MAX (255 bytes) whatever the encoding; a cut inside a multi-byte character is
        # harmless (the temporary name is bytes to the filesystem and never shown).
        prefix = "." + os.fsdecode(os.fsencode(os.path.basename(path))[:100]) + "."
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o644)  # mkstemp creates 0o600
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_path, path)
        tmp_path = None
        _fsync_directory(directory)
    except BaseException as exc:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_path)
        if isinstance(exc, Exception):
            raise OutputError(f"cannot write {path}: {reason_of(exc)}") from exc
        raise


def _ensure_directory(directory: str) -> None:
    """Create ``directory`` (and parents), with a clear error if a file is in the way."""
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(
            errno.ENOTDIR, f"{directory} (or one of its parents) is not a directory"
        ) from None


def _fsync_directory(directory: str) -> None:
    """Persist the rename itself; best effort, as not every OS/filesystem supports it."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
