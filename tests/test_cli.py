"""Tests for the `cxnlp` command line: classify, detect-lang, normalize."""

from __future__ import annotations

import io as stdio
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cxnlp.cli import main
from cxnlp.io.tables import read_table, write_table
from cxnlp.text.langid import detect_language
from cxnlp.text.normalize import normalize

TEXTS = ["غذا خیلی خوشمزه بود", "الخدمة سيئة جدا", "Great app", "", "The store opens at nine"]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    write_table(pd.DataFrame({"text": TEXTS}), path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_classify_with_a_model_path_writes_the_output(
    export: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture, suffix: str
) -> None:
    output = export.with_name(f"labeled{suffix}")
    argv = ["classify", str(export), "-o", str(output), "--model", str(tiny_model_dir), "-q"]
    assert main([*argv, "--chunk-rows", "2"]) == 0
    out = read_table(output)
    assert out["text"].fillna("").tolist() == TEXTS
    assert [int(i) for i in out["id"]] == [1, 2, 3, 4, 5]
    assert (out["sentiment"].fillna("") != "").tolist() == [True, True, True, False, True]
    assert "5 rows classified into" in capsys.readouterr().err


def test_classify_missing_text_column_exits_2(
    export: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    output = export.with_name("labeled.csv")
    argv = ["classify", str(export), "-o", str(output), "--model", str(tiny_model_dir)]
    assert main([*argv, "--text-col", "review", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cxnlp classify: error: ")
    assert "no text column 'review'" in err and "['text']" in err and "--text-col" in err
    assert not output.exists()


def test_classify_unknown_model_exits_2(export: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["classify", str(export), "-o", str(export.with_name("o.csv")), "--model", "nope-x"]
    assert main(argv) == 2
    assert "no model 'nope-x'" in capsys.readouterr().err


def test_classify_exit_status_of_the_real_command(export: Path, tiny_model_dir: Path) -> None:
    output = export.with_name("labeled.csv")
    argv = [str(export), "-o", str(output), "--model", str(tiny_model_dir), "--text-col", "body"]
    done = subprocess.run(
        [sys.executable, "-m", "cxnlp.cli", "classify", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no text column 'body'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not output.exists()


def test_detect_lang_prints_one_language_per_text(capsys: pytest.CaptureFixture) -> None:
    texts = ["ارسال خیلی دیر بود", "الخدمة ممتازة", "Great app"]
    assert main(["detect-lang", *texts]) == 0
    assert capsys.readouterr().out.splitlines() == [detect_language(t) for t in texts]


def test_detect_lang_reads_stdin(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", stdio.StringIO("ارسال خیلی دیر بود\nGreat app\n"))
    assert main(["detect-lang"]) == 0
    assert capsys.readouterr().out.splitlines() == ["fa", "en"]


def test_normalize_prints_the_normalised_texts(capsys: pytest.CaptureFixture) -> None:
    texts = ["سلام، این يك تست است https://x.com 😀", "بي رقيب"]
    assert main(["normalize", "--lang", "fa", *texts]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [normalize(t, lang="fa") for t in texts]
    assert out != texts  # something was normalised


def test_no_verb_prints_help(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 0
    assert "classify" in capsys.readouterr().out


# What a verb's help must not import: each costs seconds of start-up (issue 25: `cxnlp --help`
# and `cxnlp classify --help` under 0.5 s), and none is needed before a verb runs.
HEAVY_MODULES = ("torch", "transformers", "pandas", "sklearn", "scipy", "hazm", "tokenizers")


@pytest.mark.parametrize("argv", [["--help"], ["classify", "--help"]])
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from cxnlp.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_loading_the_shipped_model_imports_neither_transformers_nor_scikit_learn(
    built: Path,
) -> None:
    """The warm load runs on torch and tokenizers alone (cxnlp.backbone.runtime,
    cxnlp.models.ngram_hash): `transformers`, scikit-learn, scipy and pandas would each add
    seconds to it."""
    probe = (
        "import sys, cxnlp\n"
        "cxnlp.load('default')\n"
        "print([m for m in ('transformers', 'sklearn', 'scipy', 'pandas') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
