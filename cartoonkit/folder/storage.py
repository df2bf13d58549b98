"""Where a folder run reads and writes: a local folder, or object storage that ``pyarrow.fs`` understands.

A local folder is a :class:`~pathlib.Path` and keeps the local rules (:mod:`.plan`: symbolic links and real
paths; :func:`~cartoonkit.fileio.write_atomic`: a temporary file, fsync, a rename). Anything written as
``SCHEME://...`` (``s3://bucket/prefix``, ``gs://bucket/prefix``: every URI
``pyarrow.fs.FileSystem.from_uri`` takes, credentials and options such as ``?endpoint_override=`` included) is
an :class:`ObjectPath`, and:

* is listed once, recursively (:func:`scan_objects`), with the local planner's rules for hidden names and
  suffixes; a key with empty, ``.`` or ``..`` parts is refused, since its output could not mirror it;
* is read through ``open_input_file`` and written through ``open_output_stream``: an object appears whole
  when its upload completes, and an upload cut by a kill leaves no object, which is the atomicity
  ``write_atomic`` gives on a disk, so no temporary objects are ever left to clean up;
* keeps the run's state file and report as objects beside the outputs, and its journal as one small object
  per replaced output (objects cannot be appended to).

One thing a bucket does not give: an advisory lock. Two runs into the same output prefix at once are not
refused there (docs/scaling.md).

This module is the one place that tells the two apart; the planner, the stream and the state call it.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, InvalidImageError, OutputError, reason_of
from ..fileio import write_atomic
from ..formats import ImageLimits
from . import account


@dataclass(frozen=True)
class ObjectPath:
    """An object (or a prefix) in object storage: which store, and its path in pyarrow's ``bucket/key`` form.

    ``str()`` is ``scheme://bucket/key``, without credentials or options, for reports and messages;
    :meth:`uri` is the whole URI again, for another process (a Ray actor) to open the same store."""

    scheme: str
    netloc: str   # as given: may hold credentials (user:secret@bucket)
    query: str    # options for pyarrow (endpoint_override=..., region=...)
    path: str     # pyarrow's path: "bucket/prefix/name.jpg", no slash at either end

    @classmethod
    def parse(cls, uri: str) -> ObjectPath:
        parts = urlsplit(uri)
        if not parts.scheme or not parts.hostname:
            raise ConfigError(f"{uri}: not an object storage URL (expected SCHEME://BUCKET/PREFIX)")
        bucket = parts.netloc.rpartition("@")[2]
        path = "/".join(p for p in [bucket, *parts.path.split("/")] if p)
        return cls(parts.scheme, parts.netloc, parts.query, path)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}"

    def __repr__(self) -> str:  # never the credentials or options, even in a traceback
        return f"ObjectPath({str(self)!r})"

    def uri(self) -> str:
        rest = self.path.partition("/")[2]
        return urlunsplit((self.scheme, self.netloc, "/" + rest if rest else "", self.query, ""))

    def joinpath(self, *parts: str) -> ObjectPath:
        return ObjectPath(self.scheme, self.netloc, self.query, "/".join([self.path, *parts]))

    def __truediv__(self, part: str) -> ObjectPath:
        return self.joinpath(part)

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.scheme, self.netloc, self.query, self.path.rpartition("/")[0] or self.path)

    @property
    def bucket(self) -> str:
        return self.path.partition("/")[0]

    @property
    def place(self) -> tuple[str, str]:
        """What the object is, whatever credentials or options name it: its scheme and path."""
        return self.scheme, self.path

    def within(self, root: ObjectPath) -> bool:
        """Strictly below ``root`` in the same store."""
        return self.scheme == root.scheme and self.path.startswith(root.path + "/")

    def relative_to(self, root: ObjectPath) -> str:
        return self.path[len(root.path) + 1:]

    @property
    def filesystem(self):
        return _filesystem(self.scheme, self.netloc, self.query)


@functools.lru_cache(maxsize=16)
def _filesystem(scheme: str, netloc: str, query: str):
    """One pyarrow file system per store (bucket, credentials and options), shared by every file of a run:
    making one resolves the bucket's region and starts an HTTP client."""
    try:
        import pyarrow.fs
    except ImportError:
        raise ConfigError(f"{scheme}:// paths need pyarrow (installed with streamlit and with the 'ray' extra: "
                          "pip install 'cartoonkit[ray]')") from None
    uri = urlunsplit((scheme, netloc, "", query, ""))
    try:
        filesystem, _ = pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow.lib.ArrowInvalid for a scheme it does not know, OSError for the rest
        raise ConfigError(f"{scheme}://{netloc.rpartition('@')[2]}: pyarrow.fs cannot open this store "
                          f"({reason_of(exc, whole=True)})") from None
    return filesystem


