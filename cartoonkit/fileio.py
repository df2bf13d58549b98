"""Writing files so that a crash, a kill or a full disk never leaves half a file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import OutputError


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file beside ``path``, fsync it, then rename it into place.

    Readers see either the old file or the complete new one. On any failure the temporary file is
    removed and :class:`OutputError` names the destination and the reason.
    """
    dest = Path(path)
    tmp_name = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
        tmp_name = None
    except OSError as exc:
        raise OutputError(f"{dest}: cannot write ({exc.strerror or exc})") from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
