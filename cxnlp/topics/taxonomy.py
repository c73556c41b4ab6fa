"""The pain-point taxonomy: which topics a text can carry, what each covers, and example cues.

The shipped taxonomy (v1) lives in `cxnlp/data/taxonomy.yaml`; users can copy and edit it or
write their own and pass its path. A file has a `version` and a list of `topics`, each with a
`name`, a `definition` and/or example `cues` per language (fa / ar / en).

>>> from cxnlp.topics.taxonomy import TOPICS, load_taxonomy
>>> topics = load_taxonomy()
>>> [t.name for t in topics] == list(TOPICS)
True
>>> topics[0].name, topics[0].cues["fa"][0]
('delivery', 'پیک دیر رسید')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cxnlp.labels import LANGS

# The topics of the shipped taxonomy, in its order (a test keeps this equal to the YAML file).
TOPICS: tuple[str, ...] = (
    "delivery",
    "price",
    "product_quality",
    "customer_support",
    "staff_behavior",
    "wait_time",
    "app_website",
    "refund_return",
    "billing_payment",
    "packaging",
)
TAXONOMY_VERSION = 1
# A topic name is an identifier that survives CSV / JSON / metric names unchanged.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOPIC_FIELDS = ("name", "labels", "definition", "cues", "min_score")


@dataclass(frozen=True)
class Topic:
    """One topic: its `name`, what it covers (`definition`), and example `cues` by language.
    `min_score` (custom topics only) overrides the calibrated probability a text needs to get the
    topic: raise it for a narrow topic to trade recall for precision."""

    name: str
    definition: str = ""
    cues: dict[str, tuple[str, ...]] = field(default_factory=dict)
    min_score: float | None = None
    # The name people read, per language (fa / ar / en); `label` falls back to `name`.
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, lang: str) -> str:
        """The topic's name in `lang` (its `labels`), else its identifier."""
        return self.labels.get(lang) or self.name

    def phrases(self, lang: str | None = None) -> list[str]:
        """The example cues of one language, or of every language when `lang` is None."""
        if lang is None:
            return [cue for lang_cues in self.cues.values() for cue in lang_cues]
        return list(self.cues.get(lang, ()))


def topic_phrases(topic: Topic) -> tuple[list[str], list[str | None]]:
    """A topic's definition and cues as texts to embed, with the language of each (None for the
    definition: detected, as users write it in any of the three languages).

    >>> topic_phrases(Topic("cold_food", "Food that arrives cold", {"fa": ("غذا سرد بود",)}))
    (['Food that arrives cold', 'غذا سرد بود'], [None, 'fa'])
    """
    phrases: list[str] = [topic.definition] if topic.definition else []
    langs: list[str | None] = [None] * len(phrases)
    for lang, cues in topic.cues.items():
        phrases += cues
        langs += [lang] * len(cues)
    return phrases, langs


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message names the file and every problem."""

    def __init__(self, path: str | Path, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n  ".join(problems)
        super().__init__(f"{path}: invalid taxonomy:\n  {listed}")


def default_taxonomy_path() -> Path:
    """Where the shipped taxonomy file is installed."""
    return Path(str(resources.files("cxnlp") / "data" / "taxonomy.yaml"))


def load_taxonomy(path: str | Path | None = None) -> list[Topic]:
    """Read and validate a taxonomy file (the shipped one when `path` is None).

    Every problem found is reported at once in a `TaxonomyError`: a missing `version` or
    `topics`, a topic without a name, an invalid or repeated name, a topic with neither a
    definition nor cues, cues for an unknown language or cues that are not lists of text.

    >>> len(load_taxonomy())
    10
    """
    path = Path(path) if path is not None else default_taxonomy_path()
    if not path.is_file():
        raise FileNotFoundError(f"taxonomy file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise TaxonomyError(path, [f"not valid YAML: {error}"]) from error
    if not isinstance(raw, dict):
        raise TaxonomyError(
            path, [f"expected a mapping with `version` and `topics`, got {type(raw).__name__}"]
        )
    problems = [f"missing `{key}`" for key in ("version", "topics") if key not in raw]
    entries = raw.get("topics")
    if "topics" in raw and (not isinstance(entries, list) or not entries):
        problems.append("`topics` must be a non-empty list of topics (name, definition, cues)")
        entries = []
    topics, seen = [], {}
    for index, entry in enumerate(entries or [], start=1):
        topic = _parse_topic(entry, f"topic {index}", problems)
        if topic is None:
            continue
        if topic.name in seen:
            problems.append(
                f"topic {index}: name {topic.name!r} repeats topic {seen[topic.name]}; "
                "names must be unique"
            )
            continue
        seen[topic.name] = index
        topics.append(topic)
    if problems:
        raise TaxonomyError(path, problems)
    return topics


def _parse_topic(entry: Any, where: str, problems: list[str]) -> Topic | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a mapping with {list(_TOPIC_FIELDS)}, got {entry!r}")
        return None
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: missing `name`")
        return None
    where = f"{where} ({name!r})"
    unknown = sorted(set(entry) - set(_TOPIC_FIELDS))
    if unknown:
        problems.append(f"{where}: unknown field(s) {unknown}; expected {list(_TOPIC_FIELDS)}")
    if not _NAME.match(name):
        problems.append(
            f"{where}: name must be lower-case letters, digits and underscores, "
            f"starting with a letter (e.g. 'cold_food')"
        )
    definition = entry.get("definition") or ""
    if not isinstance(definition, str):
        problems.append(f"{where}: `definition` must be text, got {definition!r}")
        definition = ""
    cues = _parse_cues(entry.get("cues"), where, problems)
    if not definition.strip() and not cues:
        problems.append(f"{where}: give a `definition`, example `cues`, or both")
    min_score = entry.get("min_score")
    if min_score is not None and (
        isinstance(min_score, bool)
        or not isinstance(min_score, (int, float))
        or not 0 < min_score < 1
    ):
        problems.append(f"{where}: `min_score` must be a number between 0 and 1, got {min_score!r}")
        min_score = None
    labels = entry.get("labels") or {}
    if not isinstance(labels, dict) or not all(
        lang in LANGS and isinstance(v, str) and v.strip() for lang, v in labels.items()
    ):
        problems.append(f"{where}: `labels` must map a language {list(LANGS)} to a name")
        labels = {}
    return Topic(
        name=name,
        definition=" ".join(definition.split()),
        cues=cues,
        min_score=None if min_score is None else float(min_score),
        labels={lang: v.strip() for lang, v in labels.items()},
    )


def _parse_cues(raw: Any, where: str, problems: list[str]) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: `cues` must map a language {list(LANGS)} to a list of phrases")
        return {}
    cues = {}
    for lang, phrases in raw.items():
        if lang not in LANGS:
            problems.append(f"{where}: cues for unknown language {lang!r}; expected {list(LANGS)}")
            continue
        if not isinstance(phrases, list) or not all(
            isinstance(p, str) and p.strip() for p in phrases
        ):
            problems.append(f"{where}: cues[{lang!r}] must be a list of non-empty phrases")
            continue
        if phrases:
            cues[lang] = tuple(p.strip() for p in phrases)
    return cues
