"""The backbone runtime without `transformers` (cxnlp.backbone.runtime) computes what `transformers`
computes, bit for bit: the encoder's embeddings and every layer (float32, bfloat16 autocast, and
dropout in training), the tokenizer's ids, masks and offsets, and the shipped model's predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cxnlp.backbone import runtime
from cxnlp.models.transformer import additive_mask

TEXTS = [
    "غذا سرد بود و پیک یک ساعت دیر رسید",
    "کیفیت عالیه\u200cولی قیمتش بالاست",
    "الخدمة ممتازة والتوصيل سريع",
    "التطبيق بطيء ويتوقف دائما 😡",
    "The courier was two hours late!!",
    "Great app, FAST delivery ... love it",
    "",
    "ok",
    " ".join(["the food was cold and the driver was rude"] * 20),  # over 128 tokens
]


def _hf_encoder(path: Path) -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(path), attn_implementation="sdpa", use_safetensors=True)


def _hf_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _plain(value: object) -> object:
    """Lists of ids or of offset pairs, whatever sequence types hold them."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _layer_outputs(encoder: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> list:
    hidden = encoder.embeddings(input_ids=ids)
    outputs = [hidden]
    extended = additive_mask(mask, hidden.dtype)
    for layer in encoder.encoder.layer:
        out = layer(hidden, extended)
        hidden = out[0] if isinstance(out, tuple) else out
        outputs.append(hidden)
    return outputs


@pytest.fixture(scope="module")
def batch(built: Path) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = runtime.load_tokenizer(str(built))(
        ["query: " + t for t in TEXTS], truncation=True, max_length=128, padding=True,
        return_tensors="pt",
    )  # fmt: skip
    return encoded["input_ids"], encoded["attention_mask"]


@pytest.mark.parametrize("backbone", ["built", "tiny_backbone"])
def test_encoder_matches_transformers_bit_for_bit(
    backbone: str, batch: tuple[torch.Tensor, torch.Tensor], request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(backbone)
    ours, theirs = runtime.load_encoder(str(path)), _hf_encoder(path)
    assert isinstance(ours, runtime.BertModel) and not ours.training
    mine, hf = ours.state_dict(), theirs.state_dict()
    assert set(mine) == {k for k in hf if not k.endswith(("position_ids", "token_type_ids"))}
    assert all(torch.equal(mine[k], hf[k]) for k in mine)
    assert ours.config.hidden_size == theirs.config.hidden_size
    assert ours.config.pad_token_id == theirs.config.pad_token_id
    ids, mask = batch
    for autocast in (False, True):
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            got, want = _layer_outputs(ours, ids, mask), _layer_outputs(theirs, ids, mask)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True)), autocast


def test_encoder_trains_as_transformers_does(tiny_backbone: Path, batch) -> None:
    """Dropout draws the same masks in the same order, and the gradients are the same."""
    ids, mask = batch
    runs = []
    for encoder in (runtime.load_encoder(str(tiny_backbone)), _hf_encoder(tiny_backbone)):
        encoder.train()
        torch.manual_seed(7)
        outputs = _layer_outputs(encoder, ids, mask)
        outputs[-1].square().mean().backward()
        runs.append((outputs, dict(encoder.named_parameters())))
    (got, ours), (want, theirs) = runs
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert all(torch.equal(ours[k].grad, theirs[k].grad) for k in ours if "pooler" not in k)


def test_encoder_falls_back_to_transformers_where_it_cannot_run_the_directory(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_backbone / name, tmp_path / name)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}))
    assert not isinstance(runtime.load_encoder(str(tmp_path)), runtime.BertModel)


def test_tokenizer_matches_transformers(built: Path, tiny_bert_factory) -> None:
    ours, theirs = runtime.load_tokenizer(str(built)), _hf_tokenizer(built)
    assert isinstance(ours, runtime.Tokenizer)
    assert ours.pad_token_id == theirs.pad_token_id == 1
    texts = ["query: " + t for t in TEXTS]
    calls = [
        {"add_special_tokens": True, "return_offsets_mapping": True,
         "return_attention_mask": False, "truncation": False, "verbose": False},
        {"truncation": True, "max_length": 8, "return_attention_mask": False},
        {"truncation": True, "max_length": 128},
        {},  # after a truncating call: the long text is whole again
        {"truncation": True, "max_length": 128, "padding": True, "return_tensors": "pt"},
        {"truncation": True, "max_length": 16, "padding": True, "return_tensors": "np"},
    ]  # fmt: skip
    for kwargs in calls:
        got, want = ours(texts, **kwargs), dict(theirs(texts, **kwargs))
        assert set(got) == set(want), kwargs
        for key, value in want.items():
            if kwargs.get("return_tensors") == "pt":
                assert torch.equal(got[key], value), (kwargs, key)
            elif kwargs.get("return_tensors") == "np":
                assert (got[key] == value).all() and got[key].dtype == value.dtype, (kwargs, key)
            else:
                assert _plain(got[key]) == _plain(value), (kwargs, key)
    for text in (texts[0], "query: " + TEXTS[4]):
        got = ours(text, return_offsets_mapping=True)
        want = theirs(text, return_offsets_mapping=True)
        assert _plain(got["input_ids"]) == _plain(want["input_ids"])
        assert _plain(got["offset_mapping"]) == _plain(want["offset_mapping"])
    # A tokenizer whose config adds its own behaviour (BERT's WordPiece) stays with transformers.
    assert not isinstance(runtime.load_tokenizer(str(tiny_bert_factory(2))), runtime.Tokenizer)


def test_tokenizer_pickles(built: Path) -> None:
    import pickle

    tok = runtime.load_tokenizer(str(built))
    again = pickle.loads(pickle.dumps(tok))
    assert (
        again(["query: " + t for t in TEXTS])["input_ids"]
        == tok(["query: " + t for t in TEXTS])["input_ids"]
    )


@pytest.mark.slow
def test_shipped_default_predicts_as_it_does_on_transformers(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped model loaded on this runtime and on `transformers`: the same predictions, to
    the last bit, on texts of each language (topics, clauses and all)."""
    import cxnlp
    import cxnlp.models.transformer as transformer

    texts = TEXTS[:6] + [
        "غذا خوشمزه بود ولی پیک خیلی دیر رسید و پشتیبانی جواب نداد",
        "المنتج جيد لكن السعر مرتفع جدا والتغليف سيء",
        "The staff were friendly but the refund took three weeks",
    ]
    ours = cxnlp.load("default")
    assert isinstance(ours.member("transformer").net.encoder, runtime.BertModel)
    got = [p.to_dict() for p in ours.predict(texts)]
    monkeypatch.setattr(transformer, "load_encoder", lambda source: _hf_encoder(Path(source)))
    monkeypatch.setattr(transformer, "load_tokenizer", lambda source: _hf_tokenizer(Path(source)))
    theirs = cxnlp.load("default")
    assert not isinstance(theirs.member("transformer").net.encoder, runtime.BertModel)
    assert got == [p.to_dict() for p in theirs.predict(texts)]
