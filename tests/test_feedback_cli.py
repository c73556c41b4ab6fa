"""`cxnlp ingest` and `cxnlp db`: the verbs over a real SQLite store."""

from __future__ import annotations

from feedback_helpers import classified_frame

from cxnlp.cli import main
from cxnlp.feedback import queries as Q
from cxnlp.feedback.db import head_revision, open_store


def test_ingest_verb_twice_counts_once(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    path = tmp_path / "classified.csv"
    frame = classified_frame(60)
    frame.to_csv(path, index=False)
    args = ["ingest", str(path), "--dataset", "shop", "--db", url]
    assert main([*args, "--score-col", "score", "--score-kind", "nps"]) == 0
    assert "60 new" in capsys.readouterr().err
    assert main(args) == 0
    assert "0 new, 60 updated" in capsys.readouterr().err
    with open_store(url) as store, store.engine.connect() as c:
        stats = Q.summary(c, Q.StatsFilter(dataset=["shop"]))
    assert stats["n"] + stats["errors"] == 60
    assert main(["db", "current", "--db", url]) == 0
    assert f"schema at migration {head_revision()}" in capsys.readouterr().out


def test_ingest_verb_names_the_bad_row(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    path = tmp_path / "classified.csv"
    frame = classified_frame(10)
    frame.loc[4, "topics"] = "not json"
    frame.to_csv(path, index=False)
    assert main(["ingest", str(path), "--dataset", "shop", "--db", url]) == 2
    assert "row 5: topics 'not json' is not a JSON list" in capsys.readouterr().err
    with open_store(url) as store, store.engine.connect() as c:
        assert Q.summary(c, Q.StatsFilter())["n"] == 0
