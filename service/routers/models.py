"""GET /v1/models (what is served) and POST /v1/admin/reload (serve another model, no restart)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from cxnlp import __version__
from service.deps import AdminOnly, Authorized, CurrentModel, State
from service.errors import ApiError
from service.loading import LoadedModel, load_model
from service.schemas import ModelInfo, ReloadRequest, ReloadResponse

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["models"])


def _info(handle: LoadedModel) -> ModelInfo:
    return ModelInfo(**handle.describe(), service_cxnlp_version=__version__)


@router.get("/models", response_model=ModelInfo, dependencies=[Authorized])
async def models(handle: CurrentModel) -> ModelInfo:
    """The served model: name, path, kind, the cxnlp version that wrote it, its metrics."""
    return _info(handle)


@router.post("/admin/reload", response_model=ReloadResponse, dependencies=[AdminOnly])
async def reload(body: ReloadRequest, state: State) -> ReloadResponse:
    """Load another model (a name under models/ or a path) and serve it from now on. Requests
    already accepted finish on the model they started with."""
    async with state.reload_lock:
        try:
            new = await run_in_threadpool(load_model, body.model, state.settings.custom_topics)
        except FileNotFoundError as exc:  # no such model (resolve_model)
            raise ApiError(404, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any broken model is the request's fault
            # A damaged file, a config that is not a model's, a self-referencing blend, a model
            # that fails its warm-up: the old model keeps serving.
            logger.warning("reload of %r refused", body.model, exc_info=True)
            reason = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            raise ApiError(
                422,
                f"cannot load model {body.model!r}: {reason[:500]}; still serving "
                f"{state.handle.name if state.handle else 'nothing'}",
            ) from None
        previous = state.handle
        state.handle = new  # one reference swap: the next request sees the new model
    logger.info("now serving %s (was %s)", new.path, previous.path if previous else None)
    return ReloadResponse(previous=previous.name if previous else "", model=_info(new))
