"""Labeled data for training and evaluation: the shared corpus and users' own labeled files.

The shared corpus (one JSONL file per dataset under `<data_dir>/<lang>/`) is described in
`datasets.yaml` beside this module. Users' files are CSV / JSONL / Parquet / XLSX with `text,label`
and optional `lang,topics,split` columns; they are validated up front with errors that name the row.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cxnlp.io.tables import read_table
from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.text.clean import text_key

logger = logging.getLogger(__name__)

DATASETS_FILE = Path(__file__).with_name("datasets.yaml")
# `mixed` (both praise and complaint) is not one of the three sentiments: it is dropped from training
# and left out of the 3-class scores; see the model card.
MIXED = "mixed"
# The splits a user's labeled file (or a corpus file) may assign.
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    lang: str
    licence: str
    commercial: bool
    domain: str
    eval_only: bool = False


def dataset_catalog() -> dict[str, DatasetInfo]:
    """Every dataset of the shared corpus by name, with its licence and role."""
    raw = yaml.safe_load(DATASETS_FILE.read_text(encoding="utf-8"))
    return {
        name: DatasetInfo(name=name, lang=lang, **fields)
        for lang, entries in raw.items()
        for name, fields in entries.items()
    }


def load_corpus(
    data_dir: str | Path,
    *,
    langs: tuple[str, ...] = LANGS,
    commercial_only: bool = False,
    exclude: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Read the shared corpus into one frame: text, label, lang, dataset, split, domain, topics, aspects.

    Texts that occur in any test split or eval-only dataset are removed from train and dev
    (the same review appears in several crawls), and a train text given conflicting labels is dropped.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    frames = []
    for info in dataset_catalog().values():
        if info.lang not in langs or info.name in exclude:
            continue
        if commercial_only and not info.commercial:
            continue
        path = data_dir / info.lang / f"{info.name}.jsonl"
        if not path.exists():
            logger.warning(
                "dataset %s listed in %s is missing at %s", info.name, DATASETS_FILE, path
            )
            continue
        frame = pd.read_json(path, lines=True, dtype=False)
        frame["dataset"] = info.name
        frame["domain"] = info.domain
        if info.eval_only:
            frame["split"] = "eval"
        frames.append(frame)
    if not frames:
        raise ValueError(f"no dataset of {langs} found under {data_dir}")
    corpus = pd.concat(frames, ignore_index=True)
    for column in ("topics", "aspects"):
        if column not in corpus:
            corpus[column] = None
    corpus = corpus[["text", "label", "lang", "dataset", "split", "domain", "topics", "aspects"]]
    corpus = corpus[corpus["text"].astype(str).str.strip() != ""]
    return remove_leaks(corpus).reset_index(drop=True)


def remove_leaks(corpus: pd.DataFrame) -> pd.DataFrame:
    """Drop train/dev rows whose text is held out elsewhere, duplicates, and conflicting labels."""
    keys = corpus["text"].map(text_key)
    held_out = set(keys[corpus["split"].isin(["test", "eval"])])
    trainable = corpus["split"].isin(["train", "dev"])
    leaked = trainable & keys.isin(held_out)
    corpus = corpus.assign(_key=keys)[~leaked]
    # Within the trainable part a text keeps one row; a text with two different labels keeps none.
    trainable = corpus["split"].isin(["train", "dev"])
    part = corpus[trainable]
    label_count = part.groupby("_key")["label"].transform("nunique")
    part = part[label_count == 1].drop_duplicates("_key")
    held = corpus[~trainable].drop_duplicates(["_key", "dataset"])
    logger.info(
        "de-duplication: %d leaked into held-out sets, %d duplicate or conflicting rows dropped",
        int(leaked.sum()),
        int(trainable.sum() - len(part)),
    )
    return pd.concat([part, held]).drop(columns="_key")


class LabeledDataError(ValueError):
    """A user's labeled file has rows that cannot be trained on; `problems` lists them all."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(
            f"{path}: {len(problems)} problem(s) in the labeled data:\n  {shown}{more}"
        )


