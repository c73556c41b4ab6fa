"""Tests for the Ray engine (cxnlp.io.ray_engine): the partitions read exactly the local engine's
chunks, and a real local Ray (2 CPUs) gives byte for byte the local engine's output, survives a
killed actor and resumes an interrupted job without losing or redoing a partition."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ci_parts import require_module

from cxnlp.io import iter_table, read_table
from cxnlp.io.batch import classify_file
from cxnlp.io.ray_engine import (
    RAY_INSTALL,
    Partition,
    plan_job,
    read_partition,
    resolve_inputs,
    start_local_ray,
)

# A mixed Persian / Arabic / English export with the rows that go wrong: empty and blank texts,
# a missing text, commas, quotes, an inch mark inside an unquoted field, a newline in a quoted
# field, Persian letters Windows-1256 has.
TEXTS = [
    "غذا خیلی خوشمزه بود و به موقع رسید",
    "الخدمة ممتازة والتوصيل سريع",
    "Great app, fast delivery, love it",
    "",
    "پیک یک ساعت دیر رسید\nو غذا سرد بود",
    "   ",
    'The 5" screen broke after a week',
    'He said "never again", and left',
    "التطبيق بطيء ويتوقف دائما",
    None,
    "کیفیت گوشی عالیه، راضیم",
    "The store opens at nine",
    "ژاکت را چگونه پس بدهم؟",
    "وصل الطلب متأخرا وباردا",
    "Terrible service; the courier was rude",
    "سفارش را دیروز ثبت کردم",
    "The package was delivered today",
]
BAD = {3, 5, 9}


def _csv_text(delimiter: str = ",", newline: str = "\n") -> str:
    """The export as CSV text, written by hand: blank and whitespace-only lines between rows
    (pandas skips them), an unquoted inch mark, a quoted newline."""
    lines = [delimiter.join(["created_at", "channel", "rating", "text"])]
    for i, text in enumerate(TEXTS):
        if text is None:
            # A short row: no text field at all.
            lines.append(delimiter.join([f"2026-09-{i + 1:02d}", "app", str(i % 5)]))
            continue
        cell = text
        if any(c in text for c in (delimiter, "\n", ",")) or text.startswith("He said"):
            cell = '"' + text.replace('"', '""') + '"'
        lines.append(delimiter.join([f"2026-09-{i + 1:02d}", "web" if i % 3 else "", "", cell]))
        if i == 2:
            lines.append("")
        if i == 6:
            lines.append("  ")
    return newline.join(lines) + newline


def _records() -> list[dict]:
    rows = []
    for i, text in enumerate(TEXTS):
        row: dict = {"created_at": f"2026-09-{i + 1:02d}", "channel": "web" if i % 3 else None}
        # An int column with a null in some chunks only: pandas types it per chunk.
        row["rating"] = None if i in (4, 11) else i % 5
        if text is not None:
            row["text"] = text
        rows.append(row)
    return rows


def write_export(path: Path, kind: str) -> Path:
    if kind.startswith("csv"):
        encoding, delimiter, newline = {
            # (cxnlp.io.detect_delimiter takes a ; or tab file with CRLF lines for a comma one.)
            "csv": ("utf-8", ",", "\r\n"),
            "csv-cp1256": ("cp1256", ";", "\n"),
            "csv-utf16": ("utf-16", "\t", "\n"),
            "csv-bom": ("utf-8-sig", ",", "\r"),
        }[kind]
        text = _csv_text(delimiter, newline)
        if encoding == "cp1256":  # it has the Arabic forms of Persian yeh and kaf only
            text = text.replace("ی", "ي").replace("ک", "ك")
        path.write_bytes(text.encode(encoding))
    elif kind == "jsonl":
        lines = [json.dumps(r, ensure_ascii=False) for r in _records()]
        lines.insert(5, "")  # a blank line: no row, but a line of its chunk
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "parquet":
        frame = pd.DataFrame(_records())
        frame["rating"] = frame["rating"].astype("Int64")
        frame.to_parquet(path, index=False, row_group_size=5)
    else:
        pd.DataFrame(_records()).to_excel(path, index=False)
    return path


SUFFIX = {"jsonl": ".jsonl", "parquet": ".parquet", "xlsx": ".xlsx"}


# --------------------------------------------------------------------------------------------
# Planning and reading partitions (no Ray needed)


@pytest.mark.parametrize(
    "kind", ["csv", "csv-cp1256", "csv-utf16", "csv-bom", "jsonl", "parquet", "xlsx"]
)
@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 100])
def test_partitions_are_the_local_chunks(tmp_path: Path, kind: str, chunk_rows: int) -> None:
    path = write_export(tmp_path / f"export{SUFFIX.get(kind, '.csv')}", kind)
    plan = plan_job([path], chunk_rows, "text")
    chunks = list(iter_table(path, chunk_rows=chunk_rows))
    assert len(plan.partitions) == len(chunks)
    offset = 0
    for part, chunk in zip(plan.partitions, chunks, strict=True):
        assert part.offset == offset
        got = read_partition(plan.files[0], part, chunk_rows)
        pd.testing.assert_frame_equal(got, chunk.reset_index(drop=True), check_exact=True)
        offset += len(chunk)
    assert plan.rows == len(TEXTS)


def test_a_header_only_csv_is_one_empty_partition(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("id,text\n", encoding="utf-8")
    plan = plan_job([path], 10, "text")
    assert [p.rows for p in plan.partitions] == [0]
    assert list(read_partition(plan.files[0], plan.partitions[0], 10).columns) == ["id", "text"]


def test_a_missing_text_column_fails_at_the_header(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    # The header is read before the rest: a broken rest of the file is never reached.
    path.write_bytes(b"id,review\n1,ok\n" + b"2,\xff\xfe broken\n")
    with pytest.raises(KeyError, match=r"has no text column 'text'.*\['id', 'review'\]"):
        plan_job([path], 10, "text")


def test_a_wrongly_planned_partition_is_an_error_not_lost_rows(tmp_path: Path) -> None:
    path = write_export(tmp_path / "export.csv", "csv")
    plan = plan_job([path], 4, "text")
    part = plan.partitions[1]
    wrong = Partition(part.index, part.file, part.start, part.end, part.rows + 1, part.offset)
    with pytest.raises(ValueError, match="planned with 5 rows but reads as 4"):
        read_partition(plan.files[0], wrong, 4)


def test_inputs_from_a_directory_or_a_glob(tmp_path: Path) -> None:
    for name in ("b.csv", "a.jsonl", "notes.md", ".hidden.csv"):
        (tmp_path / name).write_text("text\nx\n", encoding="utf-8")
    assert [p.name for p in resolve_inputs(tmp_path)] == ["a.jsonl", "b.csv"]
    assert [p.name for p in resolve_inputs(tmp_path, exclude=[tmp_path / "b.csv"])] == ["a.jsonl"]
    assert [p.name for p in resolve_inputs(str(tmp_path / "*.csv"))] == ["b.csv"]
    with pytest.raises(ValueError, match="unsupported file type '.md'"):
        resolve_inputs(str(tmp_path / "*"))
    with pytest.raises(FileNotFoundError, match="no input files"):
        resolve_inputs(str(tmp_path / "*.parquet"))
    with pytest.raises(FileNotFoundError, match="input file not found"):
        resolve_inputs(tmp_path / "nope.csv")


def test_files_with_different_columns_cannot_share_an_output(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,text\n1,x\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("text,id\nx,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must have the same columns"):
        plan_job(resolve_inputs(tmp_path), 10, "text")


def test_without_ray_the_error_names_the_install_command(
    tiny_fast_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_export(tmp_path / "export.csv", "csv")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[ray\]"') as info:
        classify_file(tiny_fast_model, path, tmp_path / "out.csv", engine="ray", progress=False)
    assert RAY_INSTALL in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]


def test_cli_without_ray_names_the_install_command(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from cxnlp.cli import main

    path = write_export(tmp_path / "export.csv", "csv")
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = ["classify", str(path), "-o", str(tmp_path / "out.csv"), "--model", str(tiny_model_dir)]
    assert main([*argv, "--engine", "ray", "--workers", "2", "-q"]) == 2
    assert f"install it with: {RAY_INSTALL}" in capsys.readouterr().err
    assert main([*argv, "--workers", "2", "-q"]) == 2
    assert "options of engine='ray' only" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]


def test_unknown_engine_and_ray_options_without_ray_engine(tiny_fast_model, tmp_path: Path) -> None:
    path = write_export(tmp_path / "export.csv", "csv")
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        classify_file(tiny_fast_model, path, tmp_path / "o.csv", engine="spark")
    with pytest.raises(ValueError, match=r"\['workers'\] are options of engine='ray' only"):
        classify_file(tiny_fast_model, path, tmp_path / "o.csv", workers=2)


# --------------------------------------------------------------------------------------------
# On a real local Ray


@pytest.fixture(scope="module")
def ray_runtime():
    """One local Ray with 2 CPUs for the module. Its workers import this checkout's cxnlp (as the
    engine arranges when it starts Ray itself) and the model wrappers defined here."""
    ray = require_module("ray", 'pip install -e ".[ray]" (the test extra includes it)')
    # Ray nices its workers (15): on a busy shared machine that starves them for minutes.
    os.environ.setdefault("RAY_worker_niceness", "0")
    root = Path(__file__).resolve().parent.parent
    start_local_ray(ray, 2, {"env_vars": {"PYTHONPATH": str(root)}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


class DiesOnce:
    """A model whose process dies (os._exit, as a killed or OOM-killed worker) the first time it
    is given `trigger`; `marker` records that it did, across the actor's restart."""

    def __init__(self, model, trigger: str, marker: Path) -> None:
        self.model, self.trigger, self.marker = model, trigger, str(marker)

    def predict(self, texts, langs=None):
        if self.trigger in texts and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.model.predict(texts, langs)


