"""HTTP metrics from prometheus-fastapi-instrumentator, on the app's own registry:
``http_requests_total`` (handler, method, status class), ``http_request_duration_seconds``
(handler, method; millisecond buckets) and ``http_requests_inprogress`` (handler,
method). ``/metrics``, ``/health`` and ``/ready`` are left out.

The metrics are the instrumentator's (names, labels, help texts), recorded by a
subclass of its middleware, for two reasons measured here:

* the in-progress gauge of the instrumentator (8.1) is created on the global default
  registry whatever registry it is given (trallnag/prometheus-fastapi-instrumentator
  #317): it would be missing from our exposition, and a second app in one process
  (every test) would fail with "Duplicated timeseries". It is created on ours here;
* the stock ``__call__`` costs a large share of a scored request (the figures are
  in docs/scorer.md, "Speed"): it matches the path against every route, runs the exclusion
  regexes, and builds a Request, a Response with parsed headers, an ``Info`` and an
  ``asyncio.gather`` per request, then looks up each metric's label child. The
  ``__call__`` below keeps what our options use, resolved once per (method, path) for
  paths that are their own route template (so the cache is bounded by the app's
  routes and the parser's methods): the template, its exclusion, and the label
  children of the three metrics. Options it does not implement (latency rounding,
  body handlers, streaming-time exclusion, custom instrumentations) are not set by
  ``instrument``.

A test checks the three families and their labels in the exposition, so an upgrade
that changes the parent's internals shows up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from timeit import default_timer
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_fastapi_instrumentator.metrics import Info
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import REQUEST_LATENCY_BUCKETS

# Probes and scrapes would drown the real traffic; anchored, since these are regexes.
EXCLUDED_HANDLERS = ("^/metrics$", "^/health$", "^/ready$")


def _recorded_in_call(info: Info) -> None:
    raise NotImplementedError


@dataclass
class _Handled:
    """What the middleware records for one (method, path): its label children."""

    excluded: bool
    method: str
    handler: str
    inprogress: Any = None
    duration: Any = None
    by_status: dict[str, Any] = field(default_factory=dict)
    """Children of the request counter, by status class."""


class _InstrumentationMiddleware(PrometheusInstrumentatorMiddleware):
    def __init__(self, app: ASGIApp, /, *, registry: CollectorRegistry, **kwargs: Any) -> None:
        super().__init__(
            app,
            should_instrument_requests_inprogress=False,
            # Not called (see __call__); given so the parent does not register its
            # default metrics.
            instrumentations=(_recorded_in_call,),
            registry=registry,
            **kwargs,
        )
        self._requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ("handler", "method", "status"),
            registry=registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Duration of HTTP requests in seconds, by handler and method.",
            ("handler", "method"),
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=registry,
        )
        self._inprogress = Gauge(
            "http_requests_inprogress",
            "HTTP requests being served, by handler and method.",
            ("method", "handler"),
            registry=registry,
        )
        self._handled: dict[tuple[str, str], _Handled] = {}
        self._excluded: dict[str, bool] = {}

    def _is_handler_excluded(self, handler: str, is_templated: bool) -> bool:
        if not is_templated:  # a raw path: unbounded, never cached
            return super()._is_handler_excluded(handler, is_templated)
        excluded = self._excluded.get(handler)
        if excluded is None:
            excluded = self._excluded[handler] = super()._is_handler_excluded(handler, True)
        return excluded

    def _resolve(self, scope: Scope) -> _Handled:
        method: str = scope["method"]
        path: str = scope["path"]
        handled = self._handled.get((method, path))
        if handled is not None:
            return handled
        handler, templated = self._get_handler(Request(scope))
        handled = _Handled(self._is_handler_excluded(handler, templated), method, handler)
        if not handled.excluded:
            if not templated and self.should_group_untemplated:
                handled.handler = handler = "none"
            handled.inprogress = self._inprogress.labels(method, handler)
            handled.duration = self._duration.labels(handler, method)
        if templated and handler == path:
            # Bounded: methods are the parser's fixed set, paths the app's own routes.
            self._handled[(method, path)] = handled
        return handled

    def _counter(self, handled: _Handled, status_code: int) -> Any:
        status = str(status_code)
        if self.should_group_status_codes:
            status = status[0] + "xx"
        child = handled.by_status.get(status)
        if child is None:
            # Bounded: status classes (or codes) are few.
            child = handled.by_status[status] = self._requests.labels(
                handled.handler, handled.method, status
            )
        return child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = default_timer()
        handled = self._resolve(scope)
        if handled.excluded:
            await self.app(scope, receive, send)
            return
        inprogress = handled.inprogress
        inprogress.inc()
        status_code = 500  # what the client gets if the app raises before answering

        async def send_and_observe(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            inprogress.dec()
            self._counter(handled, status_code).inc()
            handled.duration.observe(max(default_timer() - started, 0.0))


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    app.add_middleware(
        _InstrumentationMiddleware,
        excluded_handlers=EXCLUDED_HANDLERS,
        should_group_status_codes=True,
        # A 404 on a random path is labelled handler="none", never with the path:
        # label values stay bounded whatever scanners send.
        should_group_untemplated=True,
        registry=registry,
    )
