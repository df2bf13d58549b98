"""Every entry of the input accounted for: each one counted once, by status, by reason and by extension.

A folder run's entries are the names under ``IN_DIR``, folders included, except inside the folders it does not
search (hidden folders, links to folders, an ``OUT_DIR`` inside ``IN_DIR``), which are one entry each. Each
entry ends in one status: ``done``, ``kept`` (its output was there already), ``skipped`` (with a kind: not an
image, unsupported image type, hidden, link not followed, ...), ``failed`` (with the kind of problem),
``not processed`` (the run stopped first) or ``folder`` (searched). The counts add up to the entries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..formats import VIDEO_SUFFIXES, suffix_kind

STATUSES = ("done", "kept", "skipped", "failed", "not processed", "folder")

# Kinds of skipped entries (the planner's words; the report groups by them).
NOT_IMAGE = "not an image"
UNSUPPORTED = "unsupported image type"
HIDDEN_FILE = "hidden file"
HIDDEN_FOLDER = "hidden folder, not searched"
LINK = "link not followed"
OUTPUT_FOLDER = "the output folder, not searched"
SPECIAL = "not a regular file"
SUBFOLDER = "folder, not searched by run"
KEPT = "output exists"
FOLDER_KINDS = frozenset({HIDDEN_FOLDER, OUTPUT_FOLDER, SUBFOLDER})
"""Skipped kinds that are folders (counted under ``(folder)`` by extension)."""


def extension(name: str, folder: bool = False) -> str:
    """``.jpg`` (lower case) for a file, ``(none)`` without one, ``(folder)`` for a folder."""
    if folder:
        return "(folder)"
    base = name.rstrip("/").rpartition("/")[2]  # PurePath(name).suffix without making a path (once per file)
    dot = base.rfind(".")
    return base[dot:].lower() if 0 < dot < len(base) - 1 else "(none)"


def not_image_reason(name: str) -> str:
    suffix = extension(name)
    if suffix == "(none)":
        return "no extension: not taken for an image"
    if suffix in VIDEO_SUFFIXES:
        return f"{suffix} is a video: `cartoonkit video` cartoonizes clips"
    return f"{suffix} is not an image extension cartoonkit reads"


def skip_by_suffix(path, skip: Callable[[str, str, str], None], link: bool = False) -> bool:
    """Skip a file whose suffix is not one cartoonkit reads (saying what it is); True when skipped.

    ``path``: a local path or an object (anything with ``.suffix`` and ``.name``, named by ``str()``);
    ``skip``: the planner's ``skip(name, kind, reason)``."""
    kind, why = suffix_kind(path.suffix)
    if kind == "image":
        return False
    what = "symbolic link to a file: " if link else ""
    if kind == "unsupported":
        skip(str(path), UNSUPPORTED, f"{what}{path.suffix.lower()}: {why}")
    else:
        skip(str(path), NOT_IMAGE, what + not_image_reason(path.name))
    return True


class Account:
    """The tally of one run's entries; :meth:`add` is called exactly once per entry."""

    def __init__(self) -> None:
        self.tally: Counter = Counter()  # (status, kind, extension) -> entries

    def add(self, status: str, kind: str, name: str, folder: bool = False) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.tally[status, kind, extension(name, folder)] += 1

    @property
    def entries(self) -> int:
        return sum(self.tally.values())

    def count(self, status: str) -> int:
        return sum(n for (s, _, _), n in self.tally.items() if s == status)

    def by_status(self) -> dict[str, int]:
        return {status: self.count(status) for status in STATUSES}

    def by_reason(self) -> dict[str, dict[str, int]]:
        """``{"skipped": {"not an image": 3, ...}, "failed": {"truncated or corrupt": 1}}``, largest first."""
        grouped: dict[str, Counter] = {"skipped": Counter(), "failed": Counter()}
        for (status, kind, _), n in self.tally.items():
            if status in grouped:
                grouped[status][kind] += n
        return {status: dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))
                for status, counter in grouped.items()}

    def by_extension(self) -> dict[str, dict[str, int]]:
        """``{".jpg": {"done": 5, "failed": 1}, ".txt": {"skipped": 2}, ...}``, most entries first."""
        table: dict[str, Counter] = {}
        for (status, _, ext), n in self.tally.items():
            table.setdefault(ext, Counter())[status] += n
        order = sorted(table, key=lambda ext: (-sum(table[ext].values()), ext))
        return {ext: {s: table[ext][s] for s in STATUSES if table[ext][s]} for ext in order}

    def to_json(self) -> dict:
        return {"entries": self.entries, "by_status": self.by_status(), "by_reason": self.by_reason(),
                "by_extension": self.by_extension()}

    def lines(self, where: str) -> list[str]:
        """Two lines for the terminal: the entries by status (with reasons), then by extension."""
        status = self.by_status()
        reasons = self.by_reason()
        parts = []
        for name in STATUSES:
            if not status[name]:
                continue
            label = {"folder": "folders searched" if status[name] > 1 else "folder searched"}.get(name, name)
            detail = reasons.get(name)
            inner = f" ({', '.join(f'{n} {kind}' for kind, n in detail.items())})" if detail else ""
            parts.append(f"{status[name]} {label}{inner}")
        noun = "entry" if self.entries == 1 else "entries"
        first = f"{self.entries} {noun} in {where}: " + ("; ".join(parts) if parts else "none")
        extensions = ", ".join(f"{ext} {sum(counts.values())}" for ext, counts in self.by_extension().items())
        return [first, f"by extension: {extensions or 'none'}"]