class Stop(BaseException):
    """Not an Exception: classify_frame does not turn it into row errors; it fails the job."""


class StopsOn:
    def __init__(self, model, trigger: str) -> None:
        self.model, self.trigger = model, trigger

    def predict(self, texts, langs=None):
        if self.trigger in texts:
            raise Stop(f"stopped at {self.trigger!r}")
        return self.model.predict(texts, langs)


class NotInThisProcess:
    """A model that refuses to classify in the process that made it: proof a job ran on Ray."""

    def __init__(self, model) -> None:
        self.model, self.pid = model, os.getpid()

    def predict(self, texts, langs=None):
        if os.getpid() == self.pid:
            raise RuntimeError("classified in the service process, not on Ray")
        return self.model.predict(texts, langs)


def _local_and_ray(model, source: Path, suffix: str, tmp_path: Path, **options):
    local, remote = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
    classify_file(model, source, local, chunk_rows=4, progress=False)
    stats = classify_file(
        model, source, remote, chunk_rows=4, progress=False, engine="ray", **options
    )
    return local, remote, stats


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_same_output_as_the_local_engine(
    ray_runtime, tiny_fast_model, tmp_path: Path, kind: str
) -> None:
    suffix = SUFFIX.get(kind, ".csv")
    source = write_export(tmp_path / f"export{suffix}", kind)
    local, remote, stats = _local_and_ray(tiny_fast_model, source, suffix, tmp_path, workers=2)
    assert remote.read_bytes() == local.read_bytes()
    assert (stats.rows, stats.errors, stats.partitions, stats.workers) == (len(TEXTS), 3, 5, 2)
    out = read_table(remote)
    assert [int(i) for i in out["id"]] == list(range(1, len(TEXTS) + 1))
    assert set(np.flatnonzero(out["error"].fillna("").ne(""))) == BAD
    assert out["sentiment"].fillna("").ne("").sum() == len(TEXTS) - len(BAD)
    # Nothing but the input and the outputs is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [source.name, local.name, remote.name]
    )


