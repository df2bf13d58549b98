"""``cartoonkit batch`` with object storage: ``s3://`` inputs and outputs through ``pyarrow.fs``, against a real
S3 endpoint on this machine (moto's server, the ``s3_store`` fixture). The reference for every output is the
same folder run on local folders: the bytes, the report's failures and accounts must be the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import image_files, run_cli

from cartoonkit.folder import JOURNAL_FILE, REPORT_FILE, STATE_FILE
from cartoonkit.folder.storage import ObjectJournal, ObjectPath, location

pytestmark = pytest.mark.slow

FLAGS = ["--device", "cpu", "--resolution", "256"]
_buckets = iter(range(1000))


def fresh_bucket(s3_store) -> str:
    return s3_store.bucket(f"photos-{next(_buckets)}")


def local_folder(shared_images: Path, root: Path, bad: bool = True) -> Path:
    """The photos of ../shared/images, some in a subfolder, with broken and non-photo files beside them."""
    names = sorted(p.name for p in shared_images.iterdir() if p.suffix in (".jpg", ".png"))
    for i, name in enumerate(names):
        folder = root / ("sub" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_images / name, folder / name)
    if bad:
        (root / "empty.jpg").write_bytes(b"")
        (root / "text.jpg").write_bytes(b"this is not a photo\n" * 10)
        (root / "notes.txt").write_text("skipped by the planner")
        (root / ".DS_Store").write_bytes(b"\0")
        (root / ".thumbnails").mkdir()
        (root / ".thumbnails" / "a.jpg").write_bytes((shared_images / names[0]).read_bytes())
    return root


def upload(s3_store, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            s3_store.put(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes())


def photos_in_a_bucket(s3_store, shared_images: Path, tmp_path: Path, out: str = "out") -> tuple[str, str, str]:
    """The shared photos uploaded to a new bucket's ``in/``: ``(bucket, input URL, output URL)``."""
    src = local_folder(shared_images, tmp_path / "in", bad=False)
    bucket = fresh_bucket(s3_store)
    upload(s3_store, src, f"{bucket}/in")
    return bucket, s3_store.url(f"{bucket}/in"), s3_store.url(f"{bucket}/{out}")


def outputs(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not k.rsplit("/", 1)[-1].startswith(".") and k != REPORT_FILE}


def relative(report: dict, root: str) -> dict:
    """The report's per-file lists with names relative to the input, so a local and an s3 run compare."""
    def rel(name: str) -> str:
        return name[len(root) + 1:] if name.startswith(root + "/") else name
    failed = sorted((rel(f["file"]), f["reason"], f["kind"]) for f in report["failed"])
    skipped = sorted(rel(s["file"]) for s in report["skipped"])
    return {"failed": failed, "skipped": skipped, "done": sorted(rel(d["file"]) for d in report["done"])}


@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_s3_to_s3_gives_the_bytes_and_report_of_local_folders(capsys, s3_store, shared_images, tmp_path, precision):
    src = local_folder(shared_images, tmp_path / "in")
    bucket = fresh_bucket(s3_store)
    upload(s3_store, src, f"{bucket}/in")
    flags = [*FLAGS, "--precision", precision]
    code, _, stderr = run_cli(capsys, "-q", "batch", src, "-o", tmp_path / "local", *flags)
    assert code == 1, stderr  # the two bad files
    code, stdout, stderr = run_cli(capsys, "-q", "batch", s3_store.url(f"{bucket}/in"), "-o",
                                   s3_store.url(f"{bucket}/out"), *flags)
    assert code == 1, stderr
    assert "11 done" in stdout and f"-> s3://{bucket}/out" in stdout
    assert "testing:testing" not in stdout + stderr  # credentials never printed
    assert f"error: s3://{bucket}/in/empty.jpg: " in stderr  # said as it happened, naming the object
    written = s3_store.files(f"{bucket}/out")
    reference = image_files(tmp_path / "local")
    assert len(reference) == 11 and outputs(written) == reference
    report = json.loads(written[REPORT_FILE])
    local = json.loads((tmp_path / "local" / REPORT_FILE).read_text())
    assert report["complete"] and report["input"] == f"s3://{bucket}/in"
    assert relative(report, f"s3://{bucket}/in") == relative(local, str(src))
    assert report["account"] == local["account"]
    assert report["settings"] == local["settings"]
    assert STATE_FILE in written and JOURNAL_FILE not in written


