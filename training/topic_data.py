"""Topic labels for training and evaluation: the shared corpus's own aspect / category / reason
labels mapped onto the cxnlp taxonomy by `topic_mapping.yaml` beside this module.

Each row gets `topics`, a list of {"topic", "polarity"}; the polarity is the one the source gives
the label (`polarity_source` "aspect") or, where it gives none, the row's sentiment ("row").
Rows of a `partial` dataset (labels for some rows only, one reason per text, or a term lexicon)
carry an empty `scope`: a topic missing there is unknown, not absent. On complete datasets `scope`
lists the topics the source could express; only those count as negatives in evaluation.

>>> corpus = load_topic_corpus("../shared/data")  # doctest: +SKIP
>>> corpus.loc[0, "topics"]  # doctest: +SKIP
[{'topic': 'product_quality', 'polarity': 'positive'}]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.text.script import TERM_MARKS_RE, TERM_TABLE
from cxnlp.topics.taxonomy import TOPICS
from training.data import MIXED, SPLITS, dataset_catalog, hash_bucket, read_jsonl, text_key

logger = logging.getLogger(__name__)

MAPPING_FILE = Path(__file__).with_name("topic_mapping.yaml")
# Hand-labeled evaluation sets: their texts never enter train / dev.
EVAL_DIR = Path(__file__).with_name("eval")
HANDLABELED_GLOB = "topics_handlabeled_*.jsonl"
TOPIC_SETS_GLOB = "topics_*.jsonl"  # every hand-labeled topic set (test, dev, multi-domain)

FIELDS = ("topics", "aspects", "aspect_terms")
POLARITY_SOURCES = ("aspect", "row")
SPLIT_MODES = ("source", "hash")
# A topic's polarity: the three sentiments, or `mixed` where the source says conflict / mixed or
# two labels folded into one topic disagree (the trainer decides what to do with it).
TOPIC_POLARITIES = (*SENTIMENTS, MIXED)
COLUMNS = [
    "text",
    "label",
    "lang",
    "dataset",
    "split",
    "topics",
    "polarity_source",
    "partial",
    "scope",
    "source_labels",
    "unmapped",
]
_ENTRY_FIELDS = {
    "include",
    "exclude",
    "field",
    "key",
    "polarity",
    "labels",
    "unmapped",
    "terms",
    "partial",
    "scope",
    "split",
    "splits",
}
_POLARITY_ALIASES = {"conflict": MIXED, "mixed": MIXED}
# Aspect terms are lightly normalised (cxnlp.text.script.TERM_TABLE) before the lexicons see them.
_SPACES = re.compile(r"\s+")


def normalize_term(term: str) -> str:
    """An aspect term as the term lexicons match it: letter variants unified, marks removed.

    >>> normalize_term("الإفطار"), normalize_term("بسته‌بندی")
    ('الافطار', 'بسته بندی')
    """
    term = TERM_MARKS_RE.sub("", str(term).translate(TERM_TABLE))
    return _SPACES.sub(" ", term).strip().casefold()


@dataclass(frozen=True)
class TermRule:
    """One lexicon rule: a term matching `pattern` gets `topics` (empty: no topic on purpose)."""

    pattern: re.Pattern[str]
    topics: tuple[str, ...]


@dataclass(frozen=True)
class SourceMapping:
    """How one dataset's labels become taxonomy topics (see the header of topic_mapping.yaml)."""

    dataset: str
    lang: str
    include: bool = True
    label_field: str = "topics"
    key: str | None = None
    polarity: str = "row"
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    term_rules: tuple[TermRule, ...] | None = None
    partial: bool = False
    scope: tuple[str, ...] = TOPICS
    split: str = "source"
    splits: tuple[str, ...] | None = None

    def resolve(self, label: str) -> tuple[str, ...] | None:
        """The topics of one source label: () when it maps to none on purpose, None when the
        mapping does not know it (a new category, or a term no lexicon rule matches)."""
        if self.term_rules is not None:
            term = normalize_term(label)
            for rule in self.term_rules:
                if rule.pattern.search(term):
                    return rule.topics
            return None
        if label in self.labels:
            return self.labels[label]
        if label in self.unmapped:
            return ()
        return None


