"""HTTP metrics from prometheus-fastapi-instrumentator, on the app's own registry:
``http_requests_total`` (handler, method, status class), ``http_request_duration_seconds``
(handler, method; millisecond buckets) and ``http_requests_inprogress`` (handler,
method). ``/metrics``, ``/health`` and ``/ready`` are left out.

The metrics are the instrumentator's own (``metrics.requests``, ``metrics.latency``),
recorded by a subclass of its middleware, for two reasons measured here:

* the in-progress gauge of the instrumentator (8.1) is created on the global default
  registry whatever registry it is given (trallnag/prometheus-fastapi-instrumentator
  #317): it would be missing from our exposition, and a second app in one process
  (every test) would fail with "Duplicated timeseries". It is created on ours here;
* the stock ``__call__`` costs a large share of a scored request (the figures are
  in docs/scorer.md, "Speed"): it matches the path against every route, runs the exclusion
  regexes, and builds a Request, a Response with parsed headers and an
  ``asyncio.gather`` per request. The ``__call__`` below keeps what our options
  use: the route template is resolved once per path (only for paths that are their
  own template, so the cache is bounded by the app's routes), exclusions once per
  template, label children of the in-progress gauge once per (method, handler).
  Options it does not implement (latency rounding, body handlers, streaming-time
  exclusion, async instrumentations) are not set by ``instrument``.

A test checks the three families and their labels in the exposition, so an upgrade
that changes the parent's internals shows up.
"""

from __future__ import annotations

from timeit import default_timer
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge
from prometheus_fastapi_instrumentator import metrics
from prometheus_fastapi_instrumentator.middleware import PrometheusInstrumentatorMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import REQUEST_LATENCY_BUCKETS

# Probes and scrapes would drown the real traffic; anchored, since these are regexes.
EXCLUDED_HANDLERS = ("^/metrics$", "^/health$", "^/ready$")


class _InstrumentationMiddleware(PrometheusInstrumentatorMiddleware):
    def __init__(
        self, app: ASGIApp, /, *, inprogress_registry: CollectorRegistry, **kwargs: Any
    ) -> None:
        super().__init__(app, should_instrument_requests_inprogress=False, **kwargs)
        self._inprogress = Gauge(
            "http_requests_inprogress",
            "HTTP requests being served, by handler and method.",
            ("method", "handler"),
            registry=inprogress_registry,
        )
        self._static_paths: set[str] = set()
        self._excluded: dict[str, bool] = {}
        self._inprogress_children: dict[tuple[str, str], Any] = {}

    def _get_handler(self, request: Request) -> tuple[str, bool]:
        path: str = request.scope["path"]
        if path in self._static_paths:
            return path, True
        handler, templated = super()._get_handler(request)
        if templated and handler == path:
            self._static_paths.add(path)
        return handler, templated

    def _is_handler_excluded(self, handler: str, is_templated: bool) -> bool:
        if not is_templated:  # a raw path: unbounded, never cached
            return super()._is_handler_excluded(handler, is_templated)
        excluded = self._excluded.get(handler)
        if excluded is None:
            excluded = self._excluded[handler] = super()._is_handler_excluded(handler, True)
        return excluded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = default_timer()
        request = Request(scope)
        handler, templated = self._get_handler(request)
        if self._is_handler_excluded(handler, templated):
            await self.app(scope, receive, send)
            return
        if not templated and self.should_group_untemplated:
            handler = "none"
        method = request.method
        key = (method, handler)
        inprogress = self._inprogress_children.get(key)
        if inprogress is None:
            # Bounded: methods are the parser's fixed set, handlers the templates + "none".
            inprogress = self._inprogress_children[key] = self._inprogress.labels(method, handler)
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
            status = str(status_code)
            if self.should_group_status_codes:
                status = status[0] + "xx"
            info = metrics.Info(
                request=request,
                response=None,
                method=method,
                modified_handler=handler,
                modified_status=status,
                modified_duration=max(default_timer() - started, 0.0),
            )
            for instrumentation in self.instrumentations:
                instrumentation(info)


def instrument(app: FastAPI, registry: CollectorRegistry) -> None:
    instrumentations = [
        metrics.requests(registry=registry),
        metrics.latency(
            metric_doc="Duration of HTTP requests in seconds, by handler and method.",
            should_include_status=False,
            buckets=REQUEST_LATENCY_BUCKETS,
            registry=registry,
        ),
    ]
    app.add_middleware(
        _InstrumentationMiddleware,
        inprogress_registry=registry,
        instrumentations=[i for i in instrumentations if i is not None],
        excluded_handlers=EXCLUDED_HANDLERS,
        should_group_status_codes=True,
        # A 404 on a random path is labelled handler="none", never with the path:
        # label values stay bounded whatever scanners send.
        should_group_untemplated=True,
        registry=registry,
    )
