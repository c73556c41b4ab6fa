"""The HTML report and the `cxnlp report` verb."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxnlp.cli import main
from cxnlp.io.tables import write_table
from cxnlp.labels import SENTIMENTS
from cxnlp.report.html import render_html, trend_chart
from cxnlp.report.summary import summarize

SCRIPT = "<script>alert('x')</script>"
VOID = {"meta", "br", "img", "hr", "input", "link"}


class TagBalance(HTMLParser):
    """Records unclosed or mismatched tags and the `dir` attribute of every element."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.mismatched: list[str] = []
        self.dirs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.dirs += [v for k, v in attrs if k == "dir"]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.dirs += [v for k, v in attrs if k == "dir"]

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.mismatched.append(tag)


def classified_export(n_per_week: int = 60, seed: int = 0) -> pd.DataFrame:
    """A classified export over four weeks, in three languages, with topics and NPS scores."""
    rng = np.random.default_rng(seed)
    rows = []
    texts = {"fa": "پیک خیلی دیر رسید", "ar": "الخدمة سيئة جدا", "en": SCRIPT}
    for week, start in enumerate(pd.date_range("2026-03-02", periods=4, freq="7D")):
        for i in range(n_per_week):
            lang = ("fa", "ar", "en")[i % 3]
            sentiment = rng.choice(SENTIMENTS, p=[0.2 + 0.1 * week, 0.2, 0.6 - 0.1 * week])
            p = {f"p_{s}": 0.7 if s == sentiment else 0.15 for s in SENTIMENTS}
            topic = "ارسال" if i % 4 == 0 else "price"
            rows.append(
                {
                    "id": f"r{week}-{i}",
                    "created_at": (start + pd.Timedelta(days=i % 7)).date().isoformat(),
                    "channel": "اپلیکیشن" if i % 2 else "وب",
                    "product": "غذا",
                    "text": texts[lang],
                    "score": int(rng.integers(0, 11)),
                    "sentiment": sentiment,
                    **p,
                    "confidence": 0.7,
                    "lang": lang,
                    "topics": json.dumps(
                        [{"topic": topic, "polarity": sentiment, "score": 0.8}], ensure_ascii=False
                    ),
                    "error": None,
                }
            )
    rows.append({"id": "bad", "text": "", "error": "empty text", "created_at": "2026-03-03"})
    return pd.DataFrame(rows)


