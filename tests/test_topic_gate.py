"""The document gate of the topic head (cxnlp/topics/tagger.py TopicGate, training/topic_calibration.py)."""

import numpy as np

from cxnlp.topics.tagger import TopicGate, TopicTagger
from training.topic_calibration import choose_gate_floor, fit_gate_weights


def test_gate_closes_only_its_language_and_survives_save(tmp_path):
    tagger = TopicTagger(["price", "delivery"], 4, hidden=8, thresholds=[0.0, 0.0])
    tagger.gates = {"en": TopicGate(np.array([10.0, 0, 0, 0]), 0.0, 0.5)}
    features = np.array([[-1.0, 0, 0, 0], [1.0, 0, 0, 0], [-1.0, 0, 0, 0]])
    langs = ["en", "en", "fa"]
    assert tagger.gate_open(features, langs).tolist() == [False, True, True]
    tagged = tagger.tag(features, np.full((3, 3), 1 / 3), langs)
    assert tagged[0] == [] and len(tagged[1]) == 2 and len(tagged[2]) == 2
    loaded = TopicTagger.load(tagger.save(tmp_path / "topics"))
    assert loaded.gate_open(features, langs).tolist() == [False, True, True]
    assert loaded.gates["en"].floor == 0.5


def test_fitted_gate_separates_and_floor_keeps_cues():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(2, 1, (50, 3)), rng.normal(-2, 1, (50, 3))])
    y = np.array([True] * 50 + [False] * 50)
    weights, bias = fit_gate_weights(x, y, 1.0)
    p = TopicGate(weights, bias, 0.5).probability(x)
    assert (p[:50] > 0.5).mean() > 0.9 and (p[50:] < 0.5).mean() > 0.9
    # Head scores fire everywhere; gold only on the first half; a cue on one negative row.
    scores = np.ones((100, 1))
    cued = np.zeros((100, 1), bool)
    cued[60] = True
    gold = y[:, None].copy()
    floor, f1, ungated = choose_gate_floor(p, scores, cued, gold, np.array([0.5]))
    assert f1 > ungated
    assert 0.05 <= floor <= 0.95
