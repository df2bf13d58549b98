"""Every entry of a folder accounted for: ``batch`` and ``run`` on a folder mixing photos in every format read,
unsupported images, files that are not images, hidden files and folders, links and a pipe; the report's counts
must add up to the entries the folder holds, each named once with its status."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli
from image_builders import encode, mpo, pattern
from PIL import Image

from cartoonkit import CartoonConfig
from cartoonkit.folder import REPORT_FILE, run_folder

CONFIG = CartoonConfig(resolution=256)


def walk_entries(root: Path) -> set[str]:
    """Every name under ``root`` the way ``find`` lists it, not going into hidden folders or through links:
    an independent count of what the report must account for."""
    names = set()
    for folder, dirs, files in os.walk(root):  # followlinks=False: a link to a folder is listed, not entered
        names.update(os.path.join(folder, name) for name in dirs + files)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return names


@pytest.fixture
def mixed(tmp_path) -> tuple[Path, Path]:
    """in/ holding 20 entries, and an outside folder its links point to."""
    root, outside = tmp_path / "in", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    outside.mkdir()
    photo = Image.fromarray(pattern(24, 32, seed=1))
    (root / "a.jpg").write_bytes(encode(photo, "JPEG", quality=90))
    (root / "b.heic").write_bytes(encode(photo, "HEIF", quality=90))
    (root / "c.avif").write_bytes(encode(photo, "AVIF", quality=90))
    (root / "d.mpo").write_bytes(mpo([pattern(24, 32, seed=2), pattern(24, 32, seed=3)]))
    (root / "e.psd").write_bytes(b"8BPS" + bytes(40))
    (root / "f.ico").write_bytes(encode(photo.resize((16, 16)), "ICO"))
    (root / "notes.txt").write_text("a text file\n")
    (root / "README").write_text("no extension\n")
    (root / ".DS_Store").write_bytes(bytes(16))
    (root / "._a.jpg").write_bytes(bytes(16))  # macOS resource fork: an image name, not an image
    for i in range(3):
        (root / ".git" / f"object{i}").write_bytes(b"x")
    (root / "sub" / "g.png").write_bytes(encode(photo, "PNG"))
    (root / "sub" / "h.tga").write_bytes(encode(photo, "TGA"))
    (root / "sub" / "broken.jpg").write_text("not a JPEG at all\n")
    (outside / "secret.jpg").write_bytes(encode(photo, "JPEG"))
    (root / "link_in.jpg").symlink_to(root / "sub" / "g.png")
    (root / "link_out.jpg").symlink_to(outside / "secret.jpg")
    (root / "link_dir").symlink_to(outside)
    (root / "dangling.png").symlink_to(tmp_path / "gone.png")
    os.mkfifo(root / "fifo")
    return root, outside


EXPECTED = {  # batch: entry -> (status, kind)
    "a.jpg": ("kept", "output exists"), "b.heic": ("done", None), "c.avif": ("done", None),
    "d.mpo": ("done", None), "sub/g.png": ("done", None), "link_in.jpg": ("done", None),
    "e.psd": ("skipped", "unsupported image type"), "f.ico": ("skipped", "unsupported image type"),
    "sub/h.tga": ("skipped", "unsupported image type"), "notes.txt": ("skipped", "not an image"),
    "README": ("skipped", "not an image"), ".DS_Store": ("skipped", "hidden file"),
    "._a.jpg": ("skipped", "hidden file"), ".git": ("skipped", "hidden folder, not searched"),
    "link_out.jpg": ("skipped", "link not followed"), "link_dir": ("skipped", "link not followed"),
    "fifo": ("skipped", "not a regular file"), "sub/broken.jpg": ("failed", "not an image (by content)"),
    "dangling.png": ("failed", "broken link"), "sub": ("folder", None),
}


def test_batch_accounts_for_every_entry(cartoonizer, mixed, tmp_path):
    root, _ = mixed
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"an earlier output")  # kept, not redone
    entries = walk_entries(root)
    assert len(entries) == len(EXPECTED) == 20

    report = run_folder(root, out, CONFIG, cartoonizer=cartoonizer, progress=False, echo=lambda line: None)
    saved = json.loads((out / REPORT_FILE).read_text())

    listed = [(e["file"], "done", None) for e in saved["done"]]
    listed += [(e["file"], "kept" if e["kind"] == "output exists" else "skipped", e["kind"])
               for e in saved["skipped"]]
    listed += [(e["file"], "failed", e["kind"]) for e in saved["failed"]]
    listed += [(name, "not processed", None) for name in saved["not_processed"]]
    listed += [(name, "folder", None) for name in saved["folders"]]
    names = [name for name, _, _ in listed]
    assert len(names) == len(set(names)) and set(names) == entries  # each entry once, none missing
    assert {os.path.relpath(name, root): (status, kind) for name, status, kind in listed} == EXPECTED

    account = saved["account"]
    assert account["entries"] == 20 == sum(account["by_status"].values())
    assert account["by_status"] == {"done": 5, "kept": 1, "skipped": 11, "failed": 2, "not processed": 0,
                                    "folder": 1}
    assert account["by_reason"]["skipped"] == {"unsupported image type": 3, "not an image": 2, "hidden file": 2,
                                               "link not followed": 2, "hidden folder, not searched": 1,
                                               "not a regular file": 1}
    assert account["by_reason"]["failed"] == {"not an image (by content)": 1, "broken link": 1}
    by_extension = account["by_extension"]
    assert sum(sum(counts.values()) for counts in by_extension.values()) == 20
    assert by_extension[".jpg"] == {"done": 1, "kept": 1, "skipped": 2, "failed": 1}  # link_in, a, ._a + link_out
    assert by_extension[".heic"] == {"done": 1} and by_extension[".avif"] == {"done": 1}
    assert by_extension["(none)"] == {"skipped": 4}  # README, .DS_Store, fifo, link_dir (a link, not a folder)
    assert by_extension["(folder)"] == {"skipped": 1, "folder": 1}  # .git (hidden), sub (searched)
    assert by_extension[".mpo"] == {"done": 1}
    # the report object says the same as its JSON, and the old counts still hold
    assert report.account.entries == 20 and report.done == 5 and len(report.failed) == 2
    assert saved["counts"] == {"found": 7, "done": 5, "skipped": 12, "failed": 2, "not_processed": 0}
    for name in ("b.png", "c.png", "d.png", "sub/g.png", "link_in.png"):
        with Image.open(out / name) as im:
            assert max(im.size) == 256
    assert (out / "a.png").read_bytes() == b"an earlier output"


def test_batch_prints_the_account(capsys, models_dir, mixed, tmp_path):
    root, _ = mixed
    code, stdout, stderr = run_cli(capsys, "batch", root, "-o", tmp_path / "out", "--device", "cpu",
                                   "--resolution", "256")
    assert code == 1  # two failures
    lines = stdout.splitlines()
    account = next(line for line in lines if " entries in " in line)
    assert account.startswith(f"20 entries in {root}: 6 done; 11 skipped (3 unsupported image type, ")
    assert "2 failed (1 broken link, 1 not an image (by content))" in account and "1 folder searched" in account
    by_extension = next(line for line in lines if line.startswith("by extension: "))
    assert ".jpg 5" in by_extension and "(none) 4" in by_extension
    skipped_lines = [line for line in stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped_lines) == 11 and any("notes.txt: .txt is not an image extension" in line
                                            for line in skipped_lines)
    assert any("e.psd: .psd: Photoshop document" in line for line in skipped_lines)


def test_a_clip_among_photos_is_pointed_to_the_video_command(cartoonizer, tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    (root / "IMG_0001.HEIC").write_bytes(encode(Image.fromarray(pattern(24, 32)), "HEIF", quality=80))
    (root / "IMG_0001.MOV").write_bytes(b"\x00\x00\x00\x14ftypqt  ")  # a Live Photo's clip
    report = run_folder(root, tmp_path / "out", CONFIG, cartoonizer=cartoonizer, progress=False,
                        echo=lambda line: None)
    assert report.done == 1 and report.account.entries == 2
    assert report.skipped == [(str(root / "IMG_0001.MOV"), ".mov is a video: `cartoonkit video` cartoonizes clips")]


def test_run_accounts_for_what_it_is_given(capsys, models_dir, mixed, tmp_path):
    root, outside = mixed
    extra = outside / "given.PNG"  # a file given directly: taken whatever its name, its content decides
    extra.write_bytes(encode(Image.fromarray(pattern(20, 20)), "PNG"))
    missing = tmp_path / "missing.jpg"
    code, stdout, stderr = run_cli(capsys, "run", root, extra, missing, "-o", tmp_path / "out", "--device", "cpu",
                                   "--resolution", "256")
    assert code == 1
    account = next(line for line in stdout.splitlines() if " entries in " in line)
    # 17 entries directly inside in/ (not sub's three), the given file and the missing one. run follows links
    # to files (link_out.jpg is done) and does not search folders (sub, and link_dir, a link to one).
    assert account == ("19 entries in the inputs given: 7 done; 10 skipped (2 folder, not searched by run, "
                       "2 hidden file, 2 not an image, 2 unsupported image type, 1 hidden folder, not searched, "
                       "1 not a regular file); 2 failed (1 broken link, 1 no such file or folder)")
    assert "no such file or folder" in stderr
    assert (tmp_path / "out" / "given.png").is_file() and (tmp_path / "out" / "link_out.png").is_file()


def test_hidden_and_unsupported_files_given_directly(capsys, models_dir, tmp_path):
    """``run`` decodes what it is given: an icon is refused by its content, naming what it is."""
    icon = tmp_path / "logo.png"  # an ICO named .png: the content decides
    icon.write_bytes(encode(Image.fromarray(np.zeros((16, 16, 3), np.uint8)), "ICO"))
    code, stdout, stderr = run_cli(capsys, "run", icon, "-o", tmp_path / "out", "--device", "cpu")
    assert code == 1
    assert f"error: {icon}: icon (ICO), not a photo format cartoonkit reads" in stderr
    assert "1 entry in the inputs given: 1 failed (1 unsupported image type (by content))" in stdout
