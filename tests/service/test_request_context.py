"""Request ids reach the logs: the filter adds them to records emitted while serving."""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.logs import JsonFormatter
from service.request_context import (
    RequestIdLogFilter,
    current_request_id,
    is_json,
    read_headers,
)


def test_log_records_carry_the_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("tests.service.request-id")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")
        token = current_request_id.set("abc-123")
        try:
            logger.warning("inside", extra={"rows": 3})
        finally:
            current_request_id.reset(token)
    finally:
        logger.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert "request_id" not in outside
    assert inside["request_id"] == "abc-123"
    assert inside["rows"] == 3


def test_headers_give_a_safe_id_the_length_and_the_content_type() -> None:
    headers = read_headers(
        [
            (b"x-request-id", b"a.b:c-1"),
            (b"content-length", b"12"),
            (b"content-type", b"application/json"),
        ]
    )
    assert headers == ("a.b:c-1", 12, b"application/json", False)
    assert read_headers([(b"x-request-id", b"a\nb"), (b"content-length", b"-1")])[:2] == (
        None,
        None,
    )
    assert read_headers([(b"x-request-id", b"ok\n")])[:2] == (None, None)
    assert read_headers([(b"transfer-encoding", b"chunked")]) == (None, None, None, True)


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        (b"application/json", True),
        (b"Application/JSON; charset=utf-8", True),
        (b"application/problem+json", True),
        (b"text/plain", False),
        (b"application/x-www-form-urlencoded", False),
        (b"multipart/form-data; boundary=x", False),
        (b"text/json+plain", False),
        (None, False),
    ],
)
def test_only_json_media_types_are_json(content_type: bytes | None, json: bool) -> None:
    assert is_json(content_type) is json