def test_local_to_s3_and_s3_to_local(capsys, s3_store, shared_images, tmp_path):
    src = local_folder(shared_images, tmp_path / "in", bad=False)
    bucket = fresh_bucket(s3_store)
    code, _, stderr = run_cli(capsys, "-q", "batch", src, "-o", tmp_path / "local", *FLAGS)
    assert code == 0, stderr
    reference = image_files(tmp_path / "local")
    code, _, stderr = run_cli(capsys, "-q", "batch", src, "-o", s3_store.url(f"{bucket}/up"), *FLAGS)
    assert code == 0, stderr
    assert outputs(s3_store.files(f"{bucket}/up")) == reference
    upload(s3_store, src, f"{bucket}/in")
    code, _, stderr = run_cli(capsys, "-q", "batch", s3_store.url(f"{bucket}/in"), "-o", tmp_path / "down", *FLAGS)
    assert code == 0, stderr
    assert image_files(tmp_path / "down") == reference


def test_resume_does_only_what_is_missing(capsys, s3_store, shared_images, tmp_path):
    src = local_folder(shared_images, tmp_path / "in", bad=False)
    bucket = fresh_bucket(s3_store)
    names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    for name in names[:4]:
        s3_store.put(f"{bucket}/in/{name}", (src / name).read_bytes())
    in_url, out_url = s3_store.url(f"{bucket}/in"), s3_store.url(f"{bucket}/out")
    code, stdout, _ = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, *FLAGS)
    assert code == 0 and "4 done" in stdout
    first = outputs(s3_store.files(f"{bucket}/out"))
    upload(s3_store, src, f"{bucket}/in")  # the rest of the folder arrives
    code, stdout, _ = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, *FLAGS, "--resume")
    assert code == 0 and "7 done, 4 skipped" in stdout
    report = json.loads(s3_store.get(f"{bucket}/out/{REPORT_FILE}"))
    assert report["resumed"]
    assert {Path(s["file"]).name for s in report["skipped"]} == {Path(n).name for n in names[:4]}
    written = outputs(s3_store.files(f"{bucket}/out"))
    assert {k: written[k] for k in first} == first and len(written) == 11
    # Other settings into the same prefix are refused, as for a folder.
    code, _, stderr = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, "--device", "cpu", "--resolution", "384")
    assert code == 2 and "holds a batch made with other settings" in stderr


def test_an_interrupted_overwrite_run_resumes_from_its_object_journal(capsys, s3_store, shared_images, tmp_path):
    bucket, in_url, out_url = photos_in_a_bucket(s3_store, shared_images, tmp_path)
    code, _, _ = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, *FLAGS)
    assert code == 0
    # What an --overwrite run killed after replacing one output leaves: its state, and a journal of one entry.
    out = location(out_url)
    state = json.loads(s3_store.get(f"{bucket}/out/{STATE_FILE}"))
    s3_store.put(f"{bucket}/out/{STATE_FILE}", json.dumps({**state, "overwrite": True, "complete": False}).encode())
    replaced = sorted(outputs(s3_store.files(f"{bucket}/out")))[0]
    ObjectJournal(out / JOURNAL_FILE).add(replaced)
    code, _, stderr = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, *FLAGS)
    assert code == 2 and "interrupted --overwrite batch" in stderr
    code, stdout, stderr = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, *FLAGS, "--resume")
    assert code == 0, stderr
    assert "10 done, 1 skipped" in stdout
    report = json.loads(s3_store.get(f"{bucket}/out/{REPORT_FILE}"))
    assert [s["reason"] for s in report["skipped"]] == ["done by the interrupted --overwrite run"]
    left = s3_store.files(f"{bucket}/out")
    assert not any(k.startswith(JOURNAL_FILE) for k in left)  # the journal goes when the run completes


