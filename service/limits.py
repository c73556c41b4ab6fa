"""Request size limits: the body (from Content-Length, and counted while it is read, for
chunked uploads that send none), items per request and characters per text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ApiError, field_error

UPLOAD_PATHS = ("/v1/jobs",)


def _too_large(limit: int, setting: str) -> ApiError:
    return ApiError(
        413,
        f"the request body is larger than the limit of {limit} bytes (CXNLP_{setting}); "
        "send fewer or shorter items, or upload a file to /v1/jobs",
    )


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413: uploads to /v1/jobs get `max_upload_bytes`,
    everything else `max_body_bytes`."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes, self.max_upload_bytes = max_body_bytes, max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"].rstrip("/") in UPLOAD_PATHS
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        setting = "MAX_UPLOAD_BYTES" if upload else "MAX_BODY_BYTES"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the server rejects a malformed Content-Length itself
            if too_big:
                await self._refuse(scope, receive, send, _too_large(limit, setting))
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit, setting)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ApiError as exc:
            # Raised by counting_receive outside the app's own error handling (the app maps it
            # to a response itself when the body is read by FastAPI).
            if started or exc.status_code != 413:
                raise
            await self._refuse(scope, receive, send, exc)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
        response = JSONResponse({"error": exc.message}, status_code=413)
        await response(scope, receive, send)


def check_items(items: Sequence[Any], max_items: int) -> None:
    """413 with the limit and the field when a request has too many items. (A text over the
    character limit is a per-item error, see service.items.)"""
    if len(items) > max_items:
        raise ApiError(
            413,
            f"{len(items)} items in one request; the limit is {max_items} (CXNLP_MAX_ITEMS); "
            "split the request or upload a file to /v1/jobs",
            [field_error(("body", "items"), f"at most {max_items} items", "too_many_items")],
        )