class TopicMappingError(ValueError):
    """A topic mapping file that cannot be used; the message lists every problem."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n  ".join(problems)
        super().__init__(f"{path}: invalid topic mapping:\n  {listed}")


def load_mapping(
    path: str | Path | None = None, topics: tuple[str, ...] = TOPICS
) -> dict[str, SourceMapping]:
    """Read and validate a mapping file: dataset name -> SourceMapping, in the file's order.

    Every problem is reported at once: unknown fields, topics not in `topics`, labels both mapped
    and unmapped, unmapped labels without a reason, lexicons that are missing or do not compile.
    """
    path = Path(path) if path is not None else MAPPING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"topic mapping file not found: {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise TopicMappingError(path, ["expected a mapping with `datasets: {lang: {name: ...}}`"])
    problems: list[str] = []
    lexicons = _parse_lexicons(raw.get("term_lexicons") or {}, topics, problems)
    mappings: dict[str, SourceMapping] = {}
    for lang, entries in raw["datasets"].items():
        if lang not in LANGS:
            problems.append(f"datasets: unknown language {lang!r}; expected one of {list(LANGS)}")
            continue
        for name, entry in (entries or {}).items():
            if name in mappings:
                problems.append(f"{name}: listed twice")
                continue
            mapping = _parse_entry(name, lang, entry, topics, lexicons, problems)
            if mapping is not None:
                mappings[name] = mapping
    if problems:
        raise TopicMappingError(path, problems)
    return mappings


def _topic_list(value: Any, where: str, topics: tuple[str, ...], problems: list[str]) -> tuple:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append(f"{where}: expected a topic or a list of topics, got {value!r}")
        return ()
    unknown = [n for n in names if n not in topics]
    if unknown:
        problems.append(f"{where}: unknown topic(s) {unknown}; expected one of {list(topics)}")
    return tuple(dict.fromkeys(n for n in names if n in topics))


def _parse_lexicons(
    raw: Any, topics: tuple[str, ...], problems: list[str]
) -> dict[str, tuple[TermRule, ...]]:
    if not isinstance(raw, dict):
        problems.append("term_lexicons: expected {lang: [rules]}")
        return {}
    lexicons = {}
    for lang, rules in raw.items():
        parsed = []
        for index, rule in enumerate(rules or [], start=1):
            where = f"term_lexicons.{lang} rule {index}"
            if not isinstance(rule, dict) or not isinstance(rule.get("pattern"), str):
                problems.append(f"{where}: expected {{pattern, topics[, reason]}}, got {rule!r}")
                continue
            try:
                pattern = re.compile(normalize_term(rule["pattern"]))
            except re.error as error:
                problems.append(f"{where}: pattern does not compile: {error}")
                continue
            if rule.get("topics") is None:
                if not str(rule.get("reason") or "").strip():
                    problems.append(f"{where}: `topics: null` needs a `reason`")
                parsed.append(TermRule(pattern, ()))
            else:
                parsed.append(
                    TermRule(pattern, _topic_list(rule["topics"], where, topics, problems))
                )
        lexicons[lang] = tuple(parsed)
    return lexicons


def _parse_entry(
    name: str,
    lang: str,
    entry: Any,
    topics: tuple[str, ...],
    lexicons: dict[str, tuple[TermRule, ...]],
    problems: list[str],
) -> SourceMapping | None:
    if not isinstance(entry, dict):
        problems.append(f"{name}: expected a mapping, got {entry!r}")
        return None
    unknown = sorted(set(entry) - _ENTRY_FIELDS)
    if unknown:
        problems.append(f"{name}: unknown field(s) {unknown}; expected {sorted(_ENTRY_FIELDS)}")
    unmapped = entry.get("unmapped") or {}
    if not isinstance(unmapped, dict) or not all(
        isinstance(reason, str) and reason.strip() for reason in unmapped.values()
    ):
        problems.append(f"{name}: `unmapped` must map each label to a short reason")
        unmapped = {}
    unmapped = {str(label): reason for label, reason in unmapped.items()}
    if entry.get("include", True) is False:
        if not str(entry.get("exclude") or "").strip():
            problems.append(f"{name}: `include: false` needs an `exclude` reason")
        return SourceMapping(dataset=name, lang=lang, include=False, unmapped=unmapped)
    fld = entry.get("field", "topics")
    if fld not in FIELDS:
        problems.append(f"{name}: field {fld!r} is not one of {list(FIELDS)}")
    key = entry.get("key")
    if fld != "topics" and not key:
        problems.append(f"{name}: field {fld!r} needs `key` (the label's name inside each item)")
    polarity = entry.get("polarity", "row")
    if polarity not in POLARITY_SOURCES:
        problems.append(f"{name}: polarity {polarity!r} is not one of {list(POLARITY_SOURCES)}")
    if polarity == "aspect" and fld == "topics":
        problems.append(f"{name}: `topics` names carry no polarity; use `polarity: row`")
    labels = {}
    for label, value in (entry.get("labels") or {}).items():
        labels[str(label)] = _topic_list(value, f"{name}: label {label!r}", topics, problems)
        if str(label) in unmapped:
            problems.append(f"{name}: label {label!r} is both mapped and unmapped")
    term_rules = None
    if entry.get("terms") is not None:
        term_rules = lexicons.get(entry["terms"])
        if term_rules is None:
            problems.append(f"{name}: no term lexicon {entry['terms']!r} under `term_lexicons`")
            term_rules = ()
        if labels or unmapped:
            problems.append(f"{name}: give either `terms` or `labels` / `unmapped`, not both")
    elif not labels:
        problems.append(f"{name}: no `labels` (or `terms`): nothing would map to a topic")
    partial = entry.get("partial", False)
    if not isinstance(partial, bool):
        problems.append(f"{name}: `partial` must be true or false, got {partial!r}")
        partial = True
    scope = TOPICS if entry.get("scope") is None else entry["scope"]
    scope = _topic_list(list(scope), f"{name}: scope", topics, problems)
    if partial and entry.get("scope") is not None:
        problems.append(f"{name}: a partial dataset has no `scope` (no topic counts as absent)")
    split = entry.get("split", "source")
    if split not in SPLIT_MODES:
        problems.append(f"{name}: split {split!r} is not one of {list(SPLIT_MODES)}")
    splits = entry.get("splits")
    if splits is not None and (not isinstance(splits, list) or set(splits) - set(SPLITS)):
        problems.append(f"{name}: splits must be a list drawn from {list(SPLITS)}, got {splits!r}")
        splits = None
    return SourceMapping(
        dataset=name,
        lang=lang,
        label_field=fld,
        key=key,
        polarity=polarity,
        labels=labels,
        unmapped=unmapped,
        term_rules=term_rules,
        partial=partial,
        scope=() if partial else scope,
        split=split,
        splits=tuple(splits) if splits else None,
    )


def hash_split(text: str) -> str:
    """A stable 80/10/10 train/dev/test assignment from the text itself."""
    bucket = hash_bucket(text)
    return "test" if bucket < 0.1 else "dev" if bucket < 0.2 else "train"


def merge_polarity(polarities: Iterable[str]) -> str:
    """One polarity for a topic that several source labels (or mentions) gave polarities.

    >>> merge_polarity(["positive", "neutral"]), merge_polarity(["positive", "negative"])
    ('positive', 'mixed')
    """
    found = set(polarities)
    if MIXED in found or {"positive", "negative"} <= found:
        return MIXED
    polar = found - {"neutral"}
    return polar.pop() if polar else "neutral"


def map_row(row: dict[str, Any], mapping: SourceMapping) -> tuple[list[dict], list[str], list[str]]:
    """A source row's topics (taxonomy order), its source labels, and those that mapped to none."""
    row_polarity = str(row.get("label") or "").lower()
    items = row.get(mapping.label_field) or []
    mentions: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict):
            label, polarity = item.get(mapping.key), item.get("polarity")
        else:
            label, polarity = item, None
        if label is None or not str(label).strip():
            continue
        polarity = str(polarity).lower()
        polarity = _POLARITY_ALIASES.get(polarity, polarity)
        # An aspect without a usable polarity takes the row's sentiment.
        if mapping.polarity == "row" or polarity not in TOPIC_POLARITIES:
            polarity = _POLARITY_ALIASES.get(row_polarity, row_polarity)
        mentions.append((str(label).strip(), polarity))
    by_topic: dict[str, list[str]] = {}
    unmapped = []
    for label, polarity in mentions:
        topics = mapping.resolve(label)
        if not topics:
            unmapped.append(label)
            continue
        for topic in topics:
            if polarity in TOPIC_POLARITIES:
                by_topic.setdefault(topic, []).append(polarity)
    order = {name: index for index, name in enumerate(TOPICS)}
    topics = [
        {"topic": topic, "polarity": merge_polarity(by_topic[topic])}
        for topic in sorted(by_topic, key=lambda t: order.get(t, len(order)))
    ]
    return topics, [label for label, _ in mentions], unmapped


