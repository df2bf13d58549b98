"""Which inputs there are and where each output goes: the planner of ``cartoonkit batch`` and ``cartoonkit run``.

Safety, whatever the folders hold: an output is ``OUT_DIR/<path relative to the input>`` with the format's
extension; one that would land outside ``OUT_DIR`` (through a symbolic link inside it), on an input, or on
the output of another input (``a.jpg`` and ``a.png``) is refused for that file. Symbolic links to folders are
never followed (no loops, nothing outside ``IN_DIR``); links to files outside ``IN_DIR`` are skipped; hidden
files and folders are skipped; an ``OUT_DIR`` inside ``IN_DIR`` is not input.

Nothing is left out silently: every entry the planner meets goes to ``fail``, to ``skip`` with its kind (the
kinds are in :mod:`.account`), to the inputs found, or (a folder it searches) to ``folder``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import reason_of
from ..formats import READ_FORMAT_NAMES, extension_for
from . import account
from .account import skip_by_suffix
from .storage import ObjectPath, is_object

log = logging.getLogger(__name__)

Fail = Callable[[str, str], None]
"""Where a planner reports a file it cannot take: ``fail(name, reason)``."""
Skip = Callable[[str, str, str], None]
"""Where a planner reports an entry it leaves alone: ``skip(name, kind, reason)``, a kind of :mod:`.account`."""
Found = list[tuple[Path | ObjectPath, PurePosixPath]]
"""Inputs with the path their output takes under ``OUT_DIR`` (before the extension changes)."""

# write_atomic's temporary files: "." + name + "." + mkstemp's 8 random characters + ".tmp"
TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


@dataclass(frozen=True)
class Task:
    """One input and where its output goes."""

    src: Path | ObjectPath  # the input, as found
    dst: Path | ObjectPath  # its output under OUT_DIR
    key: str   # the output's path relative to OUT_DIR, POSIX style (the journal's key)

    @property
    def name(self) -> str:
        return str(self.src)


def scan_tree(in_dir: Path, skip_dirs: set[str], fail: Fail, skip: Skip,
              folder: Callable[[str], None] = lambda name: None) -> Found:
    """Image files under ``in_dir`` (recursively) with their relative paths, sorted; never follows folder links.
    Every other entry goes to ``skip`` or ``fail``, and each folder searched to ``folder``."""
    real_in = os.path.realpath(in_dir)
    found: Found = []
    stack: list[tuple[Path, PurePosixPath]] = [(in_dir, PurePosixPath())]
    while stack:
        where, rel = stack.pop()
        try:
            with os.scandir(where) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            fail(str(where), f"cannot list this folder ({reason_of(exc)})")
            continue
        if rel.parts:
            folder(str(where))
        subfolders = []
        for entry in entries:
            path, rel_path = Path(entry.path), rel / entry.name
            try:
                if entry.name.startswith("."):  # not photos: .DS_Store, ._IMG_1.jpg, .git/, our temporary files
                    if entry.is_dir(follow_symlinks=False):
                        skip(str(path), account.HIDDEN_FOLDER, "hidden folder: not searched")
                    else:
                        skip(str(path), account.HIDDEN_FILE, "hidden file: not taken for a photo")
                elif entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    if os.path.isdir(target):
                        where_to = "inside the input folder: its files are processed under their own path" \
                            if inside(target, real_in) else f"to {target}, outside the input folder"
                        skip(str(path), account.LINK, f"symbolic link to a folder ({where_to}); not followed")
                    elif skip_by_suffix(path, skip, link=True):
                        pass
                    elif not os.path.exists(target):
                        fail(str(path), "broken symbolic link")
                    elif not inside(target, real_in):
                        skip(str(path), account.LINK, f"symbolic link to {target}, outside the input folder; "
                                                      "not followed")
                    elif os.path.isfile(target):
                        found.append((path, rel_path))
                    else:
                        skip(str(path), account.SPECIAL, f"symbolic link to {target}, which is not a regular file")
                elif entry.is_dir(follow_symlinks=False):
                    if os.path.realpath(entry.path) in skip_dirs:
                        skip(str(path), account.OUTPUT_FOLDER, "the output folder: not read as input")
                    else:
                        subfolders.append((path, rel_path))
                elif entry.is_file(follow_symlinks=False):
                    if not skip_by_suffix(path, skip):
                        found.append((path, rel_path))
                else:
                    skip(str(path), account.SPECIAL, "not a regular file (a pipe, socket or device)")
            except OSError as exc:
                fail(str(path), f"cannot access ({reason_of(exc)})")
        stack.extend(reversed(subfolders))
    return sorted(found, key=lambda item: item[1].parts)


def collect_inputs(inputs: list[str], fail: Fail, skip: Skip = lambda name, kind, reason: None) -> Found:
    """``cartoonkit run``'s inputs: files as given (their content decides); folders expand to the image files
    directly inside them, sorted by name, every other entry there going to ``skip`` (subfolders too: ``run``
    does not search them) or ``fail``. Every output goes straight into ``OUT_DIR`` under the input's own name."""
    found: Found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            try:
                entries = sorted(path.iterdir())
            except OSError as exc:
                fail(str(path), f"cannot list this folder ({reason_of(exc)})")
                continue
            files = []
            for p in entries:
                try:
                    if p.name.startswith("."):
                        kind = account.HIDDEN_FOLDER if p.is_dir() else account.HIDDEN_FILE
                        skip(str(p), kind, "hidden: not taken for a photo")
                    elif p.is_dir():
                        skip(str(p), account.SUBFOLDER, "folder: run takes the files directly inside a folder; "
                                                        "use batch for a folder tree")
                    elif p.exists() and not p.is_file():
                        skip(str(p), account.SPECIAL, "not a regular file (a pipe, socket or device)")
                    elif skip_by_suffix(p, skip, link=p.is_symlink()):
                        pass
                    elif not p.exists():
                        # A link to nothing is an input the user expects to see handled: say so rather than drop it.
                        fail(str(p), "broken symbolic link")
                    else:
                        files.append(p)
                except OSError as exc:
                    fail(str(p), f"cannot access ({reason_of(exc)})")
            if not files:
                log.warning("%s: folder has no image files (%s)", path, READ_FORMAT_NAMES)
            found.extend((p, PurePosixPath(p.name)) for p in files)
        elif path.exists():
            found.append((path, PurePosixPath(path.name)))
        elif path.is_symlink():
            fail(str(path), "broken symbolic link")
        else:
            fail(str(path), "no such file or folder")
    return found


