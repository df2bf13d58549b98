"""What a folder run leaves in ``OUT_DIR`` to be resumed: the settings fingerprint, the journal, the lock.

* ``OUT_DIR/.cartoonkit-batch.json`` records the settings. A later run with other settings into the same
  folder is refused (``--overwrite`` starts over). The fingerprint is made from the declarations of every
  settings object of the run (each setting that changes an output's bytes), with the engine's options as they
  really run (precision and padding bucket resolved), so it cannot forget a setting or disagree with what ran.
* An interrupted ``overwrite`` run keeps a journal of the outputs it already replaced, so ``resume``
  replaces exactly the rest.
* One run at a time per ``OUT_DIR`` (an advisory lock that goes with the process, even on ``kill -9``; not on
  object storage, which has none).

In object storage (:mod:`.storage`) these are objects in the output prefix; the journal is a prefix of one
object per entry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputError, reason_of
from ..settings import fingerprint_values
from . import storage
from .storage import ObjectPath

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one batch per folder is then up to the user
    fcntl = None

log = logging.getLogger(__name__)

STATE_FILE = ".cartoonkit-batch.json"
JOURNAL_FILE = ".cartoonkit-batch.journal"
LOCK_FILE = ".cartoonkit-batch.lock"


def fingerprint(model_card, head_card, *settings_objects) -> dict[str, Any]:
    """Everything that decides an output's bytes: a resumed run must have the same.

    Every declared setting of ``settings_objects`` (the :class:`~cartoonkit.config.CartoonConfig`, the
    :class:`~cartoonkit.options.EngineOptions` as the engine runs them, resolved, and the
    :class:`~cartoonkit.run_options.FolderOptions`) that its declaration keeps in the fingerprint
    (:func:`~cartoonkit.settings.fingerprint_values`), plus the model's name and weights, and the head model's
    name when compound mode uses another model for faces (``head_card``)."""
    values: dict[str, Any] = {}
    for settings in settings_objects:
        values.update(fingerprint_values(settings))
    compound = values.get("mode") == "compound"
    return {**values, "model": model_card.name, "model_sha256": model_card.weights_sha256,
            "head_model": head_card.name if compound and head_card is not None else None}


def decide_mode(out_dir: Path, settings: dict, resume: bool, overwrite: bool) -> tuple[str, set[str], str, bool]:
    """``keep`` (skip existing outputs), ``overwrite`` (replace all) or ``journal`` (finish an interrupted
    overwrite run: skip only what it already replaced); plus those outputs' keys, the run id and whether this
    resumes a recorded run."""
    state = read_state(out_dir)
    differences = _differences(state.get("settings", {}), settings) if state else []
    interrupted_overwrite = bool(state and state.get("overwrite") and not state.get("complete"))
    if differences and (resume or not overwrite):
        hint = "--resume needs the same settings" if resume else "use --overwrite to replace its outputs"
        raise ConfigError(f"{out_dir} holds a batch made with other settings ({'; '.join(differences)}): {hint}, "
                          "or choose another -o folder")
    if resume and state is not None:
        run_id = state.get("run_id") or uuid.uuid4().hex
        if interrupted_overwrite:
            return "journal", read_journal(out_dir / JOURNAL_FILE), run_id, True
        return "keep", set(), run_id, True
    if resume:
        log.info("%s: no batch to resume there; starting one", out_dir)
    if overwrite:
        return "overwrite", set(), uuid.uuid4().hex, False
    if interrupted_overwrite:
        raise ConfigError(f"{out_dir} holds an interrupted --overwrite batch: add --resume to finish it, "
                          "or --overwrite to start it again")
    return "keep", set(), uuid.uuid4().hex, False


def _differences(old: dict, new: dict) -> list[str]:
    # Only keys both know: a state written before a setting existed resumes as long as the rest agrees.
    return [f"{key} {new[key]!r}, was {old[key]!r}" for key in new if key in old and old[key] != new[key]]


def read_state(out_dir: Path | ObjectPath) -> dict | None:
    path = out_dir / STATE_FILE
    try:
        state = json.loads(storage.read_text(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: unreadable batch state ({exc}); delete it to start the batch over") from exc
    if not isinstance(state, dict):
        raise OutputError(f"{path}: not a cartoonkit batch state; delete it to start the batch over")
    return state


def write_json(path: Path | ObjectPath, data: dict) -> None:
    storage.write_output(path, (json.dumps(data, indent=2) + "\n").encode())


class Journal:
    """Append-only list of the outputs an ``--overwrite`` run has replaced (one JSON string a line)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {reason_of(exc)}") from exc

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path | ObjectPath | None) -> Iterator[Journal | storage.ObjectJournal | None]:
        if storage.is_object(path):
            yield storage.ObjectJournal(path)
            return
        journal = cls(path) if path is not None else None
        try:
            yield journal
        finally:
            if journal is not None:
                os.close(journal.fd)

    def add(self, key: str) -> None:
        try:
            os.write(self.fd, (json.dumps(key) + "\n").encode())  # one write: whole lines even from many processes
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {reason_of(exc)}") from exc


def read_journal(path: Path | ObjectPath) -> set[str]:
    if storage.is_object(path):
        return storage.read_object_journal(path)
    keys = set()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return keys
    for line in lines:
        with contextlib.suppress(ValueError):  # a line cut by a kill
            key = json.loads(line)
            if isinstance(key, str):
                keys.add(key)
    return keys


@contextlib.contextmanager
def locked(out_dir: Path | ObjectPath) -> Iterator[None]:
    """One batch at a time per output folder; the lock goes with the process, even on ``kill -9``. Object
    storage has no such lock: there one run at a time per output prefix is up to the user."""
    if storage.is_object(out_dir):
        yield
        return
    path = out_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {out_dir}: {reason_of(exc)}") from exc
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputError(f"{out_dir}: another cartoonkit batch is writing to this folder; wait for it "
                                  "to finish or choose another -o folder") from None
        yield
    finally:
        os.close(fd)