def fake_model_dir(path: Path, confusion: dict | None) -> Path:
    """A directory `cxnlp.models.store.resolve_model` accepts; the report only reads its confusion."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"kind": "fast"}))
    if confusion is not None:
        (path / "dev_confusion.json").write_text(json.dumps(confusion))
    return path


CONFUSION = {
    "*": [[80, 15, 5], [10, 80, 10], [5, 15, 80]],
    "fa": [[70, 20, 10], [10, 80, 10], [5, 10, 85]],
}


# --- HTML -------------------------------------------------------------------------------------


def test_report_html_is_balanced_escapes_text_and_marks_direction():
    summary = summarize(
        classified_export(),
        group_by=["channel", "product"],
        date_col="created_at",
        score_col="score",
        score_kind="nps",
        confusion=CONFUSION,
    )
    page = render_html(summary, title="گزارش <b>")
    assert SCRIPT not in page and "<script" not in page
    # Jinja2's autoescape (markupsafe) writes ' as &#39; where html.escape wrote &#x27;.
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<svg" in page and "<rect" in page and "<polyline" in page
    assert '<meta charset="utf-8">' in page
    assert "اپلیکیشن" in page and "ارسال" in page and "گزارش &lt;b&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")  # no outside assets
    parser = TagBalance()
    parser.feed(page)
    assert parser.stack == [] and parser.mismatched == []
    assert parser.dirs.count("auto") >= 5 and "ltr" in parser.dirs
    # Every Persian group name sits in an element whose direction follows its text.
    assert '<th scope="row" dir="auto">اپلیکیشن</th>' in page


def test_trend_chart_has_a_column_per_period_and_is_empty_without_periods():
    summary = summarize(classified_export(), date_col="created_at")
    svg = trend_chart(summary)
    assert svg.startswith("<svg") and svg.count("<rect") == 4 * len(SENTIMENTS)
    assert trend_chart(summarize(classified_export())) == ""


# --- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def export_csv(tmp_path: Path) -> Path:
    path = tmp_path / "classified.csv"
    write_table(classified_export(), path)
    return path


def test_cli_report_writes_json_and_html(tmp_path, export_csv, capsys):
    model = fake_model_dir(tmp_path / "model", CONFUSION)
    out_json, out_html = tmp_path / "report.json", tmp_path / "report.html"
    code = main(
        [
            "report",
            str(export_csv),
            "--group-by",
            "channel,product",
            "--date-col",
            "created_at",
            "--period",
            "week",
            "--score-col",
            "score",
            "--score-kind",
            "nps",
            "--model",
            str(model),
            "--dev-acc",
            "--json",
            str(out_json),
            "--html",
            str(out_html),
        ]
    )
    assert code == 0
    summary = json.loads(out_json.read_text(encoding="utf-8"))
    assert (summary["rows"], summary["errors"]) == (241, 1)
    assert set(summary["by_group"]) == {"channel", "product"}
    assert len(summary["by_period"]) == 4
    assert summary["overall"]["acc"]["matrix_rows"] == {"fa": 80, "*": 160}
    assert summary["scores"]["kind"] == "nps"
    assert summary["alerts"]["current"] == summary["by_period"][-1]["period"]
    page = out_html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "wrote" in capsys.readouterr().err


def test_cli_report_notes_that_acc_is_omitted_without_a_confusion_file(tmp_path, export_csv):
    model = fake_model_dir(tmp_path / "model", None)
    out_json = tmp_path / "r.json"
    args = ["report", str(export_csv), "--model", str(model), "--dev-acc", "--json", str(out_json)]
    assert main(args) == 0
    summary = json.loads(out_json.read_text(encoding="utf-8"))
    assert "acc" not in summary["overall"]
    assert any("has no dev_confusion.json" in n for n in summary["notes"])


def test_cli_report_leads_with_raw_shares_not_the_dev_matrix_acc(tmp_path, export_csv):
    # Issue 15: the dev-matrix ACC was worse than raw on a real export; it is opt-in now, and
    # the dashed "corrected" trend line is drawn only from a labeled sample.
    model = fake_model_dir(tmp_path / "model", CONFUSION)
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    args = ["report", str(export_csv), "--model", str(model), "--date-col", "created_at"]
    assert main([*args, "--json", str(out_json), "--html", str(out_html)]) == 0
    summary = json.loads(out_json.read_text(encoding="utf-8"))
    assert "acc" not in summary["overall"] and summary["overall"]["raw"]["ci95"]
    assert any("--dev-acc" in n for n in summary["notes"])
    assert "stroke-dasharray" not in out_html.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group-by", "region"], r"missing column\(s\) \['region'\]"),
        (["--period", "week"], "needs a date column"),
        (["--score-col", "score"], "score_col and score_kind go together"),
        (["--model", "no-such-model"], "no model 'no-such-model'"),
        (["--labeled", "x.csv"], "--labeled needs --gold-col"),
        (["--gold-col", "verdict"], "no gold label column 'verdict'"),
    ],
)
def test_cli_report_errors_exit_2_with_the_reason(tmp_path, export_csv, capsys, extra, message):
    code = main(["report", str(export_csv), "--json", str(tmp_path / "r.json"), *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("cxnlp report: error:")
    assert re.search(message, err)
    assert not (tmp_path / "r.json").exists()


def test_cli_report_prints_json_when_no_output_is_named(tmp_path, export_csv, capsys):
    model = fake_model_dir(tmp_path / "model", None)
    assert main(["report", str(export_csv), "--model", str(model)]) == 0
    assert json.loads(capsys.readouterr().out)["classified"] == 240


def test_cli_report_uses_a_hand_labeled_sample_from_another_file(tmp_path, export_csv):
    export = pd.read_csv(export_csv)
    sample = export.head(90).assign(checked=lambda f: f["sentiment"])
    sample.loc[:9, "checked"] = "neutral"  # ten rows the model got wrong
    write_table(sample, tmp_path / "checked.csv")
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    args = ["report", str(export_csv), "--labeled", str(tmp_path / "checked.csv")]
    args += ["--gold-col", "checked", "--json", str(out_json), "--html", str(out_html)]
    assert main(args) == 0
    summary = json.loads(out_json.read_text(encoding="utf-8"))
    ok = sample[sample["error"].isna()]
    expected = (ok["checked"] == ok["sentiment"]).mean()
    assert summary["labeled_sample"]["by_lang"]["*"]["accuracy"] == pytest.approx(expected)
    assert summary["labeled_sample"]["by_lang"]["*"]["accuracy"] < 1
    assert summary["settings"]["confusion_source"] == "labeled sample"
    assert "pacc" in summary["overall"] and "pacc" in summary["by_lang"]["fa"]
    assert not any(n.startswith("ACC omitted") for n in summary["notes"])
    page = out_html.read_text(encoding="utf-8")
    assert "PACC neg / neu / pos" in page and "Labeled sample (checked)" in page