def location(value: str | os.PathLike | ObjectPath) -> Path | ObjectPath:
    """A folder run's input, output or report: a local path, or an :class:`ObjectPath` for ``SCHEME://...``
    (checked before ``Path()``, which would make ``s3://b`` a local ``s3:/b``)."""
    if isinstance(value, ObjectPath):
        return value
    text = os.fspath(value)
    return ObjectPath.parse(text) if "://" in text else Path(text)


def is_object(path) -> bool:
    return isinstance(path, ObjectPath)


def describe(path: Path | ObjectPath) -> str:
    """What travels to another process (a Ray actor) to name the same file: :func:`location` reads it back."""
    return path.uri() if is_object(path) else str(path.absolute())


# ---------------------------------------------------------------------------------------------- folders


def is_folder(path: Path | ObjectPath) -> bool:
    if not is_object(path):
        return path.is_dir()
    import pyarrow.fs

    try:
        return path.filesystem.get_file_info(path.path).type == pyarrow.fs.FileType.Directory
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be listed ({reason_of(exc, whole=True)})") from None


def same_place(a: Path | ObjectPath, b: Path | ObjectPath) -> bool:
    if is_object(a) != is_object(b):
        return False
    if is_object(a):
        return a.place == b.place
    return os.path.realpath(a) == os.path.realpath(b)


def prepare_output(out_dir: Path | ObjectPath) -> None:
    """Make the output folder; for object storage check that its bucket is there (prefixes need no making)."""
    if not is_object(out_dir):
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {out_dir}: {reason_of(exc)}") from exc
        return
    import pyarrow.fs

    try:
        found = out_dir.filesystem.get_file_info(out_dir.bucket).type != pyarrow.fs.FileType.NotFound
    except OSError as exc:
        raise OutputError(f"cannot reach the output bucket of {out_dir}: {reason_of(exc, whole=True)}") from None
    if not found:
        raise OutputError(f"{out_dir}: the bucket {out_dir.bucket!r} does not exist; create it first")


def scan_objects(in_dir: ObjectPath, skip_prefix: ObjectPath | None, fail: Callable[[str, str], None],
                 skip: Callable[[str, str, str], None],
                 folder: Callable[[str], None] = lambda name: None) -> list[tuple[ObjectPath, PurePosixPath]]:
    """The image objects under ``in_dir`` with their paths relative to it, sorted, from one recursive listing;
    every other object goes to ``skip`` or ``fail`` as the local planner would send it, and each prefix
    searched to ``folder``. ``skip_prefix``: the output prefix, when it lies inside the input."""
    import pyarrow.fs

    try:
        infos = in_dir.filesystem.get_file_info(pyarrow.fs.FileSelector(in_dir.path, recursive=True))
    except OSError as exc:
        fail(str(in_dir), f"cannot list this folder ({reason_of(exc, whole=True)})")
        return []
    found = []
    hidden: set[str] = set()  # prefixes already reported as hidden folders
    for info in sorted(infos, key=lambda i: i.path.split("/")):
        obj = ObjectPath(in_dir.scheme, in_dir.netloc, in_dir.query, info.path)
        rel = obj.relative_to(in_dir)
        parts = rel.split("/")
        if skip_prefix is not None and (obj.place == skip_prefix.place or obj.within(skip_prefix)):
            if obj.place == skip_prefix.place:
                skip(str(obj), account.OUTPUT_FOLDER, "the output folder: not read as input")
            continue
        is_dir = info.type == pyarrow.fs.FileType.Directory
        if any(p in ("", ".", "..") for p in parts):  # legal in a key, but not as a path to mirror
            if not is_dir:
                fail(str(obj), "object key has an empty, '.' or '..' part: its output path cannot mirror it")
            continue
        if any(prefix in hidden for prefix in _prefixes(parts[:-1])):
            continue  # inside a hidden folder, which was reported once
        if parts[-1].startswith("."):
            if is_dir:
                hidden.add(rel)
                skip(str(obj), account.HIDDEN_FOLDER, "hidden folder: not searched")
            else:
                skip(str(obj), account.HIDDEN_FILE, "hidden file: not taken for a photo")
        elif is_dir:
            folder(str(obj))
        elif not account.skip_by_suffix(obj, skip):  # it reads only .suffix and .name, and names the object by str()
            found.append((obj, PurePosixPath(rel)))
    return found


