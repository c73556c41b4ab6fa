"""`adapt()`: a shipped model retrained on a customer's own labeled rows in minutes, without
forgetting what it knew.

The recipe (`training.adapt_recipe`) is sized by the rows given, not by the pool: a few epochs
over them, capped. What the base model knows is kept by replaying rows of its own training pool
(every language) in each batch, distilling to its predictions, and leaving the lower layers, the
blend weights and the topic head as they were.

`adapt` holds out a stratified part of the user's file and scores base and adapted on it and on a
sample of the standard test sets where they are at hand (`training.adapt_gate`). An adapted model
that is not better on the held-out rows, or loses more than the margin on any language's standard
tests, is refused: it is saved as `<out>.refused` for inspection, and `<out>` is left as it was.
The model's config and card record what it was adapted on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.modeldir import (
    ADAPT_CONFIG_FILE,
    CARD_FILE,
    DEV_CONFUSION_FILE,
    REFUSED_SUFFIX,
    TRAINING_CONFIG_FILE,
    read_config,
    write_dev_confusion,
    write_gate,
)
from cxnlp.models.base import SentimentModel
from cxnlp.text.normalize import normalize
from training.adapt_config import DEFAULT_MARGIN, AdaptConfig
from training.adapt_gate import (
    format_gate,
    gate_passed,
    gate_record,
    gate_verdict,
    run_gate,
    sample_test_sets,
)
from training.adapt_recipe import adapt_transformer, replay_pool, update_fast

logger = logging.getLogger(__name__)

__all__ = ["AdaptConfig", "AdaptResult", "adapt", "refused_path"]


@dataclass
class AdaptResult:
    """Where the adapted model was saved (`<out>`, or `<out>.refused` when the gate refused
    it), the gate's scores, and how long it took."""

    path: Path
    gate: dict[str, Any]
    seconds: float
    steps: int
    info: dict[str, Any] = field(default_factory=dict)
    refused: bool = False
    margin: float = DEFAULT_MARGIN

    def table(self) -> str:
        return format_gate(self.gate, self.margin)

    def verdict(self) -> str:
        return gate_verdict(self.gate, self.margin)