def test_a_directory_of_exports_into_a_parquet_dataset(
    ray_runtime, tiny_fast_model, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    exports = tmp_path / "exports"
    exports.mkdir()
    first = write_export(exports / "a.csv", "csv")
    second = write_export(exports / "b.csv", "csv-cp1256")
    out = tmp_path / "labeled"
    stats = classify_file(
        tiny_fast_model,
        exports,
        out,
        chunk_rows=4,
        progress=False,
        engine="ray",
        output_format="parquet",
        workers=2,
    )
    assert (stats.rows, stats.partitions, stats.encoding) == (2 * len(TEXTS), 10, "utf-8, cp1256")
    parts = sorted(p.name for p in out.iterdir())
    assert parts == [f"part-{i:06d}.parquet" for i in range(10)]
    # One schema for every part: the dataset reads as one table...
    assert len({pq.read_schema(out / p) for p in parts}) == 1
    # ...which is what the local engine gives for each file, the second file's ids following on.
    expected = []
    for number, source in enumerate([first, second]):
        local = tmp_path / f"local-{number}.parquet"
        classify_file(tiny_fast_model, source, local, chunk_rows=4, progress=False)
        frame = pd.read_parquet(local)
        frame["id"] += number * len(TEXTS)
        expected.append(frame)
    pd.testing.assert_frame_equal(
        pq.read_table(out).to_pandas(), pd.concat(expected, ignore_index=True), check_exact=True
    )
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("local-")) == [
        "exports",
        "labeled",
    ]