def _prefixes(parts: list[str]) -> list[str]:
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def existing(out_dir: Path | ObjectPath) -> Callable[[Path | ObjectPath], bool]:
    """A test for "this output is there already": ``os.path.lexists`` locally; for object storage one listing
    of the output prefix, rather than a request per file."""
    if not is_object(out_dir):
        return os.path.lexists
    import pyarrow.fs

    try:
        infos = out_dir.filesystem.get_file_info(pyarrow.fs.FileSelector(out_dir.path, recursive=True,
                                                                         allow_not_found=True))
    except OSError as exc:
        raise OutputError(f"cannot list the output folder {out_dir}: {reason_of(exc, whole=True)}") from None
    there = {info.path for info in infos if info.type == pyarrow.fs.FileType.File}
    return lambda path: path.path in there


# ---------------------------------------------------------------------------------------------- files


def read_input(path: Path | ObjectPath, name: str, limits: ImageLimits) -> bytes:
    """The whole file, refusing one over the size limit before reading it."""
    try:
        if is_object(path):
            with path.filesystem.open_input_file(path.path) as file:
                _check_size(file.size(), name, limits)
                return file.read()
        with open(path, "rb") as file:
            _check_size(os.fstat(file.fileno()).st_size, name, limits)
            return file.read(limits.max_file_bytes + 1)
    except FileNotFoundError:
        raise InvalidImageError(f"{name}: file does not exist (removed while the batch ran?)") from None
    except PermissionError:
        raise InvalidImageError(f"{name}: permission denied (file is not readable)") from None
    except OSError as exc:
        if is_object(path) and "ACCESS_DENIED" in str(exc):  # pyarrow's S3 errors carry no errno
            raise InvalidImageError(f"{name}: permission denied (file is not readable)") from None
        reason = reason_of(exc, whole=is_object(path))
        raise InvalidImageError(f"{name}: cannot read file ({reason})") from exc


def _check_size(size: int, name: str, limits: ImageLimits) -> None:
    if size > limits.max_file_bytes:
        raise InvalidImageError(f"{name}: file is {size:,} bytes, larger than the limit of "
                                f"{limits.max_file_bytes:,} bytes")


def write_output(path: Path | ObjectPath, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the new one, never a part; :class:`OutputError`
    names the path. For object storage an error of the store itself (access denied, no such bucket) is raised
    as a permission error, so the run stops at the first one, as for a read-only folder."""
    if not is_object(path):
        write_atomic(path, data)
        return
    try:
        with path.filesystem.open_output_stream(path.path) as stream:
            stream.write(data)
    except OSError as exc:
        reason = reason_of(exc, whole=True)
        cause = OSError(errno.EACCES, reason) if _store_refuses(reason) else exc
        raise OutputError(f"cannot write {path}: {reason}") from cause


def read_text(path: Path | ObjectPath) -> str:
    """A small text file's content; FileNotFoundError when there is none."""
    if not is_object(path):
        return path.read_text()
    with path.filesystem.open_input_stream(path.path) as stream:
        return stream.read().decode()


def remove(path: Path | ObjectPath) -> None:
    """Delete a file if it is there (the journal of a run that finished or starts over)."""
    if not is_object(path):
        path.unlink(missing_ok=True)
        return
    import pyarrow.fs

    filesystem = path.filesystem
    info = filesystem.get_file_info(path.path)
    if info.type == pyarrow.fs.FileType.File:
        filesystem.delete_file(path.path)
    elif info.type == pyarrow.fs.FileType.Directory:  # an object journal: a prefix of one object per entry
        filesystem.delete_dir(path.path)


# ---------------------------------------------------------------------------------------------- the journal


class ObjectJournal:
    """The outputs an ``--overwrite`` run has replaced, in object storage: an object cannot be appended to, so
    each entry is its own small object under the journal's prefix, named by the key's hash."""

    def __init__(self, path: ObjectPath):
        self.path = path

    def add(self, key: str) -> None:
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        write_output(self.path / name, (json.dumps(key) + "\n").encode())


def read_object_journal(path: ObjectPath) -> set[str]:
    import pyarrow.fs

    filesystem = path.filesystem
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(path.path, allow_not_found=True))
    keys = set()
    for info in infos:
        if info.type != pyarrow.fs.FileType.File:
            continue
        try:
            with filesystem.open_input_stream(info.path) as stream:
                key = json.loads(stream.read())
        except (OSError, ValueError):
            continue
        if isinstance(key, str):
            keys.add(key)
    return keys


def _store_refuses(reason: str) -> bool:
    return any(words in reason for words in ("ACCESS_DENIED", "NO_SUCH_BUCKET", "Forbidden", "AccessDenied",
                                             "PERMISSION_DENIED"))
