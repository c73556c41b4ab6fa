"""What the routes depend on: the service state, the settings, the served model, the API key."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from service.batcher import MicroBatcher
from service.errors import ApiError, field_error
from service.jobs import JobRunner
from service.loading import LoadedModel
from service.metrics import ServiceMetrics
from service.sessions import LoginThrottle, Sessions
from service.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    batcher: MicroBatcher
    jobs: JobRunner
    api_keys: list[bytes]
    admin_keys: list[bytes]
    # Replaced whole by /v1/admin/reload; readers take the reference once per request.
    handle: LoadedModel | None = None
    # The adapters served beside it, by name (service.loading); replaced with it on reload.
    adapters: dict[str, LoadedModel] = field(default_factory=dict)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # The dashboard's login (service.sessions): server-side sessions, throttled failures.
    sessions: Sessions | None = None
    logins: LoginThrottle = field(default_factory=LoginThrottle)


def get_state(request: Request) -> ServiceState:
    return request.app.state.cxnlp


def get_settings(state: Annotated[ServiceState, Depends(get_state)]) -> Settings:
    return state.settings


def current_model(state: Annotated[ServiceState, Depends(get_state)]) -> LoadedModel:
    if state.handle is None:
        raise ApiError(503, "no model is loaded yet", headers={"Retry-After": "1"})
    return state.handle


def model_names(state: ServiceState) -> list[str]:
    """What a request's `model` may name: the served model, then its adapters."""
    default = [state.handle.name] if state.handle is not None else []
    return default + sorted(state.adapters)


def pick_model(
    state: ServiceState, name: str | None, loc: Sequence[Any] = ("body", "model")
) -> LoadedModel:
    """The model a request names in its `model` field (`loc`): the served model when it names
    none (or names it), else that adapter; an unknown name is a 422 listing the known ones."""
    default = current_model(state)
    if name is None or name == default.name:
        return default
    adapter = state.adapters.get(name)
    if adapter is None:
        known = model_names(state)
        message = f"unknown model {name!r}; this service serves {known}"
        raise ApiError(
            422, f"invalid request: {message}", [field_error(loc, message, "unknown_model")]
        )
    return adapter


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def key_matches(presented: str, keys: list[bytes]) -> bool:
    """Constant-time comparison against every key (no early exit that would leak which matched)."""
    candidate = presented.encode("utf-8")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key)
    return matched


_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="cxnlp"'}


def require_key(request: Request, state: Annotated[ServiceState, Depends(get_state)]) -> None:
    if not state.settings.auth:
        return
    presented = _presented_key(request)
    if presented is None:
        raise ApiError(
            401,
            "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers=_UNAUTHORIZED,
        )
    if not key_matches(presented, state.api_keys + state.admin_keys):
        raise ApiError(401, "invalid API key", headers=_UNAUTHORIZED)


def require_admin(request: Request, state: Annotated[ServiceState, Depends(get_state)]) -> None:
    if not state.settings.auth:
        return
    presented = _presented_key(request)
    if presented is None:
        raise ApiError(401, "missing admin key", headers=_UNAUTHORIZED)
    if not state.admin_keys:
        raise ApiError(403, "admin endpoints are disabled: set CXNLP_ADMIN_KEYS to enable them")
    if not key_matches(presented, state.admin_keys):
        if key_matches(presented, state.api_keys):
            raise ApiError(403, "this API key is not an admin key (CXNLP_ADMIN_KEYS)")
        raise ApiError(401, "invalid admin key", headers=_UNAUTHORIZED)


State = Annotated[ServiceState, Depends(get_state)]
CurrentModel = Annotated[LoadedModel, Depends(current_model)]
Authorized = Depends(require_key)
AdminOnly = Depends(require_admin)
