"""GET /healthz (the process answers), GET /readyz (a model is loaded), GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from service.deps import State
from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    if state.handle is None:
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"status": "ready", "model": state.handle.name})


@router.get("/metrics")
async def metrics(state: State) -> Response:
    """Prometheus text exposition."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)
