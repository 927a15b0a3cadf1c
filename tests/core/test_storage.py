"""One contract, two backends: every behaviour the rest of the stack relies on is
checked against a local folder and against a real SeaweedFS (``weed mini``, the S3
store the chart deploys, configured by the chart: tests/seaweedfs_server.py).

moto (the AWS stand-in) only runs the tests of what SeaweedFS answers differently
from AWS and the storage layer must translate either way: a missing bucket, bad
credentials. docs/seaweedfs.md lists the differences."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import storage as storage_module
from core.errors import ObjectExistsError, ObjectNotFoundError, StorageError
from core.storage import TEMP_PREFIX, FileStorage, S3Storage, Storage, open_storage
from tests import seaweedfs_server as swfs
from tests.support import S3Server, free_port, moto_s3_server, run_together

SEAWEEDFS = pytest.param("seaweedfs", marks=[pytest.mark.servers, pytest.mark.seaweedfs])
MOTO = pytest.param("moto", marks=pytest.mark.servers)
BACKENDS = ["file", SEAWEEDFS]


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage((tmp_path / "store").as_uri())
    uri = request.getfixturevalue("s3_bucket")
    return open_storage(uri, max_attempts=2, connect_timeout=2.0, read_timeout=10.0)


@pytest.fixture(params=[SEAWEEDFS, MOTO])
def any_s3(
    request: pytest.FixtureRequest, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> S3Server:
    """SeaweedFS, then moto as AWS's stand-in, with the SDK pointed at it with
    credentials that may create buckets: for the errors the two answer differently."""
    server: S3Server = request.getfixturevalue(
        "seaweedfs" if request.param == "seaweedfs" else "moto_s3"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    return server


# --- the contract, on both backends ---------------------------------------------------


def test_round_trip(storage: Storage) -> None:
    data = bytes(range(256)) * 3
    storage.write_bytes("models/m/1/model.onnx", data)
    assert storage.read_bytes("models/m/1/model.onnx") == data


def test_empty_object(storage: Storage) -> None:
    storage.write_bytes("empty", b"")
    assert storage.read_bytes("empty") == b""
    assert storage.exists("empty")


def test_overwrite_replaces_content(storage: Storage) -> None:
    storage.write_bytes("aliases/production.json", b'{"version": "1"}')
    storage.write_bytes("aliases/production.json", b'{"version": "2"}')
    assert storage.read_bytes("aliases/production.json") == b'{"version": "2"}'
    assert storage.list() == ["aliases/production.json"]


def test_exists(storage: Storage) -> None:
    assert not storage.exists("a/b.json")
    storage.write_bytes("a/b.json", b"{}")
    assert storage.exists("a/b.json")
    # A "folder" is not an object.
    assert not storage.exists("a")


def test_list_is_recursive_sorted_and_relative(storage: Storage) -> None:
    keys = ["b.txt", "a/2.txt", "a/1.txt", "a/deep/er/x.bin", "c/z", "ab/y"]
    for key in keys:
        storage.write_bytes(key, key.encode())
    assert storage.list() == sorted(keys)
    assert storage.list("a/") == ["a/1.txt", "a/2.txt", "a/deep/er/x.bin"]
    # A prefix is a string prefix, as in S3: "a" also matches "ab/...".
    assert storage.list("a") == ["a/1.txt", "a/2.txt", "a/deep/er/x.bin", "ab/y"]
    assert storage.list("a/deep/") == ["a/deep/er/x.bin"]
    assert storage.list("a/1") == ["a/1.txt"]
    assert storage.list("nothing/") == []


def test_list_of_an_empty_root(storage: Storage) -> None:
    assert storage.list() == []


def test_delete(storage: Storage) -> None:
    storage.write_bytes("x/y", b"1")
    storage.delete("x/y")
    assert not storage.exists("x/y")
    assert storage.list() == []
    storage.delete("x/y")  # missing is fine
    storage.delete("never/was")


def test_create_bytes_writes_only_when_the_key_is_absent(storage: Storage) -> None:
    storage.create_bytes("claims/w.json", b"first", content_type="application/json")
    assert storage.read_bytes("claims/w.json") == b"first"
    with pytest.raises(ObjectExistsError) as caught:
        storage.create_bytes("claims/w.json", b"second")
    message = str(caught.value)
    assert message == f"{storage.url_for('claims/w.json')}: already exists"
    assert isinstance(caught.value, StorageError)
    assert storage.read_bytes("claims/w.json") == b"first"
    assert storage.list() == ["claims/w.json"]
    # An object written by write_bytes is taken as well; a deleted one is free again.
    storage.write_bytes("plain", b"x")
    with pytest.raises(ObjectExistsError):
        storage.create_bytes("plain", b"y")
    storage.delete("claims/w.json")
    storage.create_bytes("claims/w.json", b"third")
    assert storage.read_bytes("claims/w.json") == b"third"


def test_create_bytes_racing_writers_exactly_one_wins(storage: Storage) -> None:
    # Each writer opens its own storage (its own S3 connection pool), so the requests
    # really are concurrent.
    writers = 8

    def create(index: int) -> str:
        open_storage(storage.uri).create_bytes("retrain/window.json", f"writer {index}".encode())
        return "created"

    outcomes = run_together(writers, create)
    [winner] = [index for index, outcome in enumerate(outcomes) if outcome == "created"]
    losers = [outcome for index, outcome in enumerate(outcomes) if index != winner]
    assert all(isinstance(outcome, ObjectExistsError) for outcome in losers), outcomes
    assert storage.read_bytes("retrain/window.json") == f"writer {winner}".encode()
    assert storage.list() == ["retrain/window.json"]


def test_missing_key_raises_object_not_found_naming_the_uri(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError) as caught:
        storage.read_bytes("models/none/manifest.json")
    message = str(caught.value)
    assert storage.url_for("models/none/manifest.json") in message
    assert "\n" not in message


def test_url_for(storage: Storage) -> None:
    url = storage.url_for("a/b.json")
    assert url == storage.uri.rstrip("/") + "/a/b.json"
    assert url.startswith(("file:///", "s3://"))


def test_child_is_rooted_at_the_prefix(storage: Storage) -> None:
    child = storage.child("models/m")
    child.write_bytes("1/manifest.json", b"{}")
    assert storage.read_bytes("models/m/1/manifest.json") == b"{}"
    assert child.list() == ["1/manifest.json"]
    assert child.uri.rstrip("/") == storage.url_for("models/m")
    assert child.url_for("1/manifest.json") == storage.url_for("models/m/1/manifest.json")
    # The trailing slash does not matter, and children nest.
    assert storage.child("models/m/").list() == ["1/manifest.json"]
    assert storage.child("models").child("m").read_bytes("1/manifest.json") == b"{}"
    with pytest.raises(StorageError):
        child.read_bytes("../../outside")


def test_open_storage_of_its_own_uri_sees_the_same_objects(storage: Storage) -> None:
    storage.write_bytes("k", b"v")
    assert open_storage(storage.uri).read_bytes("k") == b"v"


def test_upload_and_download_file(storage: Storage, tmp_path: Path) -> None:
    # Above boto3's 8 MiB multipart threshold, so S3 takes the multipart path.
    source = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    source.write_bytes(chunk * 9)
    storage.upload_file(source, "datasets/big.bin")
    assert storage.exists("datasets/big.bin")

    target = tmp_path / "out" / "big.bin"
    target.parent.mkdir()
    target.write_bytes(b"old content")
    storage.download_file("datasets/big.bin", target)
    assert target.read_bytes() == chunk * 9
    assert sorted(p.name for p in target.parent.iterdir()) == ["big.bin"]


def test_download_of_a_missing_key(storage: Storage, tmp_path: Path) -> None:
    target = tmp_path / "absent.bin"
    with pytest.raises(ObjectNotFoundError):
        storage.download_file("no/such.bin", target)
    assert not target.exists()


def test_upload_of_a_missing_local_file(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot read local file"):
        storage.upload_file(tmp_path / "absent.bin", "x.bin")
    assert storage.list() == []


BAD_KEYS = [
    "",
    "../escape",
    "a/../../escape",
    "a/..",
    "/etc/passwd",
    "a//b",
    "./a",
    "a/",
    "a\\..\\b",
    "nul\x00byte",
    f"a/{TEMP_PREFIX}x",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_could_escape_the_root_are_rejected(storage: Storage, key: str) -> None:
    for attempt in (
        lambda: storage.read_bytes(key),
        lambda: storage.write_bytes(key, b"x"),
        lambda: storage.create_bytes(key, b"x"),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
        lambda: storage.url_for(key),
    ):
        with pytest.raises(StorageError) as caught:
            attempt()
        assert not isinstance(caught.value, ObjectNotFoundError)
    assert storage.list() == []


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("../x", "'..' segments are not allowed"),
        ("a/./b", "'.' segments are not allowed"),
        ("a//b", "empty segments ('//') are not allowed"),
        ("/etc/passwd", "must be relative (no leading '/')"),
        ("a\\b", "backslashes are not allowed (use '/')"),
        ("a\x00b", "NUL characters are not allowed"),
        (f"{TEMP_PREFIX}x", f"names starting with {TEMP_PREFIX} are reserved"),
        ("", "must not be empty"),
    ],
)
def test_a_refused_key_says_what_and_why(storage: Storage, key: str, problem: str) -> None:
    with pytest.raises(StorageError) as caught:
        storage.read_bytes(key)
    assert str(caught.value) == f"{storage.uri}: storage key {key!r}: {problem}"


@pytest.mark.parametrize("prefix", ["../", "/abs", "a/../", "..", "a//"])
def test_prefixes_that_could_escape_the_root_are_rejected(storage: Storage, prefix: str) -> None:
    with pytest.raises(StorageError):
        storage.list(prefix)
    with pytest.raises(StorageError):
        storage.child(prefix)


# --- local files ----------------------------------------------------------------------


def test_file_storage_never_writes_outside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    store = FileStorage(root)
    for key in ("../outside", "a/../../outside"):
        with pytest.raises(StorageError):
            store.write_bytes(key, b"x")
    assert not (tmp_path / "outside").exists()


def test_file_failed_write_keeps_old_content_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStorage(tmp_path)
    store.write_bytes("models/m/model.onnx", b"old")

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage_module.os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="input/output error") as caught:
        store.write_bytes("models/m/model.onnx", b"new content, never complete")
    monkeypatch.undo()

    assert store.url_for("models/m/model.onnx") in str(caught.value)
    assert store.read_bytes("models/m/model.onnx") == b"old"
    assert os.listdir(tmp_path / "models" / "m") == ["model.onnx"]
    assert store.list() == ["models/m/model.onnx"]


def test_file_interrupted_upload_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStorage(tmp_path / "store")
    store.write_bytes("data.parquet", b"old")
    source = tmp_path / "new.parquet"
    source.write_bytes(b"n" * 100_000)

    def copy_half_then_fail(src: object, dst: object) -> None:
        dst.write(b"n" * 50_000)  # type: ignore[attr-defined]
        raise KeyboardInterrupt  # the worst case: not even an Exception

    monkeypatch.setattr(storage_module.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        store.upload_file(source, "data.parquet")
    monkeypatch.undo()

    assert store.read_bytes("data.parquet") == b"old"
    assert os.listdir(tmp_path / "store") == ["data.parquet"]


def test_file_create_bytes_failure_leaves_neither_the_object_nor_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStorage(tmp_path)

    def failing_link(source: object, target: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage_module.os, "link", failing_link)
    with pytest.raises(StorageError, match="cannot create: input/output error"):
        store.create_bytes("claims/w.json", b"never visible")
    monkeypatch.undo()
    assert os.listdir(tmp_path / "claims") == []
    # The loser of a race leaves nothing behind either.
    store.create_bytes("claims/w.json", b"first")
    with pytest.raises(ObjectExistsError):
        store.create_bytes("claims/w.json", b"second")
    assert os.listdir(tmp_path / "claims") == ["w.json"]
    assert stat.S_IMODE((tmp_path / "claims" / "w.json").stat().st_mode) == 0o644


def test_file_create_bytes_over_a_folder_is_not_mistaken_for_an_object(tmp_path: Path) -> None:
    store = FileStorage(tmp_path)
    store.write_bytes("a/b", b"inner")
    with pytest.raises(StorageError, match="a folder has this name") as caught:
        store.create_bytes("a", b"outer")
    assert not isinstance(caught.value, ObjectExistsError)


def test_file_reader_never_sees_a_partial_created_object(tmp_path: Path) -> None:
    store = FileStorage(tmp_path)
    content = b"c" * 3_000_000
    stop = threading.Event()
    torn: list[int] = []

    def read_continuously() -> None:
        while not stop.is_set():
            with contextlib.suppress(ObjectNotFoundError):
                data = store.read_bytes("created.bin")
                if data != content:
                    torn.append(len(data))

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for _ in range(20):
            store.create_bytes("created.bin", content)
            store.delete("created.bin")
    finally:
        stop.set()
        reader.join(timeout=10)
    assert torn == []


def test_file_leftover_temp_files_of_a_crashed_writer_are_not_listed(tmp_path: Path) -> None:
    store = FileStorage(tmp_path)
    store.write_bytes("logs/a.parquet", b"a")
    (tmp_path / "logs" / f"{TEMP_PREFIX}abc123").write_bytes(b"half")
    assert store.list() == ["logs/a.parquet"]
    assert store.list("logs/") == ["logs/a.parquet"]


def test_file_reader_never_sees_a_partial_object(tmp_path: Path) -> None:
    store = FileStorage(tmp_path)
    versions = [b"a" * 2_000_000, b"b" * 3_000_000]
    store.write_bytes("model.bin", versions[0])
    stop = threading.Event()
    reads: list[int] = []
    torn: list[int] = []  # an assert in the thread would not fail the test

    def read_continuously() -> None:
        while not stop.is_set():
            data = store.read_bytes("model.bin")
            reads.append(len(data))
            if data not in versions:
                torn.append(len(data))

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        for index in range(30):
            store.write_bytes("model.bin", versions[index % 2])
    finally:
        stop.set()
        reader.join(timeout=10)
    assert reads
    assert torn == []
    assert store.list() == ["model.bin"]


def test_file_objects_are_readable_by_other_users(tmp_path: Path) -> None:
    store = FileStorage(tmp_path)
    store.write_bytes("x", b"1")
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o644


def test_file_backend_maps_os_errors_to_storage_error(tmp_path: Path) -> None:
    store = FileStorage(tmp_path)
    store.write_bytes("a", b"file, not a folder")
    with pytest.raises(StorageError, match="cannot write") as caught:
        store.write_bytes("a/b", b"x")
    assert not isinstance(caught.value, ObjectNotFoundError)
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes("a/b")


def test_file_unreadable_folder_is_an_error_not_an_empty_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStorage(tmp_path)
    store.write_bytes("locked/x", b"1")
    locked = tmp_path / "locked"
    real_scandir = os.scandir

    # chmod 000 would not stop root, who runs CI: refuse the folder at the syscall instead.
    def scandir(path: object = ".") -> object:
        if Path(str(path)) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(StorageError, match="cannot list: permission denied") as caught:
        store.list()
    assert locked.as_uri() in str(caught.value)


# --- URIs -----------------------------------------------------------------------------


def test_open_storage_accepts_file_uris_and_plain_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "with space"
    expected = folder.resolve()
    for uri in (
        str(folder),
        folder.as_uri(),
        f"file://localhost{folder}",
    ):
        store = open_storage(uri)
        assert isinstance(store, FileStorage)
        assert store.root == expected, uri
    assert folder.as_uri().count("%20") == 1  # the URI form really was percent-encoded

    monkeypatch.chdir(tmp_path)
    assert open_storage("relative/dir").uri == (tmp_path / "relative" / "dir").resolve().as_uri()


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("gs://bucket/x", "unsupported storage URI 'gs://bucket/x' (use file:// or s3://)"),
        ("", "empty storage URI"),
        ("file://relative/path", "three slashes"),
        ("s3:///prefix", "has no bucket"),
        ("s3://bucket/p?versionId=1", "query"),
        ("s3:bucket", "malformed"),
    ],
)
def test_open_storage_rejects_bad_uris(uri: str, complaint: str) -> None:
    with pytest.raises(StorageError) as caught:
        open_storage(uri)
    assert complaint in str(caught.value)


@pytest.mark.usefixtures("aws_env")
def test_a_bad_prefix_in_a_registry_uri_is_named_on_the_command_line() -> None:
    # The CLI used to say "error: : invalid storage prefix '../../etc': ..." (an empty
    # root where the URI should be).
    completed = subprocess.run(
        [sys.executable, "-m", "training", "models", "--registry", "s3://bucket/../../etc", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines()[-1] == (
        "error: s3://bucket/: storage prefix '../../etc': '..' segments are not allowed"
    )


@pytest.mark.usefixtures("aws_env")
def test_s3_uri_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    # Building a client makes no request: no server needed.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    for uri, root in [
        ("s3://bucket", "s3://bucket/"),
        ("s3://bucket/", "s3://bucket/"),
        ("s3://bucket/a/b", "s3://bucket/a/b/"),
        ("s3://bucket/a/b/", "s3://bucket/a/b/"),
    ]:
        store = open_storage(uri)
        assert isinstance(store, S3Storage)
        assert store.uri == root
        assert store.url_for("k.json") == root + "k.json"


def test_importing_the_storage_layer_does_not_import_boto3() -> None:
    code = "import sys, core.storage; sys.exit('boto3' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert result.returncode == 0


# --- S3 specifics (SeaweedFS) ------------------------------------------------------------


@pytest.mark.servers
def test_s3_pagination_with_more_than_1000_keys(s3_bucket: str) -> None:
    # More keys than one ListObjectsV2 page holds (1,000), with the server's own page
    # size. 1,001 PUTs take about 2.5 s on SeaweedFS (7-12 s on moto, where it was
    # marked slow); test_s3_list_follows_every_page covers paging with a small page.
    store = open_storage(s3_bucket)
    keys = [f"logs/{index:05d}.json" for index in range(1001)]
    for key in keys:
        store.write_bytes(key, b"")
    assert store.list() == keys
    assert store.list("logs/0099") == keys[990:1000]


@pytest.mark.servers
def test_s3_list_follows_every_page(s3_bucket: str) -> None:
    store = open_storage(s3_bucket)
    assert isinstance(store, S3Storage)
    paged = S3Storage(store.bucket, store.prefix, store.client, page_size=2)
    keys = [f"k/{index}" for index in range(7)]
    for key in keys:
        paged.write_bytes(key, b"")
    assert paged.list() == keys
    assert paged.child("k").list() == [str(index) for index in range(7)]


@pytest.mark.servers
def test_s3_listing_order_across_pages_with_folders_and_look_alike_names(s3_bucket: str) -> None:
    # SeaweedFS stores keys as a folder tree, AWS as flat strings: in byte order
    # "a-1" < "a.1" < "a/1" < "a0", so a tree walk that listed folder a/ before the
    # file a-1 would differ. One key per page also checks that no page boundary inside
    # a folder loses or repeats a key.
    store = open_storage(s3_bucket)
    assert isinstance(store, S3Storage)
    keys = ["a/1", "a-1", "a.1", "a0", "a/b/c", "ab", "a/b-c", "a/b/d", "b"]
    for key in keys:
        store.write_bytes(key, b"")
    raw = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    assert [item["Key"][len(store.prefix) :] for item in raw["Contents"]] == sorted(keys)
    one_per_page = S3Storage(store.bucket, store.prefix, store.client, page_size=1)
    assert one_per_page.list() == sorted(keys)
    assert one_per_page.list("a/b") == ["a/b-c", "a/b/c", "a/b/d"]


@pytest.mark.servers
def test_s3_reader_never_sees_a_partial_object(s3_bucket: str) -> None:
    # Above the filer's 4 MiB chunk size, so each version is several chunks on
    # SeaweedFS's volume servers: the object's entry must still switch at once.
    store = open_storage(s3_bucket)
    versions = [b"a" * 5_000_000, b"b" * 9_000_000]
    store.write_bytes("model.bin", versions[0])
    stop = threading.Event()
    reads: list[int] = []
    torn: list[int] = []

    def read_continuously() -> None:
        reader = open_storage(s3_bucket)  # its own client and connection pool
        while not stop.is_set():
            data = reader.read_bytes("model.bin")
            reads.append(len(data))
            if data not in versions:
                torn.append(len(data))

    thread = threading.Thread(target=read_continuously)
    thread.start()
    try:
        for index in range(1, 9):
            store.write_bytes("model.bin", versions[index % 2])
    finally:
        stop.set()
        thread.join(timeout=60)
    assert reads
    assert torn == []
    assert store.list() == ["model.bin"]


@pytest.mark.servers
def test_s3_content_type_is_stored(s3_bucket: str) -> None:
    store = open_storage(s3_bucket)
    assert isinstance(store, S3Storage)
    store.write_bytes("report.html", b"<html></html>", content_type="text/html")
    head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + "report.html")
    assert head["ContentType"] == "text/html"


@pytest.mark.servers
def test_s3_create_bytes_is_a_conditional_put(s3_bucket: str) -> None:
    # What makes create_bytes safe on S3 is the server honouring If-None-Match: *; a
    # plain PUT of the same key replaces the object, a conditional one is refused.
    store = open_storage(s3_bucket)
    assert isinstance(store, S3Storage)
    store.create_bytes("claim.json", b"first", content_type="application/json")
    head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + "claim.json")
    assert head["ContentType"] == "application/json"
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        store.client.put_object(
            Bucket=store.bucket, Key=store.prefix + "claim.json", Body=b"raw", IfNoneMatch="*"
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert store.read_bytes("claim.json") == b"first"


@pytest.mark.servers
def test_s3_folder_markers_are_not_objects(s3_bucket: str) -> None:
    store = open_storage(s3_bucket)
    assert isinstance(store, S3Storage)
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + "folder/", Body=b"")
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + "empty/", Body=b"")
    store.write_bytes("folder/x", b"1")
    assert store.list() == ["folder/x"]
    assert not store.exists("folder") and not store.exists("empty")


@pytest.mark.servers
def test_s3_deleting_the_last_object_of_a_folder_leaves_nothing_listed(s3_bucket: str) -> None:
    # SeaweedFS keeps folders as filer entries of their own; none may surface as a key.
    store = open_storage(s3_bucket)
    store.write_bytes("reports/drift/1/summary.json", b"{}")
    store.write_bytes("reports/drift/2/summary.json", b"{}")
    store.delete("reports/drift/1/summary.json")
    assert store.list() == ["reports/drift/2/summary.json"]
    store.delete("reports/drift/2/summary.json")
    assert store.list() == []
    assert store.list("reports/") == []


@pytest.mark.servers
def test_s3_a_key_may_be_both_an_object_and_a_folder(s3_bucket: str) -> None:
    # S3 allows "a" and "a/b" side by side; a file system (and an older SeaweedFS)
    # does not. The layout never does it, but the storage contract is S3's.
    store = open_storage(s3_bucket)
    store.write_bytes("a/b", b"inner")
    store.write_bytes("a", b"outer")
    assert store.list() == ["a", "a/b"]
    assert (store.read_bytes("a"), store.read_bytes("a/b")) == (b"outer", b"inner")


@pytest.mark.servers
def test_s3_endpoint_from_aws_endpoint_url_s3(
    s3_bucket: str, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service-specific variable wins over the general one, as in the AWS SDKs.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env.endpoint_url)
    store = open_storage(s3_bucket, max_attempts=1)
    store.write_bytes("k", b"v")
    assert store.read_bytes("k") == b"v"


@pytest.mark.servers
def test_s3_explicit_endpoint_and_default_region(
    s3_bucket: str, s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    bucket = s3_bucket.removeprefix("s3://").split("/")[0]
    store = S3Storage(bucket, "p", endpoint_url=s3_env.endpoint_url, max_attempts=1)
    assert store.client.meta.region_name == "us-east-1"
    store.write_bytes("k", b"v")
    assert store.read_bytes("k") == b"v"


@pytest.fixture
def unreachable_endpoint(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint


@pytest.mark.parametrize("attempts", [1, 2])
def test_s3_unreachable_endpoint_fails_fast_with_one_line(
    unreachable_endpoint: str, attempts: int
) -> None:
    store = open_storage(
        "s3://bucket/models", max_attempts=attempts, connect_timeout=1.0, read_timeout=1.0
    )
    for operation in (
        lambda: store.read_bytes("x"),
        lambda: store.write_bytes("x", b""),
        lambda: store.list(),
        lambda: store.exists("x"),
    ):
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            operation()
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert message.startswith("s3://bucket/models/")
        assert f"cannot reach endpoint {unreachable_endpoint}" in message
        assert "connection refused" in message
        assert "\n" not in message


# --- what SeaweedFS and AWS (moto) answer differently ------------------------------------


@pytest.mark.servers
def test_s3_missing_bucket_is_named_not_mistaken_for_a_missing_key(
    any_s3: S3Server, tmp_path: Path
) -> None:
    # Both answer NoSuchBucket to a GET or a listing, and a bare 404 to a HEAD.
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    store = open_storage(f"s3://{bucket}/p", max_attempts=1)
    for operation in (
        lambda: store.read_bytes("k"),
        lambda: store.list(),
        lambda: store.exists("k"),
        lambda: store.download_file("k", tmp_path / "k"),
        lambda: store.delete("k"),
    ):
        with pytest.raises(StorageError) as caught:
            operation()
        assert not isinstance(caught.value, ObjectNotFoundError)
        assert f"bucket '{bucket}' does not exist" in str(caught.value)
        assert str(caught.value).startswith(f"s3://{bucket}/p/")
        assert "\n" not in str(caught.value)


@pytest.mark.servers
def test_s3_write_to_a_missing_bucket(any_s3: S3Server, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    store = open_storage(f"s3://{bucket}/p", max_attempts=1)
    # The same on both: the chart runs SeaweedFS with -s3.autoCreateBucket=false, so
    # even the admin identity's PUT does not create a bucket.
    try:
        for operation in (
            lambda: store.write_bytes("k", b""),
            lambda: store.upload_file(source, "f"),
        ):
            with pytest.raises(StorageError, match=f"bucket '{bucket}' does not exist"):
                operation()
    finally:
        if any_s3.name != "moto":
            with contextlib.suppress(Exception):
                swfs.empty_and_delete_bucket(any_s3.admin, bucket)


@pytest.mark.usefixtures("unreachable_endpoint")
def test_s3_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Signing fails before any connection is attempted, so no server is needed.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_storage("s3://bucket/p", max_attempts=1)
    with pytest.raises(StorageError, match=r"no usable AWS credentials \(check AWS_ACCESS_KEY_ID"):
        store.read_bytes("k")


@pytest.fixture(scope="module")
def moto_with_auth() -> Iterator[S3Server]:
    """A moto server that checks credentials against its (empty) IAM: every key is
    unknown, so every request gets a 403, as AWS does with wrong keys."""
    with moto_s3_server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}) as server:
        yield server


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("seaweedfs-unknown-key", marks=[pytest.mark.servers, pytest.mark.seaweedfs]),
        pytest.param("seaweedfs-wrong-secret", marks=[pytest.mark.servers, pytest.mark.seaweedfs]),
        pytest.param("moto-unknown-key", marks=pytest.mark.servers),
    ],
)
def test_s3_wrong_credentials_are_access_denied(
    case: str, request: pytest.FixtureRequest, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SeaweedFS answers InvalidAccessKeyId or SignatureDoesNotMatch (AWS's codes), and
    # a bare 403 to a HEAD, as AWS does.
    if case.startswith("moto"):
        server: S3Server = request.getfixturevalue("moto_with_auth")
        bucket = "bucket"
    else:
        server = request.getfixturevalue("seaweedfs")
        bucket = request.getfixturevalue("s3_bucket").removeprefix("s3://").split("/")[0]
        if case.endswith("wrong-secret"):
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x" * 40)
        else:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00")
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    store = open_storage(f"s3://{bucket}/p", max_attempts=1)
    for operation in (
        lambda: store.read_bytes("k"),
        lambda: store.write_bytes("k", b""),
        lambda: store.list(),
        lambda: store.exists("k"),
    ):
        with pytest.raises(StorageError) as caught:
            operation()
        message = str(caught.value)
        assert not isinstance(caught.value, ObjectNotFoundError), message
        assert message.startswith(f"s3://{bucket}/p/")
        assert "access denied" in message
        assert "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" in message
        assert "\n" not in message
