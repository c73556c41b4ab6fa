"""The FastAPI application: `create_app(settings)` builds it; the model is loaded once, in the
lifespan handler, and the micro-batcher and job runner threads live as long as the app.

>>> from service import Settings, create_app
>>> app = create_app(Settings(auth=False))
>>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1/"))[:2]
['/v1/admin/reload', '/v1/analyze']
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from cxnlp import __version__
from service import docs, errors
from service.batcher import MicroBatcher
from service.deps import ServiceState, pick_model
from service.feedback import StoreHolder, store_job
from service.jobs import JobRunner
from service.limits import BodyLimitMiddleware
from service.loading import LoadedModel, load_adapters, load_model, wrap_model
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.routers import (
    aws,
    azure,
    cases,
    classify,
    dashboard,
    health,
    jobs,
    models,
    stats,
)
from service.routers.dashboard import SESSION_SECONDS
from service.sessions import SESSIONS_DIR, Sessions
from service.settings import Settings

logger = logging.getLogger(__name__)


def check_auth(settings: Settings) -> tuple[list[bytes], list[bytes]]:
    """The API and admin keys; refuses auth without keys, which would lock every client out."""
    keys = [k.encode("utf-8") for k in settings.all_api_keys()]
    admin = [k.encode("utf-8") for k in settings.admin_keys]
    if settings.auth and not keys and not admin:
        raise ValueError(
            "API-key auth is on but no keys are configured: set CXNLP_API_KEYS=key1,key2 or "
            "CXNLP_API_KEYS_FILE=/path/to/keys (one per line), or CXNLP_AUTH=off for local use only"
        )
    if settings.aws_api:
        aws.access_keys(settings)  # refuses CXNLP_AWS_API=on without valid key pairs
    return keys, admin


def create_app(
    settings: Settings | None = None,
    model: Any | None = None,
    adapters: dict[str, Any] | None = None,
) -> FastAPI:
    """The service app. `settings` default to the `CXNLP_*` environment; `model` (a model object
    or a `LoadedModel`) replaces loading `settings.model`, and `adapters` ({name: model object or
    `LoadedModel`}) loading `settings.adapters`, for tests and notebooks."""
    settings = settings or Settings()
    api_keys, admin_keys = check_auth(settings)
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if model is None:
            from cxnlp.models.threads import configure_threads

            # Each worker process takes its share of the cores, not all of them.
            configure_threads(workers=settings.workers)
            handle = await asyncio.to_thread(load_model, settings.model, settings.custom_topics)
        else:
            handle = model if isinstance(model, LoadedModel) else wrap_model(model)
        if adapters is None:
            served = await asyncio.to_thread(
                load_adapters, settings.adapters, handle, settings.custom_topics
            )
        else:
            served = {
                name: a if isinstance(a, LoadedModel) else wrap_model(a, name, handle.name)
                for name, a in adapters.items()
            }
        batcher = MicroBatcher(
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            queue_size=settings.queue_size,
            max_texts=settings.queue_texts,
            metrics=metrics,
        )
        # The feedback store: opened now when configured, else on first use (the SQLite default).
        app.state.feedback = StoreHolder(settings.database_url)
        if settings.database_url:
            await asyncio.to_thread(app.state.feedback.get)
        runner = JobRunner(
            settings.jobs_dir,
            lambda name: pick_model(app.state.cxnlp, name),
            max_queued=settings.max_jobs_queued,
            chunk_rows=settings.job_chunk_rows,
            store_result=lambda job: store_job(app.state.feedback, job, settings),
            ray_address=settings.ray_address,
            ray_min_bytes=settings.ray_min_bytes,
            ray_workers=settings.ray_workers,
            workers=settings.job_workers,
        )
        state = ServiceState(settings, metrics, batcher, runner, api_keys, admin_keys, handle)
        state.adapters = served
        state.sessions = Sessions(settings.jobs_dir / SESSIONS_DIR, SESSION_SECONDS)
        app.state.cxnlp = state  # before the job runner starts: it may resume a job at once
        batcher.start()
        state.jobs.start()
        logger.info("serving %s (%s); adapters %s", handle.name, handle.kind, sorted(served))
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.close)
            await asyncio.to_thread(state.jobs.close)
            await asyncio.to_thread(app.state.feedback.close)
            metrics.close()

    app = FastAPI(
        title="cxnlp",
        version=__version__,
        summary="Sentiment, language and topics of customer feedback in Persian, Arabic, English.",
        lifespan=lifespan,
        default_response_class=errors.SafeJSONResponse,
        # /docs is served from local files (service.docs): the default pulls Swagger from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    docs.install(app)
    metrics.add_gauge(
        "cxnlp_queue_depth", "Requests waiting for the model.", lambda: _read(app, "depth")
    )
    metrics.add_gauge("cxnlp_jobs_queued", "Jobs waiting to run.", lambda: _read(app, "queued"))
    routers = (
        classify.router,
        jobs.router,
        models.router,
        stats.router,
        cases.router,
        dashboard.router,
    )
    for router in (*routers, health.router):
        app.include_router(router)
    if settings.azure_api:
        app.include_router(azure.router)
    if settings.aws_api:
        app.include_router(aws.router)
    # Added last = outermost: metrics see every response, including the 413s of the body limit.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _read(app: FastAPI, gauge: str) -> float:
    state = getattr(app.state, "cxnlp", None)
    if state is None:
        return 0
    return state.batcher.depth if gauge == "depth" else state.jobs.queued
