"""Each vocabulary cxnlp agrees on is spelled once, in `cxnlp.labels` (and each model-directory
file name once, in `cxnlp.modeldir`): a literal that lists a whole set again elsewhere in the
library, the service or the training code is a second home that will drift."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cxnlp.labels import LANGS, PERIODS, SCORE_KINDS, SENTIMENTS, STORE_PERIODS
from cxnlp.modeldir import (
    ADAPT_CONFIG_FILE,
    CARD_FILE,
    CONFIG_FILE,
    DEV_CONFUSION_FILE,
    GATE_FILE,
    METRICS_FILE,
    TRAINING_CONFIG_FILE,
    WEIGHTS_FILE,
)

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "sentiments": set(SENTIMENTS),
    "languages": set(LANGS),
    "score kinds": set(SCORE_KINDS),
    "periods": set(PERIODS),
    "store periods": set(STORE_PERIODS),
}
FILE_NAMES = {
    CONFIG_FILE,
    WEIGHTS_FILE,
    METRICS_FILE,
    DEV_CONFUSION_FILE,
    TRAINING_CONFIG_FILE,
    CARD_FILE,
    GATE_FILE,
    ADAPT_CONFIG_FILE,
}
HOMES = {"cxnlp/labels.py", "cxnlp/modeldir.py"}
# Under rewrite by the predict-path work (issue 30, item 1); each must still hold its second
# spelling, so that this list shrinks as they are fixed.
PENDING: dict[str, str] = {}
# The backbone directory is a Hugging Face one: its config.json is transformers' file name.
OTHER_FORMATS = {"cxnlp/backbone/build.py"}


def sources() -> list[Path]:
    return sorted(
        p
        for package in ("cxnlp", "service", "training")
        for p in (ROOT / package).rglob("*.py")
        if p.relative_to(ROOT).as_posix() not in HOMES
    )


def second_homes(path: Path) -> set[str]:
    """The sets that `path` spells out whole in a tuple, list or set literal."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts:
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if len(values) == len(node.elts):
                found |= {name for name, members in SETS.items() if set(values) == members}
    return found


def test_no_module_spells_a_label_set_again():
    again = {
        p.relative_to(ROOT).as_posix(): sorted(second_homes(p))
        for p in sources()
        if second_homes(p)
    }
    unexpected = {k: v for k, v in again.items() if PENDING.get(k) not in v}
    assert not unexpected, f"spelled again outside cxnlp/labels.py: {unexpected}"
    fixed = sorted(k for k in PENDING if k not in again)
    assert not fixed, f"{fixed} no longer spell a set again: take them off PENDING"


def test_the_scan_finds_a_second_spelling(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('CHOICES = ["nps", "csat", "ces"]\nx = ("fa", "ar", "en")\n')
    assert second_homes(probe) == {"score kinds", "languages"}


@pytest.mark.parametrize("name", sorted(FILE_NAMES))
def test_model_directory_file_names_are_spelled_only_in_modeldir(name):
    spelled = sorted(
        p.relative_to(ROOT).as_posix()
        for p in sources()
        if p.relative_to(ROOT).as_posix() not in OTHER_FORMATS
        and any(
            isinstance(n, ast.Constant) and n.value == name
            for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        )
    )
    assert not spelled, f"{name!r} spelled outside cxnlp/modeldir.py: {spelled}"
