"""Agreement between the first and the second labeling pass of the team's topic set (issue 27).

Usage (from the repository root)::

    python training/topic_labels/agreement.py

For every language with both `labeled_<lang>.jsonl` (first pass) and `second_pass_<lang>.jsonl`
(an independent pass over every tenth text), rows are matched by `id` and this prints, per topic,
Cohen's kappa on presence (does the text carry the topic?), the mean kappa over the topics either
pass used, exact-set agreement (both passes gave the text the same set of topics) and polarity
agreement on the topics both passes found. `check_rows` validates a labeled file (topic names,
polarities, evidence spans, ids); the tests run it over the real files.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sklearn.metrics import cohen_kappa_score  # noqa: E402

from cxnlp.labels import LANGS  # noqa: E402
from cxnlp.topics.taxonomy import TOPICS  # noqa: E402
from training.data import read_jsonl  # noqa: E402
from training.topic_data import TOPIC_POLARITIES  # noqa: E402

LABELS_DIR = Path(__file__).resolve().parent
# The file names of the labeling set, one place for every script and test that reads them.
UNLABELED = "unlabeled_{lang}.jsonl"
FIRST_PASS = "labeled_{lang}.jsonl"
SECOND_PASS = "second_pass_{lang}.jsonl"
# Every SECOND_PASS_EVERY-th row (0-based index in the unlabeled file) gets the second pass.
SECOND_PASS_EVERY = 10
ROW_FIELDS = ("id", "dataset", "domain", "split", "text", "lang", "topics", "labeled_by")
TOPIC_FIELDS = ("topic", "polarity", "evidence")


@dataclass
class Agreement:
    """What two passes over the same rows agree on."""

    n: int
    kappa: dict[str, float] = field(default_factory=dict)
    exact_set: float = math.nan
    polarity: float = math.nan
    polarity_n: int = 0

    @property
    def mean_kappa(self) -> float:
        """Mean kappa over the topics either pass used (nan when neither used any)."""
        values = list(self.kappa.values())
        return sum(values) / len(values) if values else math.nan


def _topics(row: dict[str, Any]) -> dict[str, str]:
    return {t["topic"]: t["polarity"] for t in row.get("topics") or []}


def topic_kappa(first: list[bool], second: list[bool]) -> float:
    """Cohen's kappa on presence; identical passes agree perfectly (1.0) even where sklearn's
    formula is 0/0 (one class only)."""
    if list(first) == list(second):
        return 1.0
    return float(cohen_kappa_score(first, second))


def agreement(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> Agreement:
    """Compare two passes on the ids they share (the second pass's ids, normally).

    >>> a = [{"id": "1", "topics": [{"topic": "price", "polarity": "negative"}]}, {"id": "2", "topics": []}]
    >>> agreement(a, a).mean_kappa, agreement(a, a).exact_set
    (1.0, 1.0)
    """
    by_id = {row["id"]: row for row in first}
    pairs = [(by_id[row["id"]], row) for row in second if row["id"] in by_id]
    result = Agreement(n=len(pairs))
    if not pairs:
        return result
    sets = [(_topics(a), _topics(b)) for a, b in pairs]
    used = {topic for one, two in sets for topic in (*one, *two)}
    for topic in (t for t in TOPICS if t in used):
        result.kappa[topic] = topic_kappa(
            [topic in one for one, _ in sets], [topic in two for _, two in sets]
        )
    result.exact_set = sum(set(one) == set(two) for one, two in sets) / len(sets)
    shared = [(one[t], two[t]) for one, two in sets for t in one if t in two]
    result.polarity_n = len(shared)
    if shared:
        result.polarity = sum(p == q for p, q in shared) / len(shared)
    return result


def check_rows(
    rows: list[dict[str, Any]], unlabeled: list[dict[str, Any]], held_out: set[str] | None = None
) -> list[str]:
    """Problems in a labeled file: missing fields, unknown topics or polarities, a repeated topic,
    evidence that is not an exact substring of the text, an id or text that is not the unlabeled
    file's, and (given `held_out`, text keys of the evaluation sets) a held-out text."""
    from training.data import text_key

    source = {row["id"]: row["text"] for row in unlabeled}
    problems = []
    for number, row in enumerate(rows, start=1):
        where = f"row {number} ({row.get('id')})"
        missing = [f for f in ROW_FIELDS if f not in row]
        if missing:
            problems.append(f"{where}: missing {missing}")
            continue
        if row["id"] not in source:
            problems.append(f"{where}: id not in the unlabeled file")
        elif source[row["id"]] != row["text"]:
            problems.append(f"{where}: text differs from the unlabeled file")
        if held_out is not None and text_key(row["text"]) in held_out:
            problems.append(f"{where}: text of a held-out evaluation set")
        seen = set()
        for topic in row["topics"]:
            if set(topic) != set(TOPIC_FIELDS):
                problems.append(f"{where}: topic fields {sorted(topic)}, expected {TOPIC_FIELDS}")
                continue
            if topic["topic"] not in TOPICS:
                problems.append(f"{where}: unknown topic {topic['topic']!r}")
            if topic["polarity"] not in TOPIC_POLARITIES:
                problems.append(
                    f"{where}: polarity {topic['polarity']!r} not in {TOPIC_POLARITIES}"
                )
            if not topic["evidence"] or topic["evidence"] not in row["text"]:
                problems.append(f"{where}: evidence {topic['evidence']!r} is not in the text")
            if topic["topic"] in seen:
                problems.append(f"{where}: topic {topic['topic']!r} repeated")
            seen.add(topic["topic"])
    return problems


def format_agreement(lang: str, result: Agreement) -> str:
    """The printed table of one language."""
    lines = [f"== {lang}: {result.n} rows in both passes"]
    for topic, kappa in result.kappa.items():
        lines.append(f"  kappa {topic:<18} {kappa:6.3f}")
    lines.append(f"  mean kappa ({len(result.kappa)} topics)   {result.mean_kappa:6.3f}")
    lines.append(f"  exact-set agreement        {result.exact_set:6.3f}")
    lines.append(
        f"  polarity agreement         {result.polarity:6.3f}  "
        f"(on {result.polarity_n} topics both passes found)"
    )
    return "\n".join(lines)


def main(labels_dir: Path = LABELS_DIR) -> int:
    found = 0
    for lang in LANGS:
        first = labels_dir / FIRST_PASS.format(lang=lang)
        second = labels_dir / SECOND_PASS.format(lang=lang)
        if not (first.is_file() and second.is_file()):
            continue
        found += 1
        print(format_agreement(lang, agreement(read_jsonl(first), read_jsonl(second))))
    if not found:
        both = f"{FIRST_PASS} and {SECOND_PASS}".format(lang="<lang>")
        print(f"no language has both {both} in {labels_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
