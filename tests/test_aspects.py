"""Aspect-level analysis: clauses with offsets, clause polarity of topics, mixed, evidence, long
texts, cue rules; on stub models whose outputs the test controls."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from cxnlp.labels import SENTIMENTS
from cxnlp.models.base import SentimentModel
from cxnlp.models.pipeline import AspectOptions, analyze, second_pass_pieces
from cxnlp.text.clauses import Span, cue_topics, fold, load_cue_rules, split_clauses, windows
from cxnlp.topics.tagger import TopicTagger
from cxnlp.topics.taxonomy import Topic
from training.topic_calibration import (
    choose_polarity_weight,
    choose_thresholds,
    fit_polarity_weights,
    polarity_hits,
    read_once,
    recalibrate_topics,
)

NEG, NEU, POS = (SENTIMENTS.index(s) for s in ("negative", "neutral", "positive"))


def texts_of(spans: list[Span]) -> list[str]:
    return [s.text for s in spans]


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (
            "The food was great but the courier came an hour late.",
            "en",
            ["The food was great", "but the courier came an hour late."],
        ),
        (
            "غذا عالی بود ولی پیک یک ساعت دیر رسید",
            "fa",
            ["غذا عالی بود", "ولی پیک یک ساعت دیر رسید"],
        ),
        ("الأكل لذيذ لكن التوصيل متأخر جدا", "ar", ["الأكل لذيذ", "لكن التوصيل متأخر جدا"]),
        ("الطعم حلو بس السعر غالي", "ar", ["الطعم حلو", "بس السعر غالي"]),
        (
            "2.5 hour delay, misplaced bag. Thanks t.co",
            "en",
            ["2.5 hour delay, misplaced bag.", "Thanks t.co"],
        ),
        ("خوب بود.ممنون از پیک", "fa", ["خوب بود.", "ممنون از پیک"]),
        ("عالی بود؟ نه! اصلا خوب نبود", "fa", ["عالی بود؟ نه!", "اصلا خوب نبود"]),
        (
            "Although the food was good, the service was slow",
            "en",
            ["Although the food was good,", "the service was slow"],
        ),
        ("Great, but", "en", ["Great, but"]),
        ("line one\nline two here", "en", ["line one", "line two here"]),
    ],
)
def test_split_clauses_cuts_at_punctuation_and_contrast_words(text, lang, expected):
    spans = split_clauses(text, lang)
    assert texts_of(spans) == expected
    for span in spans:
        assert text[span.start : span.end] == span.text


def test_split_clauses_keeps_offsets_into_the_original_text_with_odd_whitespace():
    text = "  Bad app!!   \n\n but  the   delivery was fast ؟  "
    spans = split_clauses(text, "en")
    assert texts_of(spans) == ["Bad app!!", "but  the   delivery was fast ؟"]
    assert all(text[s.start : s.end] == s.text for s in spans)
    assert split_clauses("", "en") == [] and split_clauses(" ... !!", "en") == []


def test_windows_cut_long_spans_at_spaces():
    text = "word " * 100
    span = Span(0, len(text) - 1, text[:-1])
    pieces = windows(text, span, 42)
    assert all(len(p.text) <= 42 for p in pieces)
    assert " ".join(p.text for p in pieces) == span.text
    assert all(text[p.start : p.end] == p.text for p in pieces)


def test_fold_keeps_length_and_unifies_letter_variants():
    assert fold("كيف") == fold("کیف") and len(fold("آيةً")) == len("آيةً")


def test_cue_rules_of_the_issue_match():
    rules = load_cue_rules()

    def topics(text: str, lang: str) -> set[str]:
        return {r.topic for r in rules[lang] if r.pattern.search(fold(text))}

    assert "customer_support" in topics("خدمة العملاء سيئة جدا", "ar")
    assert "app_website" in topics("التطبيق لا يعمل", "ar")
    assert "refund_return" in topics("My refund still hasn't arrived after 3 weeks", "en")
    assert {"delivery", "wait_time"} <= topics("the courier came an hour late", "en")
    assert {"delivery", "wait_time"} <= topics("پیک یک ساعت دیر رسید", "fa")
    assert topics("Mad love http://t.co/x", "en") == set()


# --- stub model -----------------------------------------------------------------------------


KEYWORDS = {"good": POS, "great": POS, "عالی": POS, "bad": NEG, "late": NEG, "دیر": NEG}


@dataclass
class StubTagger:
    """Topic 0 `delivery` fires on "courier"/"پیک", topic 1 `product_quality` on "food"/"غذا";
    a topic's polarity is its clause's sentiment."""

    topics: tuple[str, ...] = ("delivery", "product_quality")
    thresholds_: np.ndarray = field(default_factory=lambda: np.array([0.5, 0.5]))
    custom_topics: list[Topic] = field(default_factory=list)
    matcher: object = None

    def thresholds_for(self, lang):
        return self.thresholds_

    def scores(self, features):
        presence = features[:, :2]
        return presence, np.zeros((len(features), 2, 3))

    def polarities(self, features, sentiments, polarity=None, langs=None):
        return np.repeat(np.asarray(sentiments).argmax(1)[:, None], 2, axis=1)

    def custom_probabilities(self, features, langs=None):
        return features[:, 2:3] if self.custom_topics else np.zeros((len(features), 0))

    def gate_open(self, features, langs):
        return np.ones(len(features), bool)  # no document gate: the head reads every text


class StubModel(SentimentModel):
    """Keyword sentiment and features; reads each clause as a text of its own (the base
    class's `_read_units`), so `calls` shows what was read."""

    def __init__(self, tagger: StubTagger | None = None):
        super().__init__()
        self.fitted_ = True
        self.calls: list[list[str]] = []
        self.topic_tagger = tagger

    def _forward(self, texts):
        self.calls.append(list(texts))
        probabilities, features = [], []
        for text in texts:
            votes = [v for word, v in KEYWORDS.items() if word in text.lower()]
            row = np.full(3, 0.05)
            row[max(set(votes), key=votes.count) if votes else NEU] = 0.9
            probabilities.append(np.log(row))
            features.append(
                [
                    float("courier" in text or "پیک" in text),
                    float("food" in text or "غذا" in text),
                    float("cold" in text),
                ]
            )
        return np.array(probabilities), np.array(features)


def test_topics_take_the_polarity_and_evidence_of_their_clause():
    model = StubModel(tagger=StubTagger())
    text = "The food was great but the courier was late"
    # Every clause read on its own, with the document, in one call.
    [prediction] = analyze(model, [text], ["en"], AspectOptions(cues=False, clause_pass="all"))
    assert model.calls == [[text, "The food was great", "but the courier was late"]]
    found = {t["topic"]: t for t in prediction.topics}
    assert found["product_quality"]["polarity"] == "positive"
    assert found["delivery"]["polarity"] == "negative"
    evidence = found["delivery"]["evidence"]
    assert text[evidence["start"] : evidence["end"]] == evidence["text"]
    assert evidence["text"] == "but the courier was late"
    assert prediction.mixed is True
    assert set(prediction.to_dict()) >= {"sentiment", "probabilities", "topics", "mixed"}


def test_a_single_clause_runs_once_and_is_not_mixed():
    model = StubModel(tagger=StubTagger())
    [prediction] = analyze(model, ["the courier was late"], ["en"], AspectOptions(cues=False))
    assert model.calls == [["the courier was late"]]
    assert prediction.mixed is False
    assert prediction.topics[0]["evidence"] == {
        "start": 0,
        "end": 20,
        "text": "the courier was late",
    }


def test_mixed_needs_confidence_on_both_sides():
    model = StubModel()
    text = "good food. bad courier"
    # Without per-language rules the global floor decides.
    assert analyze(model, [text], ["en"], AspectOptions(mixed_threshold=0.8, mixed_rules={}))[
        0
    ].mixed
    assert not analyze(model, [text], ["en"], AspectOptions(mixed_threshold=0.95, mixed_rules={}))[
        0
    ].mixed
    assert not analyze(model, ["good food. great courier"], ["en"])[0].mixed
    # A language's own rule wins over the global floor.
    rules = {"en": {"clause": 0.95, "doc": 1.01, "topics": False}}
    options = AspectOptions(mixed_threshold=0.5, mixed_rules=rules)
    assert not analyze(model, [text], ["en"], options)[0].mixed


def test_a_document_floor_makes_a_one_clause_text_mixed():
    model = StubModel()
    # The stub reads "so-so" as neither side confidently; the document floor catches a text
    # whose own probabilities give both positive and negative at least that much.
    [plain] = analyze(model, ["so-so"], ["en"], AspectOptions(mixed_rules={}))
    low = min(plain.probabilities["positive"], plain.probabilities["negative"])
    rules = {"en": {"clause": 0.7, "doc": low - 1e-6, "topics": False}}
    assert analyze(model, ["so-so"], ["en"], AspectOptions(mixed_rules=rules))[0].mixed
    rules["en"]["doc"] = low + 1e-6
    assert not analyze(model, ["so-so"], ["en"], AspectOptions(mixed_rules=rules))[0].mixed


def test_a_long_text_is_read_in_clauses_and_its_topic_found_at_the_end():
    model = StubModel(tagger=StubTagger())
    filler = "the weather is mild today. " * 40
    text = filler + "Sadly the courier was late."
    [prediction] = analyze(model, [text], ["en"], AspectOptions(cues=False))
    [units] = model.calls
    assert units[0] == text.strip()  # the document itself, whole (the transformer windows it)
    assert all(len(u) <= AspectOptions().max_chars for u in units[1:])
    found = {t["topic"]: t for t in prediction.topics}
    evidence = found["delivery"]["evidence"]
    assert evidence["text"] == "Sadly the courier was late."
    assert text[evidence["start"] : evidence["end"]] == evidence["text"]
    assert found["delivery"]["polarity"] == "negative"
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0)