def refused_path(out: str | Path) -> Path:
    """Where a refused adaptation to `out` is saved."""
    out = Path(out)
    return out.with_name(out.name + REFUSED_SUFFIX)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stratified_split(
    frame: pd.DataFrame, holdout: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and held-out rows: within each (lang, label) group a `holdout` share, rounded, is
    held out (none from a group of one), so both parts keep the file's mix."""
    if holdout <= 0:
        return frame.reset_index(drop=True), frame.iloc[:0].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    held = []
    for _, rows in sorted(frame.groupby(["lang", "label"]).indices.items()):
        rows = np.sort(rows)
        k = int(round(len(rows) * holdout)) if len(rows) > 1 else 0
        held.extend(rng.permutation(rows)[:k].tolist())
    is_held = np.zeros(len(frame), dtype=bool)
    is_held[held] = True
    return (
        frame[~is_held].reset_index(drop=True),
        frame[is_held].reset_index(drop=True),
    )


def _members(model: SentimentModel) -> tuple[Any, Any]:
    """The transformer and fast members of a blend (either may be None), or the model itself."""
    if model.kind == "blend":
        found = {m.kind: m for m in model.members}
        return found.get("transformer"), found.get("fast")
    if model.kind == "transformer":
        return model, None
    if model.kind == "fast":
        return None, model
    raise ValueError(f"cannot adapt a {model.kind!r} model")


def _replay_rows(
    replay_data: str | Path | pd.DataFrame | None,
    config: AdaptConfig,
    train_rows: int,
    trained_on: list[str] | None,
    own_texts: list[str],
    own_langs: dict[str, float] | None = None,
) -> pd.DataFrame | None:
    """The replayed rows for `train_rows` rows of the user's, or None (no pool, no replay)."""
    if replay_data is None or config.replay_ratio == 0:
        return None
    if isinstance(replay_data, pd.DataFrame):
        corpus = replay_data
    elif Path(replay_data).is_dir():
        from training.data import load_corpus

        corpus = load_corpus(replay_data)
    else:
        logger.warning("no training pool at %s: adapting without replay", replay_data)
        return None
    draws = config.steps_for(train_rows, replay=True) * config.batch_parts(True)[1]
    pool = replay_pool(
        corpus,
        min(config.max_replay_rows, draws),
        config.seed,
        datasets=trained_on,
        exclude_texts=own_texts,
        own_langs=own_langs,
        own_share=config.replay_own_langs,
    )
    return pool if len(pool) else None


def adapt(
    base: str | Path,
    data_file: str | Path,
    out: str | Path,
    *,
    config: AdaptConfig | None = None,
    test_data: str | Path | pd.DataFrame | None = None,
    test_per_dataset: int | None = 200,
    replay_data: str | Path | pd.DataFrame | None = None,
    margin: float = DEFAULT_MARGIN,
    progress: bool = True,
    base_cache: dict[str, Any] | None = None,
) -> AdaptResult:
    """Adapt model `base` (name or path) to the labeled rows of `data_file` and save it to `out`.

    `data_file` is a labeled table (text,label[,lang]) or a Label Studio JSON export; blank
    labels are skipped. A stratified `config.holdout` share is held out for the gate; with
    `test_data` (a corpus directory, or standard test rows already sampled) the gate also scores
    both models on up to `test_per_dataset` rows of each standard test set. `replay_data` (a
    corpus directory, or the frame `training.data.load_corpus` reads from it) gives the base's
    training pool, whose train rows are replayed; without it nothing is replayed. A model the
    gate refuses (see `training.adapt_gate.gate_passed` with `margin`) is saved at
    `refused_path(out)`, and `out` is left as it was. `base_cache` keeps the base's predictions
    on the standard tests between calls with the same base (see `adapt_gate.predict_rows`).

    >>> result = adapt("default", "my_labels.csv", "models/mine")  # doctest: +SKIP
    >>> result.refused, result.path  # doctest: +SKIP
    (False, PosixPath('models/mine'))
    """
    from cxnlp.models.blend import BlendedSentimentModel
    from cxnlp.models.store import load, resolve_model
    from training.data import read_labeled

    config = config or AdaptConfig()
    started = time.time()
    base_dir = resolve_model(base)
    data_file = Path(data_file)
    out = Path(out)
    frame = read_labeled(data_file, skip_unlabeled=True)
    if frame.empty:
        raise ValueError(f"{data_file}: no labeled rows to adapt on")
    frame = frame[["text", "label", "lang"]].assign(dataset=data_file.stem)
    train_raw, holdout = stratified_split(frame, config.holdout, config.seed)
    if train_raw.empty:
        raise ValueError(f"{data_file}: no rows left to train on after the held-out part")
    train = train_raw.assign(
        text=[
            normalize(t, lang=lang)
            for t, lang in zip(train_raw["text"], train_raw["lang"], strict=True)
        ]
    )
    base_config = read_config(base_dir)
    replay = _replay_rows(
        replay_data,
        config,
        len(train),
        base_config.get("trained_on"),
        frame["text"].tolist(),
        own_langs=frame["lang"].value_counts(normalize=True).to_dict(),
    )
    logger.info(
        "adapting %s on %d rows of %s (%d held out), %d replayed rows",
        base_dir,
        len(train),
        data_file,
        len(holdout),
        0 if replay is None else len(replay),
    )
    base_model = load(base_dir)
    transformer, fast = _members(base_model)
    info: dict[str, Any] = {}
    steps = 0
    new_transformer = new_fast = None
    if transformer is not None:
        new_transformer, info["transformer"] = adapt_transformer(
            transformer, train, config, progress, replay=replay
        )
        steps = info["transformer"]["steps"]
    if fast is not None:
        new_fast, info["fast"] = update_fast(fast, train, config, progress, replay=replay)
    if base_model.kind == "blend":
        members = [
            new_transformer if m.kind == "transformer" else new_fast for m in base_model.members
        ]
        adapted: SentimentModel = BlendedSentimentModel(members, base_model.weights)
        adapted.labels = base_model.labels
    else:
        adapted = new_transformer if new_transformer is not None else new_fast
    adapted.temperatures_ = dict(base_model.temperatures_)
    adapted.topic_tagger = base_model.topic_tagger
    # The mixed and urgency heads are carried like the topic head: they read the same features.
    adapted.mixed_head = base_model.mixed_head
    adapted.urgency_head = base_model.urgency_head
    train_seconds = time.time() - started

    test_frame = None
    if isinstance(test_data, pd.DataFrame):
        test_frame = test_data
    elif test_data is not None and Path(test_data).is_dir():
        test_frame = sample_test_sets(test_data, test_per_dataset, config.seed)
    gate = run_gate(
        base_model,
        adapted,
        holdout,
        test_frame=test_frame,
        progress=progress,
        base_cache=base_cache,
    )
    gate["base"] = str(base_dir)
    gate["test_data"] = (
        None
        if test_frame is None
        else ("given rows" if test_frame is test_data else str(test_data))
    )
    gate["test_per_dataset"] = test_per_dataset if test_frame is not None else None

    record = {
        "file": data_file.name,
        "sha256": file_sha256(data_file),
        "rows": int(len(frame)),
        "train_rows": int(len(train)),
        "holdout_rows": int(len(holdout)),
        "replay_rows": 0 if replay is None else int(len(replay)),
        "labels": {k: int(v) for k, v in frame["label"].value_counts().sort_index().items()},
        "langs": {k: int(v) for k, v in frame["lang"].value_counts().sort_index().items()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "base": base_config.get("name", base_dir.name),
        "base_path": str(base_dir),
        "steps": steps,
        "train_seconds": round(train_seconds, 1),
    }
    staging = out.with_name(out.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    adapted.save(
        staging,
        extra_config={
            "name": out.name,
            "trained_on": base_config.get("trained_on", []),
            "train_rows": base_config.get("train_rows"),
            "adapted_on": record,
        },
    )
    holdout_confusion = gate.get("holdout", {}).pop("adapted_confusion", None)
    if holdout_confusion is not None and len(holdout) >= 30:
        # The user's own channel describes the model's errors there better than the pool's dev.
        write_dev_confusion(staging, holdout_confusion)
    elif (base_dir / DEV_CONFUSION_FILE).exists():
        shutil.copy(base_dir / DEV_CONFUSION_FILE, staging / DEV_CONFUSION_FILE)
    if (base_dir / TRAINING_CONFIG_FILE).exists():
        shutil.copy(base_dir / TRAINING_CONFIG_FILE, staging / TRAINING_CONFIG_FILE)
    (staging / ADAPT_CONFIG_FILE).write_text(
        json.dumps({**asdict(config), "info": info}, indent=2) + "\n", encoding="utf-8"
    )
    seconds = time.time() - started
    gate["seconds"] = round(seconds, 1)
    refused = not gate_passed(gate, margin)
    write_gate(staging, gate_record(gate, margin))
    (staging / CARD_FILE).write_text(
        adapted_card(record, config, info, gate, margin), encoding="utf-8"
    )
    final = refused_path(out) if refused else out
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    if refused:
        logger.warning("the gate refused the adapted model: saved as %s, not as %s", final, out)
    return AdaptResult(
        path=final,
        gate=gate,
        seconds=seconds,
        steps=steps,
        info=info,
        refused=refused,
        margin=margin,
    )


def adapted_card(
    record: dict[str, Any],
    config: AdaptConfig,
    info: dict[str, Any],
    gate: dict[str, Any],
    margin: float = DEFAULT_MARGIN,
) -> str:
    """MODEL_CARD.md of an adapted model: what it was adapted on, how, and the gate."""
    labels = ", ".join(f"{k} {v}" for k, v in record["labels"].items())
    langs = ", ".join(f"{k} {v}" for k, v in record["langs"].items())
    lines = [
        f"# Model card: adapted from `{record['base']}`",
        "",
        "## Adapted on",
        "",
        f"- file: `{record['file']}` (sha256 `{record['sha256']}`)",
        f"- rows: {record['rows']} ({labels}; {langs}), {record['train_rows']} trained on, "
        f"{record['holdout_rows']} held out (stratified by language and label) for the gate",
        f"- replayed: {record['replay_rows']} rows of the base's training pool "
        f"({config.replay_own_langs:.0%} drawn from your rows' languages, the rest in equal "
        "shares per language)",
        f"- date: {record['date']}",
        f"- base model: `{record['base']}` ({record['base_path']})",
        "",
        "## Recipe",
        "",
    ]
    if "transformer" in info:
        t = info["transformer"]
        batch = t["batch"]
        lines.append(
            f"- transformer: LoRA (r {config.lora_r}, alpha {config.lora_alpha:g}, on "
            f"{', '.join(config.lora_modules)}) on encoder layers "
            f"{t['lora_layers'][0]}-{t['lora_layers'][1]}, merged into the saved weights; "
            f"layers 0-{t['frozen_layers'][1]} (the topic head's tap among them) untouched; "
            f"{t['steps']} steps of {batch['user_rows']} of your rows and "
            f"{batch['replayed_rows']} replayed rows (about {config.epochs:g} epochs, capped at "
            f"{config.max_steps}); loss on your rows {1 - config.distill_weight:.2f} x "
            f"cross-entropy + {config.distill_weight:.2f} x KL to the base's predictions (T "
            f"{config.distill_temperature:g}), on replayed rows "
            f"{1 - config.replay_distill_weight:.2f} x cross-entropy + "
            f"{config.replay_distill_weight:.2f} x KL, + {config.feature_weight:.2f} x top-layer "
            "feature drift; sentiment head "
            + ("trained" if config.train_head else "kept (shared by every language)")
        )
    if "fast" in info:
        lines.append(
            f"- char n-gram member: the weights of {info['fast']['ngrams_updated']} n-grams "
            f"moved from the base's by an L2-penalised fit (C {config.fast_C:g}, a tenth of it "
            f"for 1-2 character n-grams), {info['fast']['replayed_rows']} replayed rows held to "
            "the base's predictions; IDF and intercepts kept"
        )
    lines += [
        "- blend weights, calibration temperatures and the topic head: the base's",
        "",
        "## Gate",
        "",
        "```",
        format_gate(gate, margin),
        "```",
        "",
        "The held-out rows are the gate's alone (never trained on). `dev_confusion.json` (used by "
        "`cxnlp report` for ACC) is the adapted model's confusion on them when there are at least "
        "30, else the base's.",
        "",
    ]
    return "\n".join(lines)
