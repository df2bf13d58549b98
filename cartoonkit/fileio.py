"""Writing files so that a crash, a kill or a full disk never leaves half a file behind.

:func:`write_atomic` writes one file durably (a temporary file, fsync, rename, the directory synced);
inside :func:`durable_together` the files a thread writes keep the same guarantees but pay for durability once
per group: every temporary file is written, the file system is flushed once (``syncfs``), then each is renamed
into place and each directory synced once. A per-file ``fsync`` is a journal commit each; for small outputs it
was most of a folder run's host cost (BENCHMARKS.md, "Host cost per file").
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import os
import sys
import threading
from collections.abc import Iterator

from .errors import OutputError, reason_of


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    The bytes go to a hidden temporary file in the same directory (same filesystem, so
    the final ``os.replace`` is atomic), are fsynced, then renamed over ``path``. Missing
    parent directories are created. On any failure the temporary file is removed, an
    existing ``path`` is left untouched, and :class:`OutputError` names ``path``.

    Inside :func:`durable_together` (in this thread) the flush and the rename wait for the end of the block.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    group: _Group | None = getattr(_GROUP, "current", None)
    tmp_path: str | None = None
    try:
        _ensure_directory(directory)
        tmp_path = _write_temporary(path, directory, data, sync=group is None or not _HAVE_SYNCFS)
        if group is not None:
            group.pending.append((path, tmp_path))
            tmp_path = None
            return
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


class _Group:
    """The files :func:`write_atomic` wrote inside one :func:`durable_together` block, not yet in place."""

    def __init__(self):
        self.pending: list[tuple[str, str]] = []     # (path, temporary path)
        self.failed: dict[str, OutputError] = {}     # path -> why it is not in place


_GROUP = threading.local()


@contextlib.contextmanager
def durable_together() -> Iterator[_Group]:
    """Pay for durability once for every :func:`write_atomic` of this thread inside the block: each file goes to
    its temporary file at once, and at the end of the block they are flushed together (one ``syncfs`` per file
    system; an ``fsync`` per file where there is no ``syncfs``), renamed into place, and each directory synced
    once. The guarantees are :func:`write_atomic`'s: a file is renamed only once its bytes are flushed, so a kill
    or a crash at any point leaves whole files or none (and the hidden temporary files a kill leaves).

    Yields the group: after the block, ``group.failed`` maps each path that did not get into place to its
    :class:`OutputError` (a failed flush fails every file of the group). Nested blocks join the outer one.
    :func:`staged` and :func:`commit` are its two halves, for a caller that commits elsewhere."""
    if getattr(_GROUP, "current", None) is not None:
        yield _GROUP.current
        return
    with staged() as group:
        try:
            yield group
        finally:
            _GROUP.current = None
            commit(group)


@contextlib.contextmanager
def staged() -> Iterator[_Group]:
    """The first half of :func:`durable_together`: every :func:`write_atomic` of this thread inside the block
    writes its temporary file and joins the yielded group, and nothing more happens at the end. The caller
    hands the group to :func:`commit`, possibly in another thread and together with other groups (group commit:
    one flush for all the files several writer threads staged meanwhile). Until then the files are only
    hidden temporary files, which a kill leaves and the next run removes."""
    group = _GROUP.current = _Group()
    try:
        yield group
    finally:
        _GROUP.current = None


def commit(*groups: _Group) -> None:
    """Put the files of staged groups into place durably: one flush of each file system for all of them, the
    renames, one sync of each directory. Each group's ``failed`` gets the paths of its own that did not make it
    (a failed flush fails every file). Thread-safe: it touches only the groups given."""
    together = _Group()
    for group in groups:
        together.pending.extend(group.pending)
    _commit(together)
    for group in groups:
        group.failed.update({path: together.failed[path] for path, _ in group.pending if path in together.failed})
        group.pending = []


def _commit(group: _Group) -> None:
    placed = 0  # entries of group.pending dealt with (in place, or failed on their own)
    try:
        if _HAVE_SYNCFS and group.pending:
            _syncfs({os.path.dirname(temporary) for _, temporary in group.pending})
        for path, temporary in group.pending:
            try:
                os.replace(temporary, path)
            except OSError as exc:
                group.failed[path] = _output_error(path, exc)
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
            placed += 1
        # The temporary file's folder is the destination's, and absolute (a bare relative name has none).
        for directory in {os.path.dirname(temporary) for _, temporary in group.pending}:
            _fsync_directory(directory)
    except BaseException as exc:  # the flush failed (or the thread was interrupted): none of the rest is placed
        for path, temporary in group.pending[placed:]:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(exc, OSError):
                group.failed[path] = _output_error(path, exc)
        if not isinstance(exc, OSError):
            raise


def _output_error(path: str, exc: BaseException) -> OutputError:
    error = OutputError(f"cannot write {path}: {reason_of(exc)}")
    error.__cause__ = exc  # the errno travels: a full or read-only disk stops the run
    return error


def _write_temporary(path: str, directory: str, data: bytes, *, sync: bool) -> str:
    """``data`` in a new hidden temporary file beside ``path`` (fsynced if ``sync``); its path. Removed again on
    failure. Made with ``os.open`` and ``os.write`` rather than ``mkstemp`` and a file object: for small outputs
    their Python overhead was a visible part of a folder run's host cost."""
    # Long names are shortened by bytes, not characters, so prefix + random part + suffix stay within NAME_MAX
    # (255 bytes) whatever the encoding; a cut inside a multi-byte character is harmless (the temporary name is
    # bytes to the filesystem and never shown).
    prefix = "." + os.fsdecode(os.fsencode(os.path.basename(path))[:100]) + "."
    fd, tmp_path = _create_temporary(directory, prefix)
    try:
        try:
            os.fchmod(fd, 0o644)  # created 0o600, like mkstemp
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    return tmp_path


def _create_temporary(directory: str, prefix: str) -> tuple[int, str]:
    """A new file ``prefix`` + 8 random characters + ``.tmp`` in ``directory`` (the name the folder planner
    recognises as a leftover), opened for writing; never an existing file or a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        # 40 random bits as 8 base32 characters ([a-z2-7]); urandom needs no reseeding after a fork
        tmp_path = os.path.join(directory, prefix + base64.b32encode(os.urandom(5)).decode().lower() + ".tmp")
        try:
            return os.open(tmp_path, flags, 0o600), tmp_path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary file name in {directory}")


def _load_syncfs():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function


_SYNCFS = _load_syncfs()
_HAVE_SYNCFS = _SYNCFS is not None


def _syncfs(directories: set[str]) -> None:
    """Flush the file system of each directory (one call per file system: directories on one device share it);
    an error is raised as the ``OSError`` it is (Linux reports lost writeback there since 5.8)."""
    seen: set[int] = set()
    for directory in directories:
        fd = os.open(directory, os.O_RDONLY)
        try:
            device = os.fstat(fd).st_dev
            if device in seen:
                continue
            seen.add(device)
            if _SYNCFS(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
        finally:
            os.close(fd)


def _ensure_directory(directory: str) -> None:
    """Create ``directory`` (and parents), with a clear error if a file is in the way."""
    if os.path.isdir(directory):  # the common case, one stat
        return
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
