"""The `serve` verb of the `cxnlp` command: run the HTTP API under uvicorn."""

from __future__ import annotations

import argparse
import os


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "serve", help="run the HTTP API (settings from CXNLP_* environment variables)"
    )
    p.add_argument("--host", help="address to bind (default $CXNLP_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default $CXNLP_PORT or 8000)")
    p.add_argument("--model", help="model name under models/ or a path (default $CXNLP_MODEL)")
    p.add_argument(
        "--adapter",
        action="append",
        metavar="NAME=DIR",
        help="also serve the model `cxnlp adapt` wrote to DIR (a name under models/ or a path) "
        'as NAME, on the served model\'s encoder; requests pick it with "model": NAME. '
        "Repeat for more (default $CXNLP_ADAPTERS, NAME=DIR pairs separated by commas)",
    )
    p.add_argument(
        "--workers", type=int, help="worker processes, each with its own model (default 1)"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from cxnlp.models.store import resolve_model
    from cxnlp.models.threads import PASSIVE_WAIT_ENV
    from service.app import check_auth
    from service.settings import Settings

    # Each worker process inherits these: OpenMP threads that sleep while they wait.
    for name, value in PASSIVE_WAIT_ENV.items():
        os.environ.setdefault(name, value)
    # The flags become environment variables so that every uvicorn worker process, which builds
    # its app from the environment, sees them.
    for name in ("host", "port", "model", "workers"):
        value = getattr(args, name)
        if value is not None:
            os.environ[f"CXNLP_{name.upper()}"] = str(value)
    if args.adapter:
        os.environ["CXNLP_ADAPTERS"] = ",".join(args.adapter)
    try:
        settings = Settings()
    except ValidationError as exc:  # e.g. an adapter that is not NAME=DIR
        raise ValueError("; ".join(e["msg"] for e in exc.errors())) from None
    # Refuse to start here, with a clear message, rather than with a traceback in each worker.
    check_auth(settings)
    resolve_model(settings.model)
    for name, directory in settings.adapters.items():
        try:
            resolve_model(directory)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"adapter {name!r}: {exc}") from None
    if settings.workers > 1:
        _multiprocess_metrics()
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # uvicorn's 5 s default kills a worker still importing torch and loading its model on a
        # busy machine, and restarts it, forever.
        timeout_worker_healthcheck=settings.worker_healthcheck_s,
        log_level=args.log_level,
    )
    return 0


def _multiprocess_metrics() -> None:
    """Point the workers' prometheus-client at one emptied directory (the user's
    PROMETHEUS_MULTIPROC_DIR, else a new temporary one, removed at exit), so that /metrics sums
    every worker, whichever answers."""
    import atexit
    import shutil
    import tempfile

    from service.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="cxnlp-metrics-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = prepare_multiprocess_dir(path)
