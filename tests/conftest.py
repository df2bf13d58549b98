"""Shared fixtures: a private models folder for the whole session, real photos, one warm Cartoonizer."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports cartoonkit: converted models go to a throw-away folder, so the suite
# never depends on (or changes) the developer's models/.
_SESSION_MODELS = tempfile.mkdtemp(prefix="cartoonkit-test-models-")
os.environ["CARTOONKIT_MODELS"] = _SESSION_MODELS
_SESSION_FOLDERS = [_SESSION_MODELS]
# The dashboard's background int8 warm-up would compile for minutes inside AppTest and the browser test;
# tests/test_dashboard_warm.py turns it on where it is the subject.
os.environ["CARTOONKIT_DASHBOARD_WARMUP"] = "0"
if "CARTOONKIT_CACHE" not in os.environ:
    _SESSION_FOLDERS.append(tempfile.mkdtemp(prefix="cartoonkit-test-cache-"))
    os.environ["CARTOONKIT_CACHE"] = _SESSION_FOLDERS[-1]

import torch  # noqa: E402

from cartoonkit import paths  # noqa: E402

SHARED_MODELS = paths.shared_dir() / "models"  # ../shared, or $CARTOONKIT_SHARED (the GPU check's copy)
SHARED_IMAGES = paths.shared_dir() / "images"
TFLITE_FILE = SHARED_MODELS / "whitebox_cartoon_gan_fp16.tflite"

torch.manual_seed(0)


def pytest_sessionfinish(session, exitstatus):
    """The throw-away folders made above go with the session (they held converted models and caches)."""
    for folder in _SESSION_FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_images() -> Path:
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is not beside the checkout")
    return SHARED_IMAGES


@pytest.fixture(scope="session")
def tflite_file() -> Path:
    if not TFLITE_FILE.is_file():
        pytest.skip("../shared/models/whitebox_cartoon_gan_fp16.tflite is not beside the checkout")
    return TFLITE_FILE


@pytest.fixture(scope="session")
def models_dir(tflite_file) -> Path:
    """The session's models folder with ``whitebox`` installed from the shared .tflite."""
    from cartoonkit import weights

    weights.install("whitebox")
    return Path(_SESSION_MODELS)


@pytest.fixture(scope="session")
def cartoonizer(models_dir):
    from cartoonkit import Cartoonizer

    return Cartoonizer.from_pretrained(device="cpu")


class S3Store:
    """A real S3 endpoint on this machine (moto's server: the S3 REST protocol, in a thread) and its
    pyarrow file system, for the object-storage tests. ``url("bucket/in")`` is what a user passes to
    ``cartoonkit batch``: credentials, endpoint and region in the URI itself, so Ray actors, which do not
    share this process's environment, open the same store."""

    def __init__(self, port: int):
        self.port = port
        self.query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        import pyarrow.fs

        self.fs, _ = pyarrow.fs.FileSystem.from_uri(f"s3://testing:testing@x?{self.query}&allow_bucket_creation=true")

    def url(self, path: str) -> str:
        bucket, _, rest = path.partition("/")
        return f"s3://testing:testing@{bucket}/{rest}?{self.query}"

    def bucket(self, name: str) -> str:
        self.fs.create_dir(name)
        return name

    def put(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)

    def put_raw_key(self, bucket: str, key: str, data: bytes) -> None:
        """Store ``key`` exactly as given (boto3 does not normalise ``x/../y`` or ``x//y`` as pyarrow's HTTP
        client does): keys other S3 clients can make."""
        import boto3

        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        client.put_object(Bucket=bucket, Key=key, Body=data)

    def get(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as stream:
            return stream.read()

    def files(self, prefix: str) -> dict[str, bytes]:
        """Every object under ``prefix``, by its path relative to it."""
        import pyarrow.fs

        infos = self.fs.get_file_info(pyarrow.fs.FileSelector(prefix, recursive=True, allow_not_found=True))
        return {info.path[len(prefix) + 1:]: self.get(info.path) for info in infos
                if info.type == pyarrow.fs.FileType.File}


@pytest.fixture(scope="session")
def s3_store():
    pytest.importorskip("pyarrow.fs")
    server_module = pytest.importorskip("moto.server")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield S3Store(server.get_host_and_port()[1])
    finally:
        server.stop()
