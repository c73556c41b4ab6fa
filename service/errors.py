"""Every error leaves the service as JSON, `{"error": message, "detail": [...]}`: validation
errors with the path of the field, limits with the limit, and unexpected failures as a bare 500
(the traceback goes to the log, never to the client)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cxnlp.io.validate import name_problem

logger = logging.getLogger(__name__)


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII text as UTF-8, except where a string holds a lone surrogate (an id or a
    field sent as a `\\ud800` escape): that body is written with ASCII escapes instead, so the
    client gets back exactly what it sent rather than a 500 (UTF-8 cannot encode a surrogate)."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


class ApiError(HTTPException):
    """An error with a message, optional field details and headers (Retry-After, ...)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        detail: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.message, self.fields = message, detail


def field_path(loc: Sequence[Any]) -> str:
    """`("body", "items", 3, "text")` -> `items[3].text`."""
    path = ""
    for part in loc:
        if part == "body" and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def field_error(loc: Sequence[Any], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "field": field_path(loc), "msg": msg, "type": kind}


def invalid_fields(detail: list[dict[str, Any]]) -> ApiError:
    """A 422 for field errors (`field_error`), its message naming the first, as FastAPI's own
    validation errors are answered."""
    return ApiError(422, f"invalid request: {detail[0]['field']}: {detail[0]['msg']}", detail)


def value_error(loc: Sequence[Any], exc: Exception) -> ApiError:
    """A 422 for a field whose value was refused with `exc` (a ValueError's message)."""
    return invalid_fields([field_error(loc, str(exc), "value_error")])


def checked_name(value: str, loc: Sequence[Any], what: str) -> str:
    """`value` where it can be stored or looked up (`cxnlp.io.validate.name_problem`: no NUL, no
    lone surrogate, which no database answers), else a 422 naming the field."""
    problem = name_problem(value)
    if problem is not None:
        raise invalid_fields([field_error(loc, f"{what} {problem}", "value_error")])
    return value


def _json(status: int, message: str, detail=None, headers=None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail:
        body["detail"] = detail
    return SafeJSONResponse(body, status_code=status, headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The offending input is left out on purpose: it may be a 2 MB text, or a secret.
    detail = [field_error(_loc(e), _message(e), e.get("type", "value_error")) for e in exc.errors()]
    error = invalid_fields(detail or [field_error(("body",), "invalid request", "value_error")])
    return _json(422, error.message, detail)


def _loc(error: dict[str, Any]) -> Sequence[Any]:
    # A JSON syntax error's "location" is a character offset, not a field.
    return ("body",) if error.get("type") == "json_invalid" else error.get("loc", ())


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        loc, reason = error.get("loc", ()), (error.get("ctx") or {}).get("error", "")
        where = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        return f"the body is not valid JSON{where}" + (f": {reason}" if reason else "")
    return str(error.get("msg", "invalid value")).removeprefix("Value error, ")


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc, ApiError):
        return _json(exc.status_code, exc.message, exc.fields, exc.headers)
    return _json(exc.status_code, str(exc.detail), None, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal server error; the service log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
