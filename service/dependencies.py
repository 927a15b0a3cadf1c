"""Typed dependencies: a handler declares what it needs (``state: StateDep``) and never
touches ``app.state`` itself. They are ``async def`` so FastAPI calls them inline;
a plain ``def`` dependency would cost a thread-pool round trip on every request.

The two scoring endpoints call the plain functions below instead (``scorer_state``,
``serving_model``, ``request_id_of``): FastAPI spends a sizeable share of a scored
request's budget resolving even trivial dependencies (measured in docs/scorer.md,
"Speed").
"""

from __future__ import annotations

import hmac
from typing import Annotated, cast

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from service.errors import AdminDisabledError, AuthenticationError, ModelNotReadyError
from service.model_holder import LoadedModel
from service.state import ScorerState

API_KEY_HEADER = "X-API-Key"

# A declaration (it documents the scheme in OpenAPI), not state: safe at module level.
_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Admin key (SCORER_API_KEY); the admin endpoints are off when it is unset.",
)


def scorer_state(request: Request) -> ScorerState:
    return cast(ScorerState, request.app.state.scorer)


def serving_model(state: ScorerState) -> LoadedModel:
    """The model to use for this whole request (read once: a swap cannot mix versions)."""
    loaded = state.holder.current
    if loaded is None:
        error = state.holder.last_error
        raise ModelNotReadyError("no model is loaded yet" + (f": {error}" if error else ""))
    return loaded


def request_id_of(request: Request) -> str:
    """The trace id (the client's X-Request-ID, or the issued one); set by
    RequestContextMiddleware on every HTTP request."""
    return cast(str, request.scope["state"]["request_id"])


def issued_id_of(request: Request) -> str:
    """The signed id the scorer issued for this request: a prediction's id, the one
    a feedback label may be sent for; set by RequestContextMiddleware."""
    return cast(str, request.scope["state"]["issued_id"])


async def get_state(request: Request) -> ScorerState:
    return scorer_state(request)


StateDep = Annotated[ScorerState, Depends(get_state)]


async def get_model(state: StateDep) -> LoadedModel:
    return serving_model(state)


ModelDep = Annotated[LoadedModel, Depends(get_model)]


async def get_request_id(request: Request) -> str:
    return request_id_of(request)


RequestIdDep = Annotated[str, Depends(get_request_id)]


async def require_api_key(
    state: StateDep, given: Annotated[str | None, Security(_api_key_scheme)]
) -> None:
    check_api_key(state, given)


def check_api_key(state: ScorerState, given: str | None) -> None:
    expected = state.settings.api_key
    if expected is None:
        raise AdminDisabledError(
            "admin endpoints are disabled: no API key is configured (SCORER_API_KEY)"
        )
    # compare_digest takes the same time wherever the first difference is, so the
    # key cannot be guessed byte by byte from response times.
    if given is None or not hmac.compare_digest(
        given.encode("utf-8"), expected.get_secret_value().encode("utf-8")
    ):
        raise AuthenticationError(f"missing or wrong API key in the {API_KEY_HEADER} header")


AdminDep = Depends(require_api_key)


async def optional_admin(
    state: StateDep, given: Annotated[str | None, Security(_api_key_scheme)]
) -> bool:
    """True with the right key, False without one; a wrong key is still a 401."""
    if given is None:
        return False
    check_api_key(state, given)
    return True


OptionalAdminDep = Annotated[bool, Depends(optional_admin)]


async def get_issued_id(request: Request) -> str:
    return issued_id_of(request)


IssuedIdDep = Annotated[str, Depends(get_issued_id)]
