"""Running the command line in-process and looking at what it left in an output folder."""

from __future__ import annotations

from pathlib import Path

from cartoonkit.cli import main
from cartoonkit.folder import REPORT_FILE


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``cartoonkit ARGV...`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def image_files(folder: Path) -> dict[str, bytes]:
    """Output images by relative path (the report and hidden state files left out)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".") and p.name != REPORT_FILE}


def temporary_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*.tmp")]
