"""The service's settings, read from `CXNLP_*` environment variables (or passed to `create_app`).

>>> Settings(auth=False, max_batch=1).max_batch
1
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cxnlp.labels import StorePeriod

CommaList = Annotated[list[str], NoDecode]
# What an adapter may be called (the `model` field of a request): a short name, no spaces.
ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def parse_adapters(value: object) -> dict[str, str]:
    """`NAME=DIR` pairs (a comma-separated string, a list of them, or a dict) as {name: dir}.

    >>> parse_adapters("acme=models/acme, shop=/srv/shop")
    {'acme': 'models/acme', 'shop': '/srv/shop'}
    """
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        parts = value.split(",") if isinstance(value, str) else list(value or [])  # type: ignore
        pairs = []
        for part in (str(p).strip() for p in parts):
            if not part:
                continue
            name, sep, directory = part.partition("=")
            if not sep:
                raise ValueError(f"adapter {part!r} is not NAME=DIR")
            pairs.append((name.strip(), directory.strip()))
    adapters: dict[str, str] = {}
    for name, directory in pairs:
        if not ADAPTER_NAME.fullmatch(name):
            raise ValueError(
                f"adapter name {name!r} must be 1-64 letters, digits, '_', '.' or '-' (not first)"
            )
        if not directory:
            raise ValueError(f"adapter {name!r} has no directory (NAME=DIR)")
        if name in adapters:
            raise ValueError(f"adapter name {name!r} is given twice")
        adapters[name] = directory
    return adapters


class Settings(BaseSettings):
    """Every knob of the HTTP service; the environment variable is `CXNLP_` + the upper-case name."""

    model_config = SettingsConfigDict(env_prefix="CXNLP_", extra="ignore", frozen=True)

    model: str = Field("default", description="model name under the models directory, or a path")
    adapters: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="adapted models served beside `model`, on its encoder: NAME=DIR pairs, "
        "comma-separated (DIR a model made by `cxnlp adapt` from it, by name or path); a "
        "request picks one with its `model` field",
    )
    custom_topics: Path | None = Field(
        None, description="YAML file of extra topics (taxonomy format), matched without retraining"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes, each loads the model")
    worker_healthcheck_s: int = Field(
        120,
        ge=1,
        description="how long a worker may take to answer uvicorn's health check (loading the "
        "model included) before uvicorn kills and restarts it",
    )

    auth: bool = Field(True, description="require an API key; 'off' only for local use")
    api_keys: CommaList = Field(default_factory=list, description="comma-separated API keys")
    api_keys_file: Path | None = Field(None, description="file with one API key per line")
    admin_keys: CommaList = Field(
        default_factory=list, description="comma-separated keys allowed to call /v1/admin/*"
    )

    max_items: int = Field(256, ge=1, description="items per classify / analyze request")
    max_text_chars: int = Field(5000, ge=1, description="characters per text")
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="JSON request body size")
    max_upload_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="job upload size")

    max_batch: int = Field(64, ge=1, description="texts per merged model call; 1 = no merging")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a batch waits for more requests")
    queue_size: int = Field(256, ge=1, description="requests waiting for the model before 503")
    queue_texts: int = Field(
        1024, ge=1, description="texts waiting or being classified before 503 (admission by texts)"
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After sent with 503")

    jobs_dir: Path = Field(Path("cxnlp-jobs"), description="where uploaded jobs and results live")
    max_jobs_queued: int = Field(16, ge=1, description="jobs waiting to run before 503")
    job_chunk_rows: int = Field(2000, ge=1)
    job_workers: int = Field(
        2, ge=1, description="jobs run at once; the next is the oldest of the least busy key"
    )
    max_job_rows: int = Field(
        1_000_000, ge=1, description="rows per uploaded file, counted before it is queued"
    )
    max_key_rows: int = Field(
        2_000_000, ge=1, description="rows one API key may have queued or running at once"
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster (auto, ray://host:port) that classifies large job uploads; "
        "'local' starts a Ray runtime on this machine per job; unset: jobs run in the service",
    )
    ray_min_bytes: int = Field(
        64 * 1024 * 1024, ge=0, description="uploads of at least this size go to Ray"
    )
    ray_workers: int | None = Field(
        None, ge=1, description="Ray actors per job (default: all CPUs)"
    )

    database_url: str | None = Field(
        None,
        description="feedback store (SQLAlchemy URL, e.g. postgresql://user@host/db); default: "
        "the SQLite file cxnlp-feedback.sqlite in the working directory",
    )
    alert_webhook: str | None = Field(
        None,
        description="http(s) URL POSTed once per new alert of the feedback store (no redirects "
        "followed; a failed send is retried after the next write)",
    )
    alert_period: StorePeriod = Field(
        "week", description="period of the store's alerts (period over period)"
    )

    cors_origins: CommaList = Field(
        default_factory=list, description="comma-separated origins; CORS is off when empty"
    )

    azure_api: bool = Field(
        False, description="answer Azure AI Language's sentiment and language detection routes"
    )
    aws_api: bool = Field(False, description="answer AWS Comprehend's sentiment and language calls")
    aws_keys: CommaList = Field(
        default_factory=list,
        description="comma-separated ACCESS_KEY_ID:SECRET pairs AWS clients sign requests with",
    )

    @field_validator("api_keys", "admin_keys", "cors_origins", "aws_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("adapters", mode="before")
    @classmethod
    def _adapter_pairs(cls, value: object) -> object:
        return parse_adapters(value)

    @field_validator("alert_webhook")
    @classmethod
    def _http_webhook(cls, value: str | None) -> str | None:
        from cxnlp.feedback.alerts import check_webhook_url

        return check_webhook_url(value) if value else value

    def all_api_keys(self) -> list[str]:
        """The keys from `api_keys` and `api_keys_file` (blank lines and `#` comments skipped)."""
        keys = list(self.api_keys)
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ValueError(
                    f"CXNLP_API_KEYS_FILE={self.api_keys_file} cannot be read ({exc}); "
                    "fix the path or unset it"
                ) from exc
            keys += [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
        return keys
