"""GET /v1/models (what is served) and POST /v1/admin/reload (serve another model, no restart)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from cxnlp import __version__
from service.deps import AdminOnly, Authorized, CurrentModel, State
from service.errors import ApiError
from service.loading import LoadedModel, load_adapters, load_model
from service.schemas import ModelInfo, ModelsResponse, ReloadRequest, ReloadResponse

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["models"])


def _info(handle: LoadedModel) -> ModelInfo:
    return ModelInfo(**handle.describe(), service_cxnlp_version=__version__)


def _served(handle: LoadedModel, adapters: dict[str, LoadedModel]) -> ModelsResponse:
    return ModelsResponse(
        **_info(handle).model_dump(), adapters=[_info(adapters[n]) for n in sorted(adapters)]
    )


@router.get("/models", response_model=ModelsResponse, dependencies=[Authorized])
async def models(handle: CurrentModel, state: State) -> ModelsResponse:
    """The served model (name, kind, the cxnlp version that wrote it, its metrics) and the
    adapters served beside it, which a request names in its `model` field."""
    return _served(handle, state.adapters)


def _load_all(
    name: str, adapters: dict[str, LoadedModel], custom_topics
) -> tuple[LoadedModel, dict[str, LoadedModel]]:
    """The model `name` and every adapter loaded again on its encoder (one built in code, with
    no directory, is kept as it is)."""
    new = load_model(name, custom_topics)
    directories = {n: a.path for n, a in adapters.items() if a.path}
    kept = {n: a for n, a in adapters.items() if not a.path}
    try:
        return new, {**kept, **load_adapters(directories, new, custom_topics)}
    except FileNotFoundError as exc:  # an adapter's directory is gone: not the request's 404
        raise ValueError(str(exc)) from None


@router.post("/admin/reload", response_model=ReloadResponse, dependencies=[AdminOnly])
async def reload(body: ReloadRequest, state: State) -> ReloadResponse:
    """Load another model (a name under models/ or a path) and serve it from now on, with every
    adapter loaded again on its encoder (a model they were not adapted from is refused, 422).
    Requests already accepted finish on the model they started with."""
    async with state.reload_lock:
        try:
            new, adapters = await run_in_threadpool(
                _load_all, body.model, state.adapters, state.settings.custom_topics
            )
        except FileNotFoundError as exc:  # no such model (resolve_model)
            raise ApiError(404, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any broken model is the request's fault
            # A damaged file, a config that is not a model's, a self-referencing blend, a model
            # that fails its warm-up, adapters that cannot run on it: the old models keep serving.
            logger.warning("reload of %r refused", body.model, exc_info=True)
            reason = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
            raise ApiError(
                422,
                f"cannot load model {body.model!r}: {reason[:500]}; still serving "
                f"{state.handle.name if state.handle else 'nothing'}",
            ) from None
        previous = state.handle
        # Adapters first: a request that sees the new model finds its adapters; one that still
        # sees the old model and names an adapter gets the new adapter, itself whole.
        state.adapters = adapters
        state.handle = new  # one reference swap: the next request sees the new model
    logger.info("now serving %s (was %s)", new.path, previous.path if previous else None)
    return ReloadResponse(previous=previous.name if previous else "", model=_served(new, adapters))
