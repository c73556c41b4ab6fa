"""Tests for cxnlp.topics.taxonomy: the shipped taxonomy file and reading users' own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cxnlp.topics.taxonomy import (
    TAXONOMY_VERSION,
    TOPICS,
    TaxonomyError,
    Topic,
    default_taxonomy_path,
    load_taxonomy,
)

ARABIC_SCRIPT = re.compile(r"[\u0600-\u06ff]")


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)
    return info.value.problems


def test_load_taxonomy_shipped_file_matches_topics_constant() -> None:
    topics = load_taxonomy()
    assert tuple(t.name for t in topics) == TOPICS
    raw = yaml.safe_load(default_taxonomy_path().read_text(encoding="utf-8"))
    assert raw["version"] == TAXONOMY_VERSION


def test_load_taxonomy_shipped_topics_have_definitions() -> None:
    for topic in load_taxonomy():
        assert len(topic.definition) > 20, topic.name
        assert "\n" not in topic.definition


@pytest.mark.parametrize("lang", ["fa", "ar", "en"])
def test_load_taxonomy_shipped_cues_per_language(lang: str) -> None:
    seen: dict[str, str] = {}
    for topic in load_taxonomy():
        cues = topic.phrases(lang)
        assert 10 <= len(cues) <= 20, (topic.name, lang, len(cues))
        assert len(set(cues)) == len(cues), (topic.name, lang)
        for cue in cues:
            # fa / ar cues are written in Arabic script, en cues are not.
            assert bool(ARABIC_SCRIPT.search(cue)) == (lang != "en"), cue
            assert cue not in seen, f"{cue!r} is a cue of both {seen.get(cue)} and {topic.name}"
            seen[cue] = topic.name


def test_topic_phrases_all_languages() -> None:
    topic = Topic("cold_food", "food that arrives cold", {"fa": ("غذا سرد بود",), "en": ("cold",)})
    assert topic.phrases() == ["غذا سرد بود", "cold"]
    assert topic.phrases("ar") == []


def test_load_taxonomy_user_file_with_definition_or_cues_only(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "version": "acme-2",
            "topics": [
                {"name": "cold_food", "definition": "  food   that arrives cold "},
                {"name": "parking", "cues": {"ar": ["ما في مواقف"], "en": ["no parking"]}},
            ],
        },
    )
    cold, parking = load_taxonomy(path)
    assert cold == Topic("cold_food", "food that arrives cold", {})
    assert parking.definition == ""
    assert parking.cues == {"ar": ("ما في مواقف",), "en": ("no parking",)}


def test_load_taxonomy_duplicate_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"version": 1, "topics": [{"name": "price", "definition": "a"}] * 2},
    )
    (problem,) = _problems(path)
    assert problem == "topic 2: name 'price' repeats topic 1; names must be unique"


def test_load_taxonomy_reports_every_problem(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "topics": [
                {"definition": "no name"},
                {"name": "Cold Food", "definition": "bad name"},
                {"name": "empty"},
                {"name": "cues", "cues": {"de": ["kalt"], "fa": "not a list"}},
                {"name": "extra", "definition": "x", "colour": "red"},
                "just text",
                {"name": "strict", "definition": "x", "min_score": 1.5},
            ]
        },
    )
    problems = "\n".join(_problems(path))
    assert "missing `version`" in problems
    assert "topic 1: missing `name`" in problems
    assert "topic 2 ('Cold Food'): name must be lower-case" in problems
    assert "topic 3 ('empty'): give a `definition`, example `cues`, or both" in problems
    assert "cues for unknown language 'de'; expected ['fa', 'ar', 'en']" in problems
    assert "cues['fa'] must be a list of non-empty phrases" in problems
    assert "topic 5 ('extra'): unknown field(s) ['colour']" in problems
    assert "topic 6: expected a mapping" in problems
    assert "topic 7 ('strict'): `min_score` must be a number between 0 and 1, got 1.5" in problems


def test_load_taxonomy_reads_min_score(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"version": 1, "topics": [{"name": "cold_food", "definition": "x", "min_score": 0.7}]},
    )
    assert load_taxonomy(path)[0].min_score == 0.7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- a\n- b\n", "expected a mapping with `version` and `topics`, got list"),
        ("version: 1\ntopics: []\n", "`topics` must be a non-empty list"),
        ("version: 1\ntopics: [unclosed\n", "not valid YAML"),
    ],
)
def test_load_taxonomy_malformed_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaxonomyError, match=re.escape(message)):
        load_taxonomy(path)


def test_load_taxonomy_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="taxonomy file not found"):
        load_taxonomy(tmp_path / "nope.yaml")