def test_a_clause_longer_than_max_chars_is_cut_into_pieces():
    model = StubModel(tagger=StubTagger())
    text = "word " * 200 + "and the courier was late"
    [prediction] = analyze(model, [text], ["en"], AspectOptions(cues=False, max_chars=100))
    [units] = model.calls
    assert len(units) > 5 and all(len(u) <= 100 for u in units[1:])
    evidence = {t["topic"]: t for t in prediction.topics}["delivery"]["evidence"]
    assert "courier was late" in evidence["text"]


def test_a_positive_and_a_negative_topic_make_a_text_mixed():
    model = StubModel(tagger=StubTagger())
    text = "The food was great but the courier was late"
    # No clause is that confident.
    options = AspectOptions(cues=False, mixed_threshold=0.99, mixed_rules={})
    assert analyze(model, [text], ["en"], options)[0].mixed is True
    options.topic_mixed = False
    assert analyze(model, [text], ["en"], options)[0].mixed is False


def test_cue_rules_add_their_topic_with_the_match_as_evidence_and_their_polarity():
    model = StubModel(tagger=StubTagger())
    text = "غذا عالی بود ولی یک ساعت دیر رسید"  # no "پیک": the stub head misses delivery
    [prediction] = analyze(model, [text], ["fa"])
    found = {t["topic"]: t for t in prediction.topics}
    assert found["delivery"]["polarity"] == "negative"
    assert found["delivery"]["evidence"]["text"] in text
    assert found["product_quality"]["polarity"] == "positive"
    [without] = analyze(model, [text], ["fa"], AspectOptions(cues=False))
    assert "delivery" not in {t["topic"] for t in without.topics}