def topic_set_keys(pattern: str = TOPIC_SETS_GLOB, *, skip: str | None = None) -> set[str]:
    """`text_key` of every text of the hand-labeled topic sets `EVAL_DIR/pattern` (by default all
    of them): texts never to draw or train on. `skip` leaves out the sets whose file name holds
    it (a set drawn anew is not held out against itself)."""
    return {
        text_key(row["text"])
        for path in sorted(EVAL_DIR.glob(pattern))
        if skip is None or skip not in path.name
        for row in read_jsonl(path)
    }


def split_rows(
    data_dir: str | Path, datasets: dict[str, list[str]], split: str, role: str
) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(lang, name, rows) for each of `datasets` (lang -> names) present under `data_dir`: the
    rows of its `split` (every row of a file without splits). A missing file is logged, as a
    `role` dataset, and skipped."""
    for lang, names in datasets.items():
        for name in names:
            path = Path(data_dir) / lang / f"{name}.jsonl"
            if not path.exists():
                logger.warning("%s dataset %s is missing at %s", role, name, path)
                continue
            rows = pd.read_json(path, lines=True)
            yield lang, name, rows[rows["split"] == split] if "split" in rows else rows


def load_topic_corpus(
    data_dir: str | Path,
    mapping_path: str | Path | None = None,
    *,
    langs: tuple[str, ...] = LANGS,
    commercial_only: bool = False,
    holdout_files: Iterable[str | Path] | None = None,
) -> pd.DataFrame:
    """Every row of the datasets that carry topic labels, mapped onto the taxonomy.

    Columns: text, label (the row's sentiment), lang, dataset, split, topics (list of
    {"topic", "polarity"}), polarity_source ("aspect" / "row"), partial, scope (topics whose
    absence is a true negative; empty when partial), source_labels, unmapped (source labels
    that gave no topic). Rows with no topic are kept: on complete datasets they are negatives.

    Train / dev rows whose text is a test text of any topic dataset or of `holdout_files` (by
    default the hand-labeled sets in training/eval/) are dropped, and a text keeps one train /
    dev row (the first dataset in the mapping file wins). `commercial_only` leaves out the
    datasets `datasets.yaml` marks non-commercial.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    mappings = load_mapping(mapping_path)
    catalog = dataset_catalog()
    frames = []
    for mapping in mappings.values():
        if not mapping.include or mapping.lang not in langs:
            continue
        if commercial_only and not (
            mapping.dataset in catalog and catalog[mapping.dataset].commercial
        ):
            continue
        path = data_dir / mapping.lang / f"{mapping.dataset}.jsonl"
        if not path.exists():
            logger.warning("topic dataset %s is missing at %s", mapping.dataset, path)
            continue
        frames.append(_load_dataset(path, mapping))
    if not frames:
        raise ValueError(f"no topic dataset of {list(langs)} found under {data_dir}")
    corpus = pd.concat(frames, ignore_index=True)
    if holdout_files is None:
        held_out = topic_set_keys(HANDLABELED_GLOB)
    else:
        held_out = {text_key(r["text"]) for p in holdout_files for r in read_jsonl(p)}
    return _remove_leaks(corpus, held_out).reset_index(drop=True)