def plan_outputs(found: Found, out_dir: Path | ObjectPath, fmt: str, fail: Fail) -> list[Task]:
    """Pair each input with its output; refuse escapes, overwriting an input and collisions (first wins).
    In object storage there are no links to escape through, and a path is its own identity."""
    real = (lambda p: p.place) if is_object(out_dir) else os.path.realpath
    real_out = real(out_dir)
    inputs = {real(src) for src, _ in found if is_object(src) == is_object(out_dir)}
    ext = extension_for(fmt)
    claimed: dict[str, Path | ObjectPath] = {}
    tasks = []
    for src, rel in found:
        key = rel.with_name(rel.stem + ext).as_posix()
        dst = out_dir.joinpath(*rel.parent.parts, rel.stem + ext)
        real_dst = real(dst)
        if not is_object(dst) and (real_dst == real_out or not inside(real_dst, real_out)):
            fail(str(src), f"output {dst} would be written outside {out_dir} (through a symbolic link there); "
                           "refused")
        elif real_dst in inputs:
            fail(str(src), f"output {dst} would overwrite an input; choose another -o folder")
        elif key in claimed:
            fail(str(src), f"output {dst} is already the output of {claimed[key]}; inputs need distinct names")
        else:
            claimed[key] = src
            tasks.append(Task(src=src, dst=dst, key=key))
    return tasks


def split_done(tasks: list[Task], mode: str, journal_keys: set[str] = frozenset(), resumed: bool = False,
               exists: Callable[[Path | ObjectPath], bool] = os.path.lexists,
               ) -> tuple[list[Task], list[tuple[str, str]]]:
    """``(to do, skipped with reasons)``. ``mode``: ``keep`` (an existing output is kept), ``overwrite`` (all are
    done again) or ``journal`` (finish an interrupted overwrite run: skip what its journal says it replaced).
    ``exists``: whether an output is there (:func:`.storage.existing` for object storage)."""
    todo, skipped = [], []
    for task in tasks:
        there = exists(task.dst)
        if mode == "keep" and there:
            skipped.append((task.name, "done by an earlier run" if resumed else f"{task.dst} exists (use --overwrite)"))
        elif mode == "journal" and there and task.key in journal_keys:
            skipped.append((task.name, "done by the interrupted --overwrite run"))
        else:
            todo.append(task)
    return todo, skipped


def remove_leftovers(folders: set[Path | ObjectPath]) -> None:
    """Delete the hidden temporary files a killed run left in the folders this run writes to (object storage
    has none: an upload cut short leaves no object)."""
    for folder in folders:
        if is_object(folder):
            continue
        try:
            with os.scandir(folder) as listing:
                for entry in listing:
                    if TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            continue


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