def test_custom_topics_get_clause_polarity_and_evidence():
    tagger = StubTagger(custom_topics=[Topic("cold_food", cues={"en": ("cold food",)})])
    tagger.matcher = type("M", (), {"threshold": 0.5})()
    text = "great service. but the soup was cold and bad"
    [prediction] = analyze(StubModel(tagger=tagger), [text], ["en"], AspectOptions(cues=False))
    found = {t["topic"]: t for t in prediction.topics}
    assert found["cold_food"]["polarity"] == "negative"
    assert found["cold_food"]["evidence"]["text"] == "but the soup was cold and bad"


def test_fast_model_predictions_carry_mixed(tiny_fast_model):
    predictions = tiny_fast_model.predict(["خیلی بد بود", "great app. terrible courier"])
    assert [type(p.mixed) for p in predictions] == [bool, bool]
    assert all(p.topics == [] for p in predictions)
    assert tiny_fast_model.predict([]) == []
    with pytest.raises(TypeError, match="single string"):
        tiny_fast_model.predict("a text")


def test_cue_topics_follow_the_clauses():
    assert cue_topics("My refund still hasn't arrived after 3 weeks", "en") == {"refund_return"}
    assert cue_topics("Mad love http://t.co/x", "en") == set()
    assert "app_website" in cue_topics("التطبيق لا يعمل", "ar")