def read_labeled(path: str | Path, *, skip_unlabeled: bool = False) -> pd.DataFrame:
    """Read and validate a user's labeled file (CSV, JSONL, Parquet or XLSX), or a Label Studio
    JSON export (`.json`, see `training.labeling.read_label_studio`).

    Required columns: `text`, `label` (positive / negative / neutral; case and spacing ignored).
    Optional: `lang` (fa / ar / en; detected when absent), `topics`, `split` (train / dev / test).
    Rows are numbered from 1, the header excluded, as a spreadsheet user counts them. With
    `skip_unlabeled`, rows whose label cell is blank (not labeled yet, as in a half-filled
    `cxnlp select` file) are left out and counted in the log instead of being errors.
    """
    if Path(path).suffix.lower() == ".json":
        from training.labeling import read_label_studio

        table = read_label_studio(path)
    else:
        table = read_table(path)
    missing = [c for c in ("text", "label") if c not in table.columns]
    if missing:
        raise LabeledDataError(
            path, [f"missing column(s) {missing}; found {list(table.columns)}; expected text,label"]
        )
    problems: list[str] = []
    texts = table["text"].map(lambda v: "" if pd.isna(v) else str(v).strip())
    labels = table["label"].map(lambda v: "" if pd.isna(v) else str(v).strip().lower())
    numbers = list(range(1, len(table) + 1))
    if skip_unlabeled:
        labeled = (labels != "").to_numpy()
        if not labeled.all():
            logger.warning(
                "%s: %d of %d rows have no label yet and are left out",
                path,
                int((~labeled).sum()),
                len(labels),
            )
        # Rows keep their numbers in the messages: a filtered row is counted, not renumbered.
        table, texts, labels = table[labeled], texts[labeled], labels[labeled]
        numbers = [n for n, keep in zip(numbers, labeled, strict=True) if keep]
    first_row_of: dict[str, tuple[int, str]] = {}
    for index, text, label in zip(numbers, texts, labels, strict=True):
        if not text:
            problems.append(f"row {index}: empty text")
        if label not in SENTIMENTS:
            hint = difflib.get_close_matches(label, SENTIMENTS, n=1)
            fix = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(
                f"row {index}: unknown label {label!r}{fix}; expected one of {list(SENTIMENTS)}"
            )
        if not text:
            continue
        key = text_key(text)
        if key in first_row_of:
            first, first_label = first_row_of[key]
            if first_label != label:
                problems.append(
                    f"row {index}: conflicting labels for one text: {label!r} here, "
                    f"{first_label!r} in row {first}"
                )
            else:
                problems.append(f"row {index}: duplicate of row {first}")
        else:
            first_row_of[key] = (index, label)
    # A blank lang or split cell (CSV reads it as "", the other formats as null) counts as absent:
    # the language is detected and the split derived from the text, row by row.
    langs = _cells(table, "lang")
    splits = _cells(table, "split").map(str.lower)
    for index, lang, split in zip(numbers, langs, splits, strict=True):
        if lang and lang not in LANGS:
            problems.append(f"row {index}: unknown lang {lang!r}; expected one of {list(LANGS)}")
        if split and split not in SPLITS:
            problems.append(
                f"row {index}: unknown split {split!r}; expected one of {list(SPLITS)} or blank"
            )
    if problems:
        raise LabeledDataError(path, problems)
    result = pd.DataFrame({"text": texts, "label": labels})
    if not langs.all():
        from cxnlp.text.langid import detect_language

        langs = [lang or detect_language(t) for t, lang in zip(texts, langs, strict=True)]
    result["lang"] = list(langs)
    result["topics"] = (
        table["topics"].map(_parse_topics) if "topics" in table else [[]] * len(table)
    )
    result["split"] = [split or hash_split(t) for t, split in zip(texts, splits, strict=True)]
    result["dataset"] = Path(path).stem
    result["domain"] = "user"
    return result.reset_index(drop=True)


def _cells(table: pd.DataFrame, column: str) -> pd.Series:
    """A column's cells as stripped strings, "" where blank, missing, or the column is absent."""
    if column not in table.columns:
        return pd.Series([""] * len(table), index=table.index, dtype=object)
    return table[column].map(lambda v: "" if pd.isna(v) else str(v).strip())


def hash_bucket(text: str) -> float:
    """A stable number in [0, 1] from the text itself (its `text_key`), so that a split drawn
    from it is the same on every run and for every spelling of the text."""
    return int(hashlib.sha1(text_key(text).encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def hash_split(text: str, dev_share: float = 0.1) -> str:
    """A stable train/dev assignment from the text itself, so re-runs split the same way."""
    return "dev" if hash_bucket(text) < dev_share else "train"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The objects of a JSON-lines file, blank lines skipped."""
    with Path(path).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object a line, UTF-8, the text as it is (no `\\u` escapes)."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def drawn_row(dataset: str, line: int, text: str, **fields: Any) -> dict[str, Any]:
    """A text drawn from the corpus for labelling: `id` `<dataset>:<line>` (its 0-based line in
    the corpus file, `corpus_lines`), `dataset`, then `fields`, then `text`."""
    return {"id": f"{dataset}:{line}", "dataset": dataset, **fields, "text": text}


def corpus_lines(path: str | Path) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line, text, row) for each row of a corpus file: its 0-based line in the file (the
    `<dataset>:<line>` of a drawn set's ids) and its text with runs of white space folded to one
    space."""
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if line.strip():
                row = json.loads(line)
                yield number, " ".join(str(row["text"]).split()), row


def _parse_topics(value: object) -> list[str]:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        return [str(v) for v in json.loads(text)]
    return [t.strip() for t in re.split(r"[;,|]", text) if t.strip()]
