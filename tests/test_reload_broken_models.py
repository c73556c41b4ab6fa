"""/v1/admin/reload refuses broken model directories with 422 and the reason, and keeps serving the
old model (issue 15); a backbone directory holding a pickle is never loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import Settings, create_app

ADMIN = {"X-API-Key": "admin-key-0123456789"}
LABELS = ["negative", "neutral", "positive"]


def _truncated(base: Path, d: Path) -> None:
    shutil.copytree(base, d)
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _list_config(base: Path, d: Path) -> None:
    shutil.copytree(base, d)
    (d / "config.json").write_text("[1, 2]")


def _members_5(base: Path, d: Path) -> None:
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"kind": "blend", "labels": LABELS, "members": 5}))


def _self_blend(base: Path, d: Path) -> None:
    d.mkdir()
    members = [{"dir": ".", "weight": 0.5}, {"dir": "../" + d.name, "weight": 0.5}]
    (d / "config.json").write_text(
        json.dumps({"kind": "blend", "labels": LABELS, "members": members})
    )


def _pickle_backbone(base: Path, d: Path) -> None:
    backbone = d.parent / f"{d.name}-backbone"
    backbone.mkdir()
    (backbone / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    (backbone / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    d.mkdir()
    config = {
        "kind": "transformer", "labels": LABELS, "backbone": str(backbone),
        "max_length": 16, "trained_from_layer": 0,
    }  # fmt: skip
    (d / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_truncated, "SafetensorError"),
        (_list_config, "not an object"),
        (_members_5, "'members' must be a non-empty list"),
        (_self_blend, "cannot hold itself"),
        (_pickle_backbone, "safetensors"),
    ],
    ids=["truncated-safetensors", "list-config", "members-5", "self-blend", "pickle-backbone"],
)
def test_reload_of_a_broken_model_is_422_and_the_old_model_stays(
    tiny_model_dir, tmp_path, make, reason
):
    broken = tmp_path / "broken"
    make(tiny_model_dir, broken)
    settings = Settings(
        model=str(tiny_model_dir), api_keys=["k" * 20], admin_keys=[ADMIN["X-API-Key"]],
        jobs_dir=tmp_path / "jobs",
    )  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        r = c.post("/v1/admin/reload", json={"model": str(broken)}, headers=ADMIN)
        assert r.status_code == 422, r.text
        assert reason in r.json()["error"] and "still serving tiny" in r.json()["error"]
        assert c.get("/v1/models", headers=ADMIN).json()["name"] == "tiny"
        ok = c.post("/v1/classify", json={"items": [{"text": "Great app"}]}, headers=ADMIN)
        assert ok.status_code == 200 and ok.json()["items"][0]["sentiment"]


def test_a_pickle_in_a_backbone_dir_is_never_loaded(tmp_path, monkeypatch):
    import torch

    from cxnlp.models.transformer import build_net

    unpickled = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: unpickled.append(a) or {})
    _pickle_backbone(tmp_path, tmp_path / "model")
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "ok": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "model-backbone" / "tokenizer.json"))
    (tmp_path / "model-backbone" / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"})
    )
    with pytest.raises(OSError, match="safetensors"):
        build_net(str(tmp_path / "model-backbone"))
    assert not unpickled