def test_choose_thresholds_fits_f1_where_positives_suffice_and_avoids_false_positives_elsewhere():
    rng = np.random.default_rng(0)
    gold = np.zeros((200, 2), bool)
    gold[:50, 0] = True
    scores = np.zeros((200, 2))
    scores[:50, 0] = rng.uniform(0.6, 1.0, 50)  # positives of topic 0 score high
    scores[50:, 0] = rng.uniform(0.0, 0.4, 150)
    scores[:, 1] = rng.uniform(0.0, 0.7, 200)  # topic 1 never present
    cued = np.zeros((200, 2), bool)
    thresholds, notes = choose_thresholds(scores, cued, gold, np.array([0.5, 0.3]), 5)
    assert 0.4 <= thresholds[0] <= 0.6 and notes["0"]["f1"] == 1.0
    assert thresholds[1] > scores[:, 1].max() and notes["1"]["false_positives"] == 0
    # A cue that fires on a negative cannot be thresholded away; the floor still holds.
    cued[0, 1] = True
    thresholds, _ = choose_thresholds(scores, cued, gold, np.array([0.5, 0.95]), 5)
    assert thresholds[1] >= 0.95


def test_tagger_thresholds_by_language_survive_save_and_load(tmp_path):
    from cxnlp.topics.tagger import TopicTagger

    tagger = TopicTagger(("delivery", "price"), 4, hidden=8, thresholds=[0.5, 0.5])
    tagger.thresholds_by_lang = {"en": np.array([0.9, 0.2])}
    loaded = TopicTagger.load(tagger.save(tmp_path / "topics"))
    assert loaded.thresholds_for("en").tolist() == [0.9, 0.2]
    assert loaded.thresholds_for("fa").tolist() == [0.5, 0.5]
    assert "thresholds_by_lang" not in loaded.info


def test_a_document_read_against_all_of_its_evidence_is_revised():
    from cxnlp.models.pipeline import agree_with_evidence

    labels = tuple(SENTIMENTS)
    doc = np.zeros(3)
    doc[[NEG, NEU, POS]] = [0.3, 0.1, 0.6]
    late = [{"topic": "delivery", "polarity": "negative"}]
    revised = agree_with_evidence(doc, np.zeros((0, 3)), late, labels, 0.7, 0.8)
    assert revised.argmax() == NEG and revised.sum() == pytest.approx(1.0)
    # Mixed evidence, or evidence that agrees, leaves the document alone.
    both = late + [{"topic": "product_quality", "polarity": "positive"}]
    assert (agree_with_evidence(doc, np.zeros((0, 3)), both, labels, 0.7, 0.8) == doc).all()
    praise = [{"topic": "product_quality", "polarity": "positive"}]
    assert (agree_with_evidence(doc, np.zeros((0, 3)), praise, labels, 0.7, 0.8) == doc).all()
    # A neutral document is not pushed to a side.
    neutral = np.zeros(3)
    neutral[[NEG, NEU, POS]] = [0.3, 0.6, 0.1]
    assert (agree_with_evidence(neutral, np.zeros((0, 3)), late, labels, 0.7, 0.8) == neutral).all()


# --- the second pass (AspectOptions.clause_pass) -------------------------------------------


class PoolingStubModel(StubModel):
    """Like the transformer, reads a span from its document's pass: a span's sentiment leans
    towards the document's (0.7 of it, as a pooled clause carries its text's sentiment) and its
    features take 0.6 of the document's (a pooled clause takes topics from its context)."""

    def _read_units(self, docs, spans, langs=None):
        logits, features = self._forward(list(docs))
        doc_p = np.exp(logits)
        span_logits, span_features = [], []
        for k, (doc, ranges) in enumerate(zip(docs, spans, strict=True)):
            if not ranges:
                continue
            own_logits, own_features = self._forward([doc[a:b] for a, b in ranges])
            self.calls.pop()  # a stub's way to pool: not a read of its own
            for own_l, own_f in zip(own_logits, own_features, strict=True):
                span_logits.append(np.log(0.7 * doc_p[k] + 0.3 * np.exp(own_l)))
                span_features.append(np.minimum(own_f + 0.6 * features[k], 1.0))
        width = features.shape[1]
        return (
            logits,
            features,
            np.array(span_logits).reshape(-1, 3),
            np.array(span_features).reshape(-1, width),
        )


