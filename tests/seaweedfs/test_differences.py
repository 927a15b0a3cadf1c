"""What SeaweedFS 4.53 (``weed mini`` as the chart runs it) and AWS S3 (moto as its
stand-in) answer, side by side, through raw S3 calls: the behaviours the storage layer
depends on, pinned per backend. docs/seaweedfs.md has the same table with what the
storage layer does about each difference; a new SeaweedFS release that changes one
fails here first. (Permissions are in test_roles.py: moto has no identities file.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests import seaweedfs_server as swfs
from tests.support import S3Server

BACKENDS = [
    pytest.param("seaweedfs", marks=[pytest.mark.servers, pytest.mark.seaweedfs]),
    pytest.param("moto", marks=pytest.mark.servers),
]


@dataclass
class Probe:
    backend: str
    server: S3Server
    client: Any
    bucket: str

    def answer(self, call: Callable[[], Any]) -> str:
        """ "OK", or the error code of the answer ("NoSuchKey", "404", ...)."""
        try:
            call()
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "OK"

    def expect(self, **by_backend: Any) -> Any:
        return by_backend[self.backend]


@pytest.fixture(params=BACKENDS)
def probe(request: pytest.FixtureRequest) -> Iterator[Probe]:
    server: S3Server = request.getfixturevalue(
        "seaweedfs" if request.param == "seaweedfs" else "moto_s3"
    )
    bucket = server.make_bucket()
    yield Probe(request.param, server, server.admin, bucket)
    swfs.empty_and_delete_bucket(server.admin, bucket)


def test_conditional_create_with_if_none_match(probe: Probe) -> None:
    # Both refuse to replace an existing object under If-None-Match: * (a real
    # create-if-absent), so the registry could make versions immutable in storage.
    c, b = probe.client, probe.bucket
    c.put_object(Bucket=b, Key="manifest.json", Body=b"first")
    assert (
        probe.answer(
            lambda: c.put_object(Bucket=b, Key="manifest.json", Body=b"x", IfNoneMatch="*")
        )
        == "PreconditionFailed"
    )
    assert (
        probe.answer(lambda: c.put_object(Bucket=b, Key="new", Body=b"x", IfNoneMatch="*")) == "OK"
    )
    assert c.get_object(Bucket=b, Key="manifest.json")["Body"].read() == b"first"


def test_compare_and_swap_with_if_match(probe: Probe) -> None:
    c, b = probe.client, probe.bucket
    etag = c.put_object(Bucket=b, Key="alias.json", Body=b"v1")["ETag"]
    stale = '"00000000000000000000000000000000"'
    assert probe.answer(
        lambda: c.put_object(Bucket=b, Key="alias.json", Body=b"x", IfMatch=stale)
    ) == ("PreconditionFailed")
    assert (
        probe.answer(lambda: c.put_object(Bucket=b, Key="alias.json", Body=b"v2", IfMatch=etag))
        == "OK"
    )
    assert c.get_object(Bucket=b, Key="alias.json")["Body"].read() == b"v2"


def test_default_content_type(probe: Probe) -> None:
    # AWS stores binary/octet-stream when the PUT names no type; SeaweedFS sniffs the
    # first bytes (Go's http.DetectContentType), so a JSON or parquet file without a
    # type is served as text/plain.
    c, b = probe.client, probe.bucket
    bodies = {"summary.json": b'{"a": 1}', "x.parquet": b"PAR1....PAR1", "bin": bytes(range(256))}
    for key, body in bodies.items():
        c.put_object(Bucket=b, Key=key, Body=body)
    types = {key: c.head_object(Bucket=b, Key=key)["ContentType"] for key in bodies}
    sniffed = "text/plain; charset=utf-8"
    assert types == probe.expect(
        seaweedfs={
            "summary.json": sniffed,
            "x.parquet": sniffed,
            "bin": "application/octet-stream",
        },
        moto=dict.fromkeys(bodies, "binary/octet-stream"),
    )
    c.put_object(Bucket=b, Key="report.html", Body=b"<html>", ContentType="text/html")
    assert c.head_object(Bucket=b, Key="report.html")["ContentType"] == "text/html"


def test_head_of_a_folder_that_only_exists_through_deeper_keys(probe: Probe) -> None:
    # SeaweedFS keeps folders as entries of its filer: a HEAD of "a/" finds one.
    c, b = probe.client, probe.bucket
    c.put_object(Bucket=b, Key="a/b.json", Body=b"{}")
    assert probe.answer(lambda: c.head_object(Bucket=b, Key="a")) == "404"
    assert probe.answer(lambda: c.get_object(Bucket=b, Key="a")) == "NoSuchKey"
    assert probe.answer(lambda: c.head_object(Bucket=b, Key="a/")) == probe.expect(
        seaweedfs="OK", moto="404"
    )
    # ... but it is never listed as a key.
    assert [item["Key"] for item in c.list_objects_v2(Bucket=b)["Contents"]] == ["a/b.json"]


def test_folder_markers_are_listed_and_emptied_folders_are_not(probe: Probe) -> None:
    c, b = probe.client, probe.bucket
    c.put_object(Bucket=b, Key="marker/", Body=b"")
    c.put_object(Bucket=b, Key="gone/deep/k", Body=b"")
    c.delete_object(Bucket=b, Key="gone/deep/k")
    assert [item["Key"] for item in c.list_objects_v2(Bucket=b)["Contents"]] == ["marker/"]


def test_dot_segments_in_keys(probe: Probe) -> None:
    # AWS takes ".." as part of a key's name; SeaweedFS refuses the request.
    c, b = probe.client, probe.bucket
    answers = []
    for key in ("a/../b", "./x"):
        try:
            c.put_object(Bucket=b, Key=key, Body=b"x")
            answers.append("OK")
        except ClientError as error:
            answers.append(error.response["Error"]["Code"])
    assert answers == probe.expect(seaweedfs=["InvalidRequest"] * 2, moto=["OK"] * 2)


def test_unusual_but_valid_key_characters(probe: Probe) -> None:
    c, b = probe.client, probe.bucket
    keys = ["sp ace/k", "uni/é€.json", "plus+/k", "eq/date=2026-01-01/h-1.parquet", "pct%20/k"]
    for key in keys:
        c.put_object(Bucket=b, Key=key, Body=key.encode())
    assert [item["Key"] for item in c.list_objects_v2(Bucket=b)["Contents"]] == sorted(keys)
    assert all(c.get_object(Bucket=b, Key=key)["Body"].read() == key.encode() for key in keys)


def test_missing_bucket(probe: Probe) -> None:
    c = probe.client
    missing = f"{probe.bucket}-missing"
    answers = {
        "get": probe.answer(lambda: c.get_object(Bucket=missing, Key="k")),
        "head": probe.answer(lambda: c.head_object(Bucket=missing, Key="k")),
        "head bucket": probe.answer(lambda: c.head_bucket(Bucket=missing)),
        "list": probe.answer(lambda: c.list_objects_v2(Bucket=missing)),
        "delete": probe.answer(lambda: c.delete_object(Bucket=missing, Key="k")),
    }
    assert answers == {
        "get": "NoSuchBucket",
        "head": "404",
        "head bucket": "404",
        "list": "NoSuchBucket",
        "delete": "NoSuchBucket",
    }
    # A PUT: weed mini would create the bucket for an admin identity, but the chart
    # turns that off (-s3.autoCreateBucket=false): a typo never makes a bucket.
    put = probe.answer(lambda: c.put_object(Bucket=missing, Key="k", Body=b""))
    if put == "OK":
        swfs.empty_and_delete_bucket(c, missing)
    assert put == "NoSuchBucket"


def test_deleting_a_missing_key_is_not_an_error(probe: Probe) -> None:
    assert probe.answer(lambda: probe.client.delete_object(Bucket=probe.bucket, Key="k")) == "OK"


def test_a_bucket_must_be_empty_to_be_deleted(probe: Probe) -> None:
    c, b = probe.client, probe.bucket
    c.put_object(Bucket=b, Key="k", Body=b"")
    assert probe.answer(lambda: c.delete_bucket(Bucket=b)) == "BucketNotEmpty"