def _load_dataset(path: Path, mapping: SourceMapping) -> pd.DataFrame:
    records, unknown = [], {}
    for row in read_jsonl(path):
        text = str(row.get("text") or "").strip()
        split = row.get("split") if row.get("split") in SPLITS else None
        if not text or (mapping.splits and split not in mapping.splits):
            continue
        if mapping.split == "hash" or split is None:
            split = hash_split(text)
        topics, labels, unmapped = map_row(row, mapping)
        for label in unmapped:
            if mapping.term_rules is None and mapping.resolve(label) is None:
                unknown[label] = unknown.get(label, 0) + 1
        records.append(
            {
                "text": text,
                "label": row.get("label"),
                "lang": mapping.lang,
                "dataset": mapping.dataset,
                "split": split,
                "topics": topics,
                "polarity_source": mapping.polarity,
                "partial": mapping.partial,
                "scope": list(mapping.scope),
                "source_labels": labels,
                "unmapped": unmapped,
            }
        )
    if unknown:
        logger.warning(
            "%s: %d label(s) not in the mapping, treated as unmapped: %s",
            mapping.dataset,
            len(unknown),
            sorted(unknown, key=unknown.get, reverse=True)[:10],
        )
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def _remove_leaks(corpus: pd.DataFrame, held_out: set[str]) -> pd.DataFrame:
    keys = corpus["text"].map(text_key)
    test = corpus["split"] == "test"
    held_out = held_out | set(keys[test])
    leaked = ~test & keys.isin(held_out)
    trainable = ~test & ~leaked
    duplicate = trainable & keys.where(trainable).duplicated(keep="first")
    # Within one dataset a test text counts once (compared with the other test rows only).
    per_dataset = keys + "\x00" + corpus["dataset"]
    repeated_test = test & per_dataset.where(test).duplicated()
    logger.info(
        "topic corpus: %d train/dev rows held out elsewhere, %d duplicate train/dev rows, "
        "%d repeated test rows dropped",
        int(leaked.sum()),
        int(duplicate.sum()),
        int(repeated_test.sum()),
    )
    return corpus[~(leaked | duplicate | repeated_test)]


