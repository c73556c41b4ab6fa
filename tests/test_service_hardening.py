"""Service hardening (issue 15): offline docs, no server paths, killed jobs resumed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import cxnlp
from cxnlp.io.batch import classify_file
from service import Settings, create_app
from service.jobs import JOB_FILE, Job, JobRunner
from service.loading import wrap_model

KEY = "hardening-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def client(tiny_model_dir: Path, tmp_path: Path):
    settings = Settings(model=str(tiny_model_dir), api_keys=[KEY], jobs_dir=tmp_path / "jobs")
    with TestClient(create_app(settings)) as c:
        yield c


def test_docs_page_needs_no_cdn(client):
    r = client.get("/docs")
    assert r.status_code == 200
    assert "cdn" not in r.text.lower() and "https://" not in r.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/static/{asset}" in r.text
        got = client.get(f"/docs/static/{asset}")
        assert got.status_code == 200 and len(got.content) > 10_000
    assert client.get("/openapi.json").status_code == 200


def test_models_shows_no_server_paths(client, tiny_model_dir):
    r = client.get("/v1/models", headers=AUTH)
    assert r.status_code == 200
    assert str(tiny_model_dir) not in r.text and str(tiny_model_dir.parent) not in r.text
    assert r.json()["name"] == tiny_model_dir.name


def test_metrics_paths_are_cut_to_their_last_part():
    from service.loading import _without_paths

    out = _without_paths({"data": "/srv/secret/corpus", "n": 3, "x": ["C:\\data\\a.csv", "ok"]})
    assert out == {"data": "corpus", "n": 3, "x": ["a.csv", "ok"]}


class _Killed(BaseException):
    """Stands for the process dying mid-job (not an Exception: nothing catches it)."""


class _Counting:
    def __init__(self, model, die_after: int | None = None):
        self.model, self.die_after, self.texts = model, die_after, 0
        self.source_ = model.source_

    def predict(self, texts, langs=None):
        if self.die_after is not None and self.texts >= self.die_after:
            raise _Killed()
        self.texts += len(texts)
        return self.model.predict(texts, langs)


def test_killed_job_reuses_its_finished_parts_on_restart(tiny_model_dir, tmp_path):
    model = cxnlp.load(tiny_model_dir)
    jobs_dir = tmp_path / "jobs"
    folder = jobs_dir / ("a" * 32)
    folder.mkdir(parents=True)
    texts = [f"Great app number {i}" if i % 2 else f"Terrible app {i}" for i in range(10)]
    pd.DataFrame({"id": range(10), "text": texts}).to_csv(folder / "input.csv", index=False)
    job = Job(
        id="a" * 32,
        filename="reviews.csv",
        input_path=str(folder / "input.csv"),
        output_path=str(folder / "result.csv"),
        text_col="text",
        id_col="id",
        status="running",
    )
    (folder / JOB_FILE).write_text(json.dumps(job.__dict__))
    # The first run dies after two chunks of 3 rows.
    with pytest.raises(_Killed):
        classify_file(
            _Counting(model, die_after=6), job.input_path, job.output_path, chunk_rows=3,
            resume=True, progress=False,
        )  # fmt: skip
    counting = _Counting(model)
    runner = JobRunner(jobs_dir, lambda _name: wrap_model(counting), chunk_rows=3)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while runner.get(job.id).status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "the job never finished"
            time.sleep(0.02)
    finally:
        runner.close()
    done = runner.get(job.id)
    assert done.status == "succeeded", done.error
    assert counting.texts == 4  # only the rows of the chunks the killed run had not finished
    out = pd.read_csv(job.output_path)
    assert out["id"].tolist() == list(range(10)) and out["text"].tolist() == texts
    assert out["sentiment"].notna().all()