def test_a_killed_actor_is_restarted_and_nothing_is_lost(
    ray_runtime, tiny_fast_model, tmp_path: Path
) -> None:
    source = write_export(tmp_path / "export.csv", "csv")
    marker = tmp_path / "died"
    local, remote = tmp_path / "local.csv", tmp_path / "ray.csv"
    classify_file(tiny_fast_model, source, local, chunk_rows=4, progress=False)
    model = DiesOnce(tiny_fast_model, TEXTS[10], marker)  # in the third partition
    stats = classify_file(
        model, source, remote, chunk_rows=4, progress=False, engine="ray", workers=2
    )
    assert marker.exists(), "the actor did not die: the test tests nothing"
    assert int(marker.read_text()) != os.getpid()
    assert remote.read_bytes() == local.read_bytes()
    assert stats.rows == len(TEXTS)


def test_an_interrupted_job_resumes_without_redoing_parts(
    ray_runtime, tiny_fast_model, tmp_path: Path
) -> None:
    source = write_export(tmp_path / "export.jsonl", "jsonl")
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    classify_file(tiny_fast_model, source, local, chunk_rows=4, progress=False)
    # The last partition stops the job; the others are written as they finish.
    with pytest.raises(Exception, match="stopped at"):
        classify_file(
            StopsOn(tiny_fast_model, TEXTS[16]),
            source,
            remote,
            chunk_rows=4,
            progress=False,
            engine="ray",
            workers=1,
        )
    assert not remote.exists()
    work = tmp_path / "ray.jsonl.parts"
    kept = {p.name: p.stat().st_mtime_ns for p in work.glob("part-*.parquet")}
    assert 0 < len(kept) < 5 and "part-000004.parquet" not in kept
    stats = classify_file(
        tiny_fast_model,
        source,
        remote,
        chunk_rows=4,
        progress=False,
        engine="ray",
        workers=1,
        resume=True,
    )
    assert (stats.partitions, stats.partitions_reused) == (5, len(kept))
    assert remote.read_bytes() == local.read_bytes()
    assert not work.exists()


def test_service_jobs_hand_large_uploads_to_ray(ray_runtime, tiny_fast_model, tmp_path: Path):
    from fastapi.testclient import TestClient

    from service import Settings, create_app

    source = write_export(tmp_path / "export.csv", "csv")
    local = tmp_path / "local.csv"
    classify_file(tiny_fast_model, source, local, chunk_rows=4, progress=False)
    settings = Settings(
        auth=False,
        jobs_dir=tmp_path / "jobs",
        job_chunk_rows=4,
        # This process's Ray runtime is the cluster; uploads from 100 bytes on go to it.
        ray_address="auto",
        ray_min_bytes=100,
        ray_workers=2,
    )
    with TestClient(create_app(settings, model=NotInThisProcess(tiny_fast_model))) as client:
        files = {"file": ("export.csv", source.read_bytes(), "text/csv")}
        job = client.post("/v1/jobs", files=files).json()
        deadline = time.monotonic() + 600
        while (info := client.get(f"/v1/jobs/{job['id']}").json())["status"] in (
            "queued",
            "running",
        ):
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.2)
        result = client.get(f"/v1/jobs/{job['id']}/result")
    assert info["status"] == "succeeded", info
    assert (info["rows"], info["rows_done"], info["errors"]) == (len(TEXTS), len(TEXTS), 3)
    assert result.content == local.read_bytes()