def _passes(text: str, lang: str, option: str, **kw):
    model = PoolingStubModel(tagger=StubTagger())
    again: list[str] = []
    [prediction] = analyze(
        model, [text], [lang], AspectOptions(cues=False, clause_pass=option, **kw),
        second_pass=again,
    )  # fmt: skip
    return prediction, again


def test_selective_pass_reads_again_the_other_side_of_a_contrast_only():
    # The document reads negative (two negative words to one positive): pooled, "The food was
    # great" leans negative with it.
    text = "The food was great but the courier was late and bad"
    pooled, none_again = _passes(text, "en", "none")
    assert none_again == []
    assert {t["topic"]: t["polarity"] for t in pooled.topics}["product_quality"] == "negative"
    everything, all_again = _passes(text, "en", "all")
    assert all_again == ["The food was great", "but the courier was late and bad"]
    selective, selective_again = _passes(text, "en", "selective")
    # The clause nearest the document (the negative one) stays pooled.
    assert selective_again == ["The food was great"]
    for prediction in (everything, selective):
        found = {t["topic"]: t["polarity"] for t in prediction.topics}
        assert found == {"product_quality": "positive", "delivery": "negative"}
        assert prediction.mixed is True
    assert pooled.mixed is False


def test_selective_pass_leaves_a_text_without_contrast_or_piece_only_topic_pooled():
    text = "The courier was late. It was bad."
    prediction, again = _passes(text, "en", "selective")
    assert again == []  # the document itself finds delivery: no clause is read again
    assert {t["topic"] for t in prediction.topics} == {"delivery"}
    # A text over clause_pass_chars is never read again, contrast or not.
    _, again = _passes("The food was great but the courier was late and bad", "en", "selective",
                       clause_pass_chars=10)  # fmt: skip
    assert again == []


def test_selective_pass_reads_again_a_clause_whose_topic_only_pooling_found():
    tagger = StubTagger()
    model = PoolingStubModel(tagger=tagger)
    # Features: [delivery, product_quality, custom]; units 0-1 documents, 2-4 pieces.
    plans = [[Span(0, 5, "a b c"), Span(6, 11, "d e f")], [Span(0, 5, "a b c")] * 3]
    piece_units = [[2, 3], [4, 5, 6]]
    probabilities = np.full((7, 3), 1 / 3)
    presence = np.zeros((7, 2))
    presence[0, 0] = 0.3  # document 0 does not reach delivery's threshold (0.5) ...
    presence[3, 0] = 0.6  # ... its second piece does: read it again
    presence[1, 1] = 0.9  # document 1 finds product_quality itself ...
    presence[5, 1] = 0.7  # ... so its piece that also does is not read again
    topic_scores = (presence, np.zeros((7, 2), int), np.zeros((7, 0)))
    args = (["x", "y"], ["en", "en"], plans, piece_units, [True, True], probabilities, None,
            topic_scores, tagger, AspectOptions(), tuple(model.labels))  # fmt: skip
    assert second_pass_pieces(*args) == [(0, 1)]
    # Only short texts' pieces are candidates.
    args = args[:4] + ([False, True],) + args[5:]
    assert second_pass_pieces(*args) == []


def test_clause_pass_must_be_a_known_option():
    with pytest.raises(ValueError, match="clause_pass"):
        analyze(StubModel(), ["good food. bad courier"], ["en"], AspectOptions(clause_pass="some"))


