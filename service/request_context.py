"""Request ids: taken from a valid ``X-Request-ID`` header or issued, returned in the
``X-Request-ID`` response header, available to handlers as ``request.state.request_id``
and added to every log record emitted while the request is served.

Every request is also issued an id of the scorer's own (``request.state.issued_id``,
signed: ``service.request_ids``), the same one when the client sent none: predictions
carry it, as the id a feedback label may be sent for. A client's own id only traces.

The same middleware refuses a body that is not JSON (415: every body this API reads is
JSON) and enforces the body size limit: a body announced (``Content-Length``)
as larger gets a JSON 413 before it is read; a body sent without a length (chunked) is
counted as it arrives and refused (413 too) once over. (FastAPI's own ``max_body_size``
would answer in plain text, from outside the app's exception handlers.)

A pure ASGI middleware rather than ``BaseHTTPMiddleware``: it runs in the request's
own task (so the context variable reaches the handler and the logs) and costs a few
microseconds instead of a task and a stream per request.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import NamedTuple

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.schemas import REQUEST_ID_PATTERN

HEADER = b"x-request-id"
CONTENT_LENGTH = b"content-length"
CONTENT_TYPE = b"content-type"
TRANSFER_ENCODING = b"transfer-encoding"
_VALID = re.compile(REQUEST_ID_PATTERN.encode("ascii"))

# A ContextVar is per request (per asyncio task context), not shared state.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    # The same 128 random bits and 32-hex format as uuid4().hex, without building a
    # UUID object: a seventh of the cost, on every request.
    return os.urandom(16).hex()


class RequestHeaders(NamedTuple):
    request_id: str | None
    """The client's request id when it is safe to log and store (else None: a new one
    is made; an invalid id is replaced rather than refused, so tracing never breaks a
    request)."""
    length: int | None
    """The announced body length."""
    content_type: bytes | None
    chunked: bool
    """A body sent without a length."""


def read_headers(headers: list[tuple[bytes, bytes]]) -> RequestHeaders:
    request_id: str | None = None
    length: int | None = None
    content_type: bytes | None = None
    chunked = False
    for name, value in headers:
        if name == HEADER:
            request_id = value.decode("ascii") if _VALID.fullmatch(value) else None
        elif name == CONTENT_LENGTH:
            length = int(value) if value.isdigit() else None
        elif name == CONTENT_TYPE:
            content_type = value
        elif name == TRANSFER_ENCODING:
            chunked = True
    return RequestHeaders(request_id, length, content_type, chunked)


def is_json(content_type: bytes | None) -> bool:
    """``application/json`` or a ``+json`` type, parameters (charset) allowed."""
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, issue_id: Callable[[], str] = new_request_id
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.issue_id = issue_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = read_headers(scope["headers"])
        length = headers.length
        issued_id = self.issue_id()
        request_id = headers.request_id or issued_id
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["issued_id"] = issued_id
        header = (HEADER, request_id.encode("ascii"))
        if length is not None and length > self.max_body_bytes:
            await _refuse(
                scope,
                receive,
                send,
                413,
                f"request body of {length} bytes is over the limit of {self.max_body_bytes} bytes",
                request_id,
            )
            return
        has_body = headers.chunked or (length is not None and length > 0)
        if has_body and not is_json(headers.content_type):
            # Every body this API reads is JSON. Refusing the rest also keeps a
            # browser's cross-site form or text/plain post (sent without a CORS
            # preflight) from reaching a handler.
            given = (
                "none" if headers.content_type is None else headers.content_type.decode("latin-1")
            )
            await _refuse(
                scope,
                receive,
                send,
                415,
                f"the body must be JSON sent as Content-Type: application/json (got {given[:80]})",
                request_id,
            )
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        if length is None:
            receive = self._counting(receive)
        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)

    def _counting(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the handler's body read, so the app's HTTPException
                    # handler answers it like any other error.
                    raise BodyTooLargeError(limit)
            return message

        return counting_receive


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str, request_id: str
) -> None:
    response = JSONResponse(
        {"detail": detail, "request_id": request_id},
        status_code=status,
        # The body was not read: the connection cannot be reused for another request.
        headers={"X-Request-ID": request_id, "Connection": "close"},
    )
    await response(scope, receive, send)


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the limit of {limit} bytes")


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to records logged while a request is served; the JSON
    formatter of ``core.logs`` writes it as a field."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        # uvicorn attaches an ANSI-coloured copy of its messages for its own console
        # formatter; in JSON logs it is noise.
        record.__dict__.pop("color_message", None)
        return True