def test_the_output_prefix_inside_the_input_is_not_read(capsys, s3_store, shared_images, tmp_path):
    bucket, in_url, out_url = photos_in_a_bucket(s3_store, shared_images, tmp_path, out="in/cartoons")
    code, stdout, _ = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, *FLAGS)
    assert code == 0 and "11 done" in stdout
    code, stdout, _ = run_cli(capsys, "-q", "batch", in_url, "-o", out_url, *FLAGS, "--resume")
    assert code == 0 and "0 done, 12 skipped" in stdout  # 11 kept, and the cartoons were not taken for photos
    report = json.loads(s3_store.get(f"{bucket}/in/cartoons/{REPORT_FILE}"))
    assert report["counts"]["found"] == 11
    assert {"file": f"s3://{bucket}/in/cartoons", "reason": "the output folder: not read as input"} in \
        [{k: s[k] for k in ("file", "reason")} for s in report["skipped"]]


def test_keys_that_cannot_be_mirrored_fail_by_name(capsys, s3_store, shared_images, tmp_path):
    bucket = fresh_bucket(s3_store)
    photo = (shared_images / "wb_mountain4.jpg").read_bytes()
    s3_store.put(f"{bucket}/in/a.jpg", photo)
    for key in ("in/x/../b.jpg", "in/x//c.jpg", "in/./d.jpg"):  # legal S3 keys, but not paths
        s3_store.put_raw_key(bucket, key, photo)
    code, stdout, stderr = run_cli(capsys, "-q", "batch", s3_store.url(f"{bucket}/in"), "-o",
                                   s3_store.url(f"{bucket}/out"), *FLAGS)
    assert code == 1, stderr
    assert "1 done, 0 skipped, 3 failed" in stdout
    for key in ("x/../b.jpg", "x//c.jpg", "./d.jpg"):
        assert f"s3://{bucket}/in/{key}: object key has an empty, '.' or '..' part" in stderr
    assert sorted(outputs(s3_store.files(f"{bucket}/out"))) == ["a.png"]


def test_unusable_stores_are_clear_errors(capsys, s3_store, tmp_path):
    bucket = fresh_bucket(s3_store)
    s3_store.put(f"{bucket}/in/a.jpg", b"x")
    code, _, stderr = run_cli(capsys, "batch", s3_store.url(f"{bucket}/nothing-here"), "-o", tmp_path / "o")
    assert code == 2 and f"s3://{bucket}/nothing-here: no such folder" in stderr
    code, _, stderr = run_cli(capsys, "batch", s3_store.url(f"{bucket}/in"), "-o", s3_store.url("no-such-bucket/o"))
    assert code == 2 and "the bucket 'no-such-bucket' does not exist" in stderr
    code, _, stderr = run_cli(capsys, "batch", "nosuchscheme://bucket/in", "-o", tmp_path / "o")
    assert code == 2 and "nosuchscheme://bucket: pyarrow.fs cannot open this store" in stderr
    code, _, stderr = run_cli(capsys, "batch", s3_store.url(f"{bucket}/in"), "-o", s3_store.url(f"{bucket}/in"))
    assert code == 2 and "is the input folder" in stderr
    assert "testing:testing" not in stderr


def test_object_paths_round_trip_through_their_uri():
    path = ObjectPath.parse("s3://key:secret@bucket/some/prefix/?region=eu-west-1&scheme=http")
    assert str(path) == "s3://bucket/some/prefix" and path.bucket == "bucket"
    assert "secret" not in repr(path) and "region" not in repr(path)
    child = path / "a" / "b.jpg"
    assert str(child) == "s3://bucket/some/prefix/a/b.jpg" and child.name == "b.jpg" and child.suffix == ".jpg"
    assert child.parent.parent == path and child.relative_to(path) == "a/b.jpg"
    assert ObjectPath.parse(child.uri()) == child
    assert child.uri() == "s3://key:secret@bucket/some/prefix/a/b.jpg?region=eu-west-1&scheme=http"
    assert location("gs://b/x") == ObjectPath("gs", "b", "", "b/x")
    assert location("plain/folder") == Path("plain/folder")


def test_a_store_that_refuses_uploads_stops_the_run(s3_store):
    """What the stream's writers get when the store itself refuses (here: the bucket is gone): an error naming
    the object that counts as fatal, so the run stops at the first file instead of failing each one."""
    from cartoonkit.errors import OutputError
    from cartoonkit.folder.reasons import is_fatal
    from cartoonkit.folder.storage import write_output

    with pytest.raises(OutputError, match=r"cannot write s3://gone-bucket/out/a.png: .*NO_SUCH_BUCKET") as caught:
        write_output(location(s3_store.url("gone-bucket/out/a.png")), b"data")
    assert is_fatal(caught.value)
