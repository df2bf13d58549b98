"""Output hashes of the command line on ../shared/images: proof that a redesign changed no pixel.

    python tests/output_hashes.py record benchmarks/output-hashes-<machine>.json   # before the change
    python tests/output_hashes.py check  benchmarks/output-hashes-<machine>.json   # after it

Runs ``cartoonkit run`` and ``cartoonkit batch``, in full and in compound mode, on every photo of
``../shared/images``, and ``cartoonkit video`` on the shared clip, in fresh processes (the way a user runs
them) and records the sha256 of every output. The hashes depend on the CPU's kernels (bfloat16 on AVX-512
BF16 vs AMX), so a file is only comparable on the machine kind it names; that is why this is a script and
not a test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
CLIP = ROOT.parent / "shared" / "videos" / "dct_input.mp4"

# name -> (subcommand, extra flags); video runs write one file, OUT/clip.mp4
RUNS = {
    "run-full": ("run", []),
    "batch-full": ("batch", []),
    "run-compound": ("run", ["--mode", "compound"]),
    "batch-compound": ("batch", ["--mode", "compound"]),
    "run-float32-jpg-options": ("run", ["--precision", "float32", "--format", "jpg", "--resolution", "512",
                                        "--upscale", "1.2", "--denoise", "3", "--beautify", "0.5"]),
    "batch-run-options": ("batch", ["--precision", "float32", "--format", "jpg", "--resolution", "512",
                                    "--batch-size", "3", "--io-threads", "1"]),
    "video-smoothed": ("video", ["--resolution", "384", "--end", "2"]),
    "video-options": ("video", ["--resolution", "256", "--temporal", "0.5", "--crf", "23", "--start", "1",
                                "--end", "3", "--no-audio", "--batch-size", "2"]),
}


def without_srgb_tag(data: bytes) -> bytes:
    """The file without the tag that says "sRGB" (PNG's ``sRGB`` chunk, JPEG's APP2 ``ICC_PROFILE``), which
    outputs carry since issue 15: what is hashed is every other byte, so the hashes recorded before then still
    hold, and a change of pixels or of the encoding still shows. WEBP outputs are hashed whole."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        kept, position = [data[:8]], 8
        while position + 8 <= len(data):
            end = position + 12 + int.from_bytes(data[position:position + 4], "big")
            if data[position + 4:position + 8] != b"sRGB":
                kept.append(data[position:end])
            position = end
        return b"".join(kept)
    if data.startswith(b"\xff\xd8"):
        kept, position = [data[:2]], 2
        while position + 4 <= len(data) and data[position] == 0xFF and data[position + 1] != 0xDA:
            end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
            if not (data[position + 1] == 0xE2 and data[position + 4:position + 16] == b"ICC_PROFILE\x00"):
                kept.append(data[position:end])
            position = end
        return b"".join(kept) + data[position:]
    return data


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(without_srgb_tag(p.read_bytes())).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")
            and p.name != "cartoonkit-report.json"}


def measure() -> dict:
    from cartoonkit.hardware import cpu_model_name  # noqa: PLC0415 (the venv's package)

    result = {"machine": cpu_model_name(), "runs": {}}
    for name, (command, flags) in RUNS.items():
        with tempfile.TemporaryDirectory(prefix="cartoonkit-hashes-") as tmp:
            out = Path(tmp) / "out"
            source, target = [str(IMAGES)], out
            if command == "video":
                out.mkdir()
                source, target = [str(CLIP)], out / "clip.mp4"
            args = [sys.executable, "-m", "cartoonkit", "-q", command, *source, "-o", str(target), *flags]
            subprocess.run(args, check=True, cwd=ROOT)
            result["runs"][name] = _hashes(out)
            print(f"{name}: {len(result['runs'][name])} outputs", file=sys.stderr)
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    action, path = argv[0], Path(argv[1])
    measured = measure()
    if action == "record":
        path.write_text(json.dumps(measured, indent=2) + "\n")
        print(f"recorded {sum(len(v) for v in measured['runs'].values())} hashes in {path}")
        return 0
    recorded = json.loads(path.read_text())
    if recorded["machine"] != measured["machine"]:
        print(f"warning: recorded on {recorded['machine']}, checking on {measured['machine']}", file=sys.stderr)
    differing = [f"{run}/{file}" for run, files in recorded["runs"].items() for file, digest in files.items()
                 if measured["runs"].get(run, {}).get(file) != digest]
    missing = [run for run in recorded["runs"] if run not in measured["runs"]]
    total = sum(len(v) for v in recorded["runs"].values())
    if differing or missing:
        print(f"{len(differing)} of {total} outputs differ: {', '.join(differing + missing)}")
        return 1
    print(f"all {total} outputs byte-identical to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
