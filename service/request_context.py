"""Request ids: taken from a valid ``X-Request-ID`` header or made up, returned in the
``X-Request-ID`` response header, available to handlers as ``request.state.request_id``
and added to every log record emitted while the request is served.

The same middleware enforces the body size limit: a body announced (``Content-Length``)
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
from contextvars import ContextVar

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.schemas import REQUEST_ID_PATTERN

HEADER = b"x-request-id"
CONTENT_LENGTH = b"content-length"
_VALID = re.compile(REQUEST_ID_PATTERN.encode("ascii"))

# A ContextVar is per request (per asyncio task context), not shared state.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    # The same 128 random bits and 32-hex format as uuid4().hex, without building a
    # UUID object: a seventh of the cost, on every request.
    return os.urandom(16).hex()


def read_headers(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int | None]:
    """The client's request id when it is safe to log and store (else None: a new one
    is made, an invalid id is replaced rather than refused, so tracing never breaks a
    request), and the announced body length."""
    request_id: str | None = None
    length: int | None = None
    for name, value in headers:
        if name == HEADER:
            request_id = value.decode("ascii") if _VALID.fullmatch(value) else None
        elif name == CONTENT_LENGTH:
            length = int(value) if value.isdigit() else None
    return request_id, length


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id, length = read_headers(scope["headers"])
        request_id = client_id or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode("ascii"))
        if length is not None and length > self.max_body_bytes:
            response = JSONResponse(
                {
                    "detail": f"request body of {length} bytes is over the limit of "
                    f"{self.max_body_bytes} bytes",
                    "request_id": request_id,
                },
                status_code=413,
                headers={"X-Request-ID": request_id, "Connection": "close"},
            )
            await response(scope, receive, send)
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


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over the limit of {limit} bytes")


class RequestIdLogFilter(logging.Filter):
    """Adds ``request_id`` to records logged while a request is served; the JSON
    formatter of ``training.logs`` writes it as a field."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        # uvicorn attaches an ANSI-coloured copy of its messages for its own console
        # formatter; in JSON logs it is noise.
        record.__dict__.pop("color_message", None)
        return True
