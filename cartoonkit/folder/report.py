"""What a folder run did: :class:`FolderReport` (counts, every entry of the input with what happened to it and
why, by reason and by extension, seconds per stage, the JSON the run writes) and the sink the stream's threads
report into."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .account import FOLDER_KINDS, KEPT, Account
from .plan import Task
from .reasons import failure_kind
from .storage import ObjectPath

REPORT_FILE = "cartoonkit-report.json"
STAGES = ("read", "decode", "preprocess", "network", "faces", "postprocess", "encode", "write")
"""Stages timed in the report: busy seconds summed over threads and processes (``faces``: compound mode's
detection, alignment, head network and paste-back)."""


@dataclass
class FolderReport:
    """What a folder run did: counts, every skipped and failed file with its reason, time per stage."""

    in_dir: Path | ObjectPath
    out_dir: Path | ObjectPath
    settings: dict[str, Any]
    devices: list[str]
    backend: str = "local"       # what ran the files: "local" (this process) or "ray" (actors)
    workers: int = 1
    batch_size: int = 1
    found: int = 0
    done: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    not_processed: int = 0
    stopped: str | None = None   # why the run stopped before the end (output folder full, ...)
    interrupted: bool = False    # Ctrl-C
    resumed: bool = False
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    setup_seconds: float = 0.0   # scanning, planning, loading the model
    wall_seconds: float = 0.0
    batches: Counter = field(default_factory=Counter)  # batch size -> how many engine calls
    gpu: Counter = field(default_factory=Counter)      # images decoded / encoded with nvJPEG
    started: str = ""
    finished: str = ""
    report_path: Path | None = None
    account: Account = field(default_factory=Account)  # every entry under in_dir, counted once
    done_files: list[tuple[str, str]] = field(default_factory=list)  # (input, output)
    not_processed_files: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)  # the folders searched (IN_DIR's own subfolders)
    skip_kinds: list[str] = field(default_factory=list)  # the kind of each entry of ``skipped``, in order

    @property
    def images_per_second(self) -> float:
        return self.done / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Every file was done, skipped or failed: nothing is left for ``--resume``."""
        return self.stopped is None and not self.interrupted and self.not_processed == 0

    def summary(self) -> str:
        rest = f", {self.not_processed} not processed" if self.not_processed else ""
        return (f"{self.done} done, {len(self.skipped)} skipped, {len(self.failed)} failed{rest} "
                f"in {self.wall_seconds:.1f} s ({self.images_per_second:.1f} img/s) -> {self.out_dir}")

    def skip(self, name: str, kind: str, reason: str) -> None:
        """An entry left alone (not an image, hidden, a link not followed, an output that exists, ...)."""
        self.skipped.append((name, reason))
        self.skip_kinds.append(kind)
        self.account.add("kept" if kind == KEPT else "skipped", kind, name, folder=kind in FOLDER_KINDS)

    def searched(self, name: str) -> None:
        self.folders.append(name)
        self.account.add("folder", "searched", name, folder=True)

    def account_lines(self) -> list[str]:
        return self.account.lines(str(self.in_dir))

    def merge(self, seconds: dict[str, float], batches: Counter, gpu: Counter) -> None:
        """Add one stream's (or worker's) stage seconds, batch sizes and GPU codec counts."""
        for stage, value in seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + value
        self.batches.update(batches)
        self.gpu.update(gpu)

    def to_json(self) -> dict[str, Any]:
        return {
            "cartoonkit": __version__,
            "input": str(self.in_dir),
            "output": str(self.out_dir),
            "settings": self.settings,
            "backend": self.backend,
            "devices": self.devices,
            "workers": self.workers,
            "batch_size": self.batch_size,
            "resumed": self.resumed,
            "counts": {"found": self.found, "done": self.done, "skipped": len(self.skipped),
                       "failed": len(self.failed), "not_processed": self.not_processed},
            "complete": self.complete,
            "stopped": self.stopped,
            "interrupted": self.interrupted,
            "account": self.account.to_json(),
            "done": [{"file": f, "output": o} for f, o in self.done_files],
            "failed": [{"file": f, "reason": r, "kind": failure_kind(r)} for f, r in self.failed],
            "skipped": [{"file": f, "reason": r, "kind": k} for (f, r), k in zip(self.skipped, self.skip_kinds,
                                                                              strict=True)],
            "not_processed": self.not_processed_files,
            "folders": self.folders,
            "notes": [{"file": f, "note": n} for f, n in self.notes],
            "seconds": {**{k: round(v, 4) for k, v in self.seconds.items()},
                        "setup": round(self.setup_seconds, 4), "wall": round(self.wall_seconds, 4)},
            "seconds_note": "stage seconds are busy time summed over threads and processes; the stages "
                            "overlap, so together they can exceed the wall time",
            "images_per_second": round(self.images_per_second, 3),
            "batches": {str(k): v for k, v in sorted(self.batches.items())},
            "gpu": {"decoded": self.gpu["decoded"], "encoded": self.gpu["encoded"]},
            "started": self.started,
            "finished": self.finished,
        }


class ReportSink:
    """The stream's events -> the report, the progress bar and the error lines (thread-safe).

    The stream reports ``done``, ``failed``, ``note`` per file and ``fatal`` once when the output folder takes
    no more files; worker processes send the same events over a queue (:mod:`.workers`)."""

    def __init__(self, report: FolderReport, bar, echo: Callable[[str], None]):
        self.report, self.bar, self.echo = report, bar, echo
        self.lock = threading.Lock()
        self.processed = 0  # files of this run that were done or failed
        self.processed_keys: set[str] = set()

    def done(self, task: Task) -> None:
        with self.lock:
            self.report.done += 1
            self.report.done_files.append((task.name, str(task.dst)))
            self.report.account.add("done", "done", task.name)
            self.processed += 1
            self.processed_keys.add(task.key)
            self.bar.update(1)

    def failed(self, task: Task, reason: str) -> None:
        with self.lock:
            record_failure(self.report, self.echo, task.name, reason)
            self.processed += 1
            self.processed_keys.add(task.key)
            self.bar.update(1)

    def note(self, task: Task, note: str) -> None:
        with self.lock:
            self.report.notes.append((task.name, note))

    def fatal(self, reason: str) -> None:
        with self.lock:
            if self.report.stopped is None:
                self.report.stopped = reason


def record_failure(report, echo: Callable[[str], None], name: str, reason: str) -> None:
    """A file that cannot be done: into the report, and one line for the user as it happens."""
    report.failed.append((name, reason))
    report.account.add("failed", failure_kind(reason), name, folder=reason.startswith("cannot list this folder"))
    echo(f"error: {name}: {reason}")