def test_a_cancellation_or_delay_clause_is_not_product_quality_unless_another_clause_is():
    model = StubModel(tagger=StubTagger())  # the stub head reads "food" as product_quality
    [one] = analyze(model, ["they cancelled my food order"], ["en"])
    assert one.topics == []
    [plain] = analyze(model, ["they changed my food order"], ["en"])
    assert [t["topic"] for t in plain.topics] == ["product_quality"]
    [late] = analyze(model, ["the food came an hour late"], ["en"])
    assert "product_quality" not in {t["topic"] for t in late.topics}
    [two] = analyze(model, ["The food was great. They cancelled my flight"], ["en"])
    [found] = two.topics
    assert (found["topic"], found["evidence"]["text"]) == ("product_quality", "The food was great.")


def test_noise_cancellation_is_not_a_cancellation():
    assert "refund_return" not in cue_topics("Great sound; good noise cancellation.", "en")
    assert "refund_return" in cue_topics("They cancelled my flight", "en")


def polarity_tagger(head_positive: float = 0.6) -> TopicTagger:
    """A real tagger (thresholds, per-language weights, polarity blend) whose head scores come
    from the stub model's features: delivery on "courier", product_quality on "food", and a
    polarity head that always leans positive."""
    tagger = TopicTagger(("delivery", "product_quality"), 3, hidden=4, thresholds=[0.5, 0.5])

    def scores(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        head = np.zeros((len(features), 2, 3))
        head[..., [NEG, NEU, POS]] = [
            (1 - head_positive) * 0.75,
            (1 - head_positive) * 0.25,
            head_positive,
        ]
        return np.asarray(features)[:, :2], head

    tagger.scores = scores  # type: ignore[method-assign]
    return tagger


def test_topic_polarity_weighs_the_clause_sentiment_by_the_texts_language(tmp_path):
    tagger = polarity_tagger()
    model = StubModel(tagger=tagger)
    texts, langs = ["the food was bad", "the food was bad"], ["fa", "en"]
    # The head leans positive; with no weight on the text's sentiment it decides.
    assert [p.topics[0]["polarity"] for p in analyze(model, texts, langs)] == ["positive"] * 2
    tagger.polarity_text_weight_by_lang = {"fa": 4.0}
    fa, en = analyze(model, texts, langs)
    assert (fa.topics[0]["polarity"], en.topics[0]["polarity"]) == ("negative", "positive")
    assert tagger.polarity_weight_for("fa") == 4.0 and tagger.polarity_weight_for("ar") == 0.0
    del tagger.scores
    loaded = TopicTagger.load(tagger.save(tmp_path / "topics"))
    assert loaded.polarity_text_weight_by_lang == {"fa": 4.0}
    assert "polarity_text_weight_by_lang" not in loaded.info


def test_read_once_reads_the_same_texts_once_and_restores_the_model():
    model = StubModel(tagger=StubTagger())
    texts = ["the food was great but the courier was late"]
    with read_once(model):
        first = analyze(model, texts, ["en"])
        reads = len(model.calls)  # the document pass, and the selective second pass if any
        again = analyze(model, texts, ["en"])
    assert reads >= 1 and len(model.calls) == reads
    assert [t["topic"] for t in first[0].topics] == [t["topic"] for t in again[0].topics]
    assert "read_units" not in vars(model)
    analyze(model, texts, ["en"])
    assert len(model.calls) == 2 * reads


def test_polarity_hits_score_found_topics_with_a_single_gold_polarity():
    found = [
        type("P", (), {"topics": [{"topic": "price", "polarity": "negative"}]})(),
        type("P", (), {"topics": [{"topic": "price", "polarity": "positive"},
                                  {"topic": "delivery", "polarity": "negative"}]})(),
    ]  # fmt: skip
    rows = pd.DataFrame({"polarity": [{"price": "negative"}, {"price": "mixed"}]})
    index, correct = polarity_hits(found, rows)
    # A `mixed` gold and a topic the gold lacks are not scored.
    assert index.tolist() == [0] and correct.tolist() == [True]


def test_choose_polarity_weight_moves_only_for_a_clear_gain_on_enough_topics():
    accuracy = {0.0: 0.80, 0.5: 0.81, 2.0: 0.85, 8.0: 0.85}
    assert choose_polarity_weight(accuracy, 100, 0.5, 0.02, 50) == 2.0  # tie: nearest 0.5
    assert choose_polarity_weight(accuracy, 100, 0.5, 0.05, 50) is None
    assert choose_polarity_weight(accuracy, 20, 0.5, 0.02, 50) is None


def test_fit_polarity_weights_chooses_per_language_from_one_encoder_pass():
    tagger = polarity_tagger()
    tagger.polarity_text_weight_by_lang = {"en": 8.0}  # replaced: en shows no gain
    model = StubModel(tagger=tagger)
    rows = pd.DataFrame(
        {
            "text": ["the food was bad", "the courier was late"] * 2 + ["the food was great"] * 4,
            "lang": ["fa"] * 4 + ["en"] * 4,
            "polarity": [{"product_quality": "negative"}, {"delivery": "negative"}] * 2
            + [{"product_quality": "positive"}] * 4,
        }
    )
    report = fit_polarity_weights(model, rows, AspectOptions(), ["fa", "en"], 0.02, 4)
    assert len(model.calls) == 1
    assert report["fa"]["accuracy"]["0.0"] == 0.0 and report["fa"]["accuracy"]["8.0"] == 1.0
    # The smallest weight that makes the clause's sentiment win, fa only.
    assert tagger.polarity_text_weight_by_lang == {"fa": 0.25}
    assert report["en"] == {"pairs": 4, "weight": 0.0, "accuracy": report["en"]["accuracy"]}


def test_recalibration_names_the_languages_it_can_calibrate():
    with pytest.raises(ValueError, match=r"unknown language\(s\) \['de'\]; calibrate some of"):
        recalibrate_topics(StubModel(tagger=polarity_tagger()), None, ["de"])


def test_recalibrating_some_languages_keeps_the_others_and_reads_the_rows_once(tmp_path):
    import json

    from cxnlp.topics.tagger import TopicGate
    from training.topic_trainer import TopicConfig

    rows = [
        {"text": "پیک دیر بود", "topics": [{"topic": "delivery", "polarity": "negative"}]},
        {"text": "غذا عالی بود", "topics": [{"topic": "product_quality", "polarity": "positive"}]},
        {"text": "سلام", "topics": []},
    ] * 3
    path = tmp_path / "topics_dev_fa.jsonl"
    path.write_text(
        "".join(json.dumps({**r, "lang": "fa", "split": "dev"}) + "\n" for r in rows),
        encoding="utf-8",
    )
    config = TopicConfig(
        data_dir=str(tmp_path),
        calibration_sets=[str(path)],
        calibration_min_positives=1,
        polarity_min_pairs=1,
    )
    tagger = polarity_tagger()
    tagger.thresholds_by_lang = {"en": np.array([0.9, 0.9])}
    tagger.gates = {"en": TopicGate(np.zeros(3), 0.0, 0.4)}
    model = StubModel(tagger=tagger)
    report = recalibrate_topics(model, config, ["fa"])
    assert len(model.calls) == 1  # thresholds and polarity weights from one encoder pass
    assert set(tagger.thresholds_by_lang) == {"en", "fa"}
    assert tagger.thresholds_by_lang["en"].tolist() == [0.9, 0.9]
    assert tagger.gates["en"].floor == 0.4
    # The head leans positive; the late courier's own sentiment needs a weight to count.
    assert report["polarity"]["fa"]["accuracy"]["0.0"] < 1.0
    assert tagger.polarity_weight_for("fa") > 0 and "en" not in tagger.polarity_text_weight_by_lang
    assert tagger.info["recalibration"]["langs"] == ["fa"]


def test_candidate_scores_are_zero_where_the_document_gate_closes_when_gated():
    from cxnlp.topics.tagger import TopicGate
    from training.topic_calibration import candidate_scores

    tagger = polarity_tagger()
    tagger.gates = {"en": TopicGate(np.zeros(3), -5.0, 0.5)}  # closed for every English text
    rows = pd.DataFrame({"text": ["the food was bad"] * 2, "lang": ["en", "fa"]})
    model = StubModel(tagger=tagger)
    ungated, _ = candidate_scores(model, rows, AspectOptions(cues=False))
    gated, _ = candidate_scores(model, rows, AspectOptions(cues=False), gated=True)
    food = tagger.topics.index("product_quality")
    assert ungated[:, food].tolist() == [1.0, 1.0]
    assert gated[:, food].tolist() == [0.0, 1.0]
    assert set(tagger.gates) == {"en"}  # the tagger's own gates are back