def load_team_sets(patterns: Iterable[str], root: Path | None = None) -> pd.DataFrame:
    """The team's own topic-labeled texts (`training/topic_labels/labeled_<lang>.jsonl`, issue 27)
    as topic-corpus rows: complete (every topic's absence is a true negative), split as the file
    says (train / dev), each topic's polarity as labeled (`mixed` kept as the topic's presence with
    no polarity target). `patterns` are globs relative to `root` (the repository by default)."""
    root = root or Path(__file__).resolve().parent.parent
    records = []
    for pattern in patterns:
        for path in (
            sorted(root.glob(pattern)) if not Path(pattern).is_absolute() else [Path(pattern)]
        ):
            for row in read_jsonl(path):
                topics = [
                    {
                        "topic": t["topic"],
                        "polarity": t["polarity"] if t["polarity"] in SENTIMENTS else None,
                    }
                    for t in row.get("topics") or []
                    if t["topic"] in TOPICS
                ]
                records.append(
                    {
                        "text": str(row["text"]).strip(),
                        "label": None,
                        "lang": row["lang"],
                        "dataset": f"team:{row['dataset']}",
                        "split": row["split"],
                        "topics": topics,
                        "polarity_source": "aspect",
                        "partial": False,
                        "scope": list(TOPICS),
                        "source_labels": [],
                        "unmapped": [],
                    }
                )
    return pd.DataFrame.from_records(records, columns=COLUMNS)
