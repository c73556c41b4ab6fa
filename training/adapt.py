"""`adapt()`: a shipped model retrained on a customer's own labeled rows in minutes.

The recipe is sized by the rows given, not by the pool: a few epochs over them, capped. What the
base model knows is kept by construction, since the user has none of the original pool:

- the transformer gets LoRA adapters on the encoder layers above the topic head's tap layer (the
  layers below it, and so the tap features, do not change at all) and a trainable sentiment
  head; its loss adds to the cross-entropy on the user's labels a distillation term (KL to the
  base model's own predictions on the user's texts) and a term that keeps the pooled top-layer
  features, which the topic head also reads, near the base model's; the adapters are merged into
  the saved weights, so the result is an ordinary model directory;
- the char n-gram member is updated, not refit: its weights move from the base's by an
  L2-penalised step fitted on the user's rows (the base's IDF and weights are the prior);
- the blend weights and the topic head are the base's.

`adapt` holds out a stratified part of the user's file and scores base and adapted on it (the
gate), and on a sample of the standard test sets where they are at hand; the model's config and
card record what it was adapted on.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import (
    ADAPT_CONFIG_FILE,
    CARD_FILE,
    DEV_CONFUSION_FILE,
    TRAINING_CONFIG_FILE,
    GateRecord,
    read_config,
    write_dev_confusion,
    write_gate,
)
from cxnlp.models.base import SentimentModel
from cxnlp.models.evaluation import evaluate_frame
from cxnlp.text.normalize import normalize

logger = logging.getLogger(__name__)

# The encoder sub-layers that get LoRA adapters, in every layer from the tap layer up.
LORA_TARGETS = (
    r"attention\.self\.(query|key|value)",
    r"attention\.output\.dense",
    r"intermediate\.dense",
    r"output\.dense",
)


@dataclass
class AdaptConfig:
    """The adaptation recipe. Steps = epochs x train rows / batch_size, within [min, max]."""

    epochs: float = 4.0
    min_steps: int = 30
    max_steps: int = 400
    batch_size: int = 16
    lr: float = 1e-3
    # The sentiment head is shared by every language: moving it (its bias above all) to fit one
    # customer's label mix would move the other languages' predictions too, so by default only
    # the adapters learn.
    train_head: bool = False
    head_lr: float = 1e-3
    warmup_ratio: float = 0.1
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    # Loss = (1 - distill_weight) CE + distill_weight KL(base || adapted) at the temperature,
    # + feature_weight x (top-layer feature drift / its variance under the base).
    distill_weight: float = 0.3
    distill_temperature: float = 2.0
    feature_weight: float = 0.3
    # Draws per label in proportion to count ** (1 - class_balance): 1 balances the labels fully.
    class_balance: float = 0.5
    # Fast member: inverse strength of the pull towards the base weights (as scikit-learn's C).
    fast_C: float = 4.0
    holdout: float = 0.2
    seed: int = 13
    threads: int | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AdaptConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown adapt settings {unknown}; expected some of {sorted(known)}")
        return cls(**raw)

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.min_steps < 1 or self.max_steps < self.min_steps:
            raise ValueError("need 1 <= min_steps <= max_steps")
        if not 0.0 <= self.distill_weight < 1.0:
            raise ValueError(f"distill_weight must be in [0, 1), got {self.distill_weight}")

    def steps_for(self, rows: int) -> int:
        wanted = math.ceil(self.epochs * rows / self.batch_size)
        return int(min(self.max_steps, max(self.min_steps, wanted)))


@dataclass
class AdaptResult:
    path: Path
    gate: dict[str, Any]
    seconds: float
    steps: int
    info: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        return format_gate(self.gate)


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


def _row_weights(labels: pd.Series, class_balance: float) -> np.ndarray:
    counts = labels.map(labels.value_counts()).to_numpy(dtype=np.float64)
    weights = counts ** (-class_balance)
    return weights / weights.mean()


def label_masks(train: pd.DataFrame) -> torch.Tensor:
    """Per row, 1 for each label the user's file uses: a file labeled positive / negative only
    leaves the model's neutral as it was. A file with a single label trains on all three."""
    present = set(train["label"])
    allowed = [float(label in present or len(present) < 2) for label in SENTIMENTS]
    return torch.tensor([allowed] * len(train))


def _top(net, hidden: torch.Tensor, mask: torch.Tensor, first: int):
    """Logits and mean-pooled top-layer features from the hidden states after layer `first`."""
    from cxnlp.backbone.spec import mean_pool

    hidden = net._run_layers(hidden, mask, first, len(net.layers))
    pooled = mean_pool(hidden, mask)
    return net.head(net.dropout(pooled)), pooled


def adapt_transformer(
    member: Any, train: pd.DataFrame, config: AdaptConfig, progress: bool = True
) -> tuple[Any, dict[str, Any]]:
    """A copy of the transformer `member` adapted to `train` (normalised `text`, `label`)."""
    from peft import LoraConfig, get_peft_model

    from cxnlp.models.transformer import TransformerSentimentModel
    from training.transformer_trainer import (
        _compute_dtype,
        _pad,
        cache_lower_layers,
        label_set_cross_entropy,
        tokenize,
    )

    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    net = copy.deepcopy(member.net).float().cpu()
    tap = member.tap_layer
    n_layers = len(net.layers)
    ids = tokenize(
        member.tokenizer, train["text"].tolist(), member.max_length, member.net.spec.prefix
    )
    if tap > 0:
        cache = cache_lower_layers(net, ids, tap)
    else:  # a model whose topic head taps the embeddings: nothing below it to cache
        raise ValueError("the base model's tap layer is 0; adapt needs frozen lower layers")
    autocast = _compute_dtype(torch.device("cpu")) == "bfloat16"
    compute = torch.bfloat16 if autocast else torch.float32

    # The base model's own predictions and features on the user's texts: the distillation targets.
    net.eval()
    teacher_logits = torch.zeros((len(ids), len(SENTIMENTS)))
    teacher_pooled = torch.zeros((len(ids), net.head.in_features))
    order = np.argsort([len(x) for x in ids], kind="stable")
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(ids), 64), desc="base predictions", unit="batch", disable=not progress
        ):
            index = order[start : start + 64]
            hidden, mask = _pad([cache[j] for j in index])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits, pooled = _top(net, hidden.to(compute), mask, tap)
            teacher_logits[index] = logits.float()
            teacher_pooled[index] = pooled.float()
    feature_scale = float(teacher_pooled.var(dim=0).mean().clamp(min=1e-8))

    layers = "|".join(str(i) for i in range(tap, n_layers))
    targets = "|".join(LORA_TARGETS)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=rf"encoder\.encoder\.layer\.({layers})\.({targets})",
        bias="none",
    )
    peft_model = get_peft_model(net, lora)
    inner = peft_model.base_model.model
    adapters = [p for n, p in inner.named_parameters() if p.requires_grad and "lora_" in n]
    head = list(inner.head.parameters()) if config.train_head else []
    for parameter in head:
        parameter.requires_grad_(True)
    groups = [{"params": adapters, "lr": config.lr}]
    if head:
        groups.append({"params": head, "lr": config.head_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    total = config.steps_for(len(train))
    warmup = max(1, int(total * config.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else max(0.0, (total - step) / max(1, total - warmup))
        ),
    )
    labels = torch.tensor([SENTIMENTS.index(label) for label in train["label"]])
    masks = label_masks(train)
    weights = torch.tensor(_row_weights(train["label"], config.class_balance))
    generator = torch.Generator().manual_seed(config.seed)
    temperature = config.distill_temperature
    alpha, beta = config.distill_weight, config.feature_weight

    inner.train()
    losses: list[float] = []
    started = time.time()
    bar = tqdm(total=total, desc="adapting", unit="step", disable=not progress)
    for step in range(total):
        batch = torch.multinomial(weights, config.batch_size, replacement=True, generator=generator)
        batch = batch.tolist()
        hidden, mask = _pad([cache[j] for j in batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits, pooled = _top(inner, hidden.to(compute), mask, tap)
        logits, pooled = logits.float(), pooled.float()
        ce = label_set_cross_entropy(logits, labels[batch], masks[batch])
        kl = torch.nn.functional.kl_div(
            torch.log_softmax(logits / temperature, dim=-1),
            torch.softmax(teacher_logits[batch] / temperature, dim=-1),
            reduction="batchmean",
        ) * (temperature**2)
        drift = ((pooled - teacher_pooled[batch]) ** 2).mean() / feature_scale
        loss = (1 - alpha) * ce + alpha * kl + beta * drift
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapters + head, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        if (step + 1) % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    bar.close()
    seconds = time.time() - started
    logger.info("adapted in %d steps, %.0f s", total, seconds)
    merged = peft_model.merge_and_unload().eval()
    model = TransformerSentimentModel(
        member.tokenizer,
        merged,
        max_length=member.max_length,
        trained_from_layer=member.trained_from_layer,
        backbone=member.backbone,
        batch_size=member.batch_size,
        dtype=member.dtype,
        weights_dtype=member.weights_dtype,
    )
    model.labels = member.labels
    model.temperatures_ = dict(member.temperatures_)
    info = {
        "steps": total,
        "seconds": round(seconds, 1),
        "lora_layers": [tap, n_layers - 1],
        "frozen_layers": [0, tap - 1],
        "first_loss": round(float(np.mean(losses[:10])), 4),
        "last_loss": round(float(np.mean(losses[-10:])), 4),
    }
    return model, info


def update_fast(
    fast: Any, train: pd.DataFrame, config: AdaptConfig, progress: bool = True
) -> tuple[Any, dict[str, Any]]:
    """A copy of the char n-gram member whose weights take an L2-penalised step from the base's
    towards the user's rows: minimise sum_i w_i CE_i + sum_j dW_j^2 / (2 C_j) over the weights of
    the n-grams the rows contain. The intercepts stay, and n-grams of one or two characters (a
    script's letters, shared by every text in it, so a language-wide intercept in effect) move
    ten times less: one customer's label mix must not shift every Persian or Arabic text. Labels
    a file never uses are left out of its rows' softmax, as for the transformer."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax
    from sklearn.feature_extraction.text import HashingVectorizer

    texts = train["text"].tolist()
    x = fast.tfidf_.transform(fast._vectorizer().transform(texts)).tocsr()
    columns = np.unique(x.indices)
    xs = x[:, columns].tocsr()
    base_w = fast.classifier_.coef_[:, columns].copy()
    base_b = fast.classifier_.intercept_.copy()
    short_vectorizer = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(1, 2),
        n_features=fast.n_features,
        alternate_sign=False,
        norm=None,
        lowercase=True,
    )
    short = np.isin(columns, np.unique(short_vectorizer.transform(texts).indices))
    inverse_c = np.where(short, 10.0, 1.0) / config.fast_C
    k, c = len(columns), len(SENTIMENTS)
    y = np.array([SENTIMENTS.index(label) for label in train["label"]])
    allowed = label_masks(train).numpy() > 0
    weight = _row_weights(train["label"], config.class_balance)
    onehot = np.eye(c)[y]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        dw = theta.reshape(c, k)
        z = np.asarray(xs @ (base_w + dw).T) + base_b
        z = np.where(allowed, z, -1e9)
        logp = log_softmax(z, axis=1)
        loss = -float(np.sum(weight * logp[np.arange(len(y)), y]))
        loss += float(np.sum(dw**2 * inverse_c)) / 2
        g = (np.exp(logp) - onehot) * weight[:, None]
        grad = np.asarray((xs.T @ g).T) + dw * inverse_c
        return loss, grad.ravel()

    bar = tqdm(total=200, desc="updating the n-gram member", unit="iter", disable=not progress)
    result = minimize(
        objective,
        np.zeros(c * k),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 200},
        callback=lambda _: bar.update(1),
    )
    bar.close()
    updated = copy.deepcopy(fast)
    updated.classifier_.coef_ = fast.classifier_.coef_.copy()
    updated.classifier_.coef_[:, columns] += result.x.reshape(c, k)
    info = {
        "ngrams_updated": int(k),
        "short_ngrams": int(short.sum()),
        "iterations": int(result.nit),
    }
    return updated, info


def _predict(
    model: SentimentModel, frame: pd.DataFrame, desc: str, progress: bool, chunk: int = 256
) -> tuple[np.ndarray, list[list[str]]]:
    """Probabilities and topic names of each row, in chunks, with a progress bar."""
    probabilities, topics = [], []
    texts, langs = frame["text"].astype(str).tolist(), frame["lang"].tolist()
    for start in tqdm(
        range(0, len(texts), chunk),
        desc=desc,
        unit="chunk",
        disable=not progress or len(texts) <= chunk,
    ):
        predictions = model.predict(texts[start : start + chunk], langs[start : start + chunk])
        probabilities.append(
            [[p.probabilities[label] for label in SENTIMENTS] for p in predictions]
        )
        topics.extend([sorted(t["topic"] for t in p.topics) for p in predictions])
    if not probabilities:
        return np.zeros((0, len(SENTIMENTS))), []
    return np.concatenate([np.asarray(p) for p in probabilities]), topics


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("n", "macro_f1", "accuracy", "ece", "binary_macro_f1")
    out = {"*": {k: v for k, v in report["overall"].items() if k in keep}}
    for lang, scores in report.get("by_lang", {}).items():
        out[lang] = {k: v for k, v in scores.items() if k in keep}
    return out


def sample_test_sets(test_data: str | Path, per_dataset: int | None, seed: int) -> pd.DataFrame:
    """The standard test rows, at most `per_dataset` of each dataset (a seeded random sample)."""
    from training.evaluate import load_eval_frame

    frame = load_eval_frame(test_data)
    frame = frame[frame["label"].isin(SENTIMENTS)]
    if per_dataset:
        frame = (
            frame.sample(frac=1.0, random_state=seed)
            .groupby("dataset", sort=True)
            .head(per_dataset)
            .sort_index()
        )
    return frame.reset_index(drop=True)


def run_gate(
    base: SentimentModel,
    adapted: SentimentModel,
    holdout: pd.DataFrame,
    *,
    test_frame: pd.DataFrame | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Base against adapted on the held-out rows of the user's file (and on `test_frame`)."""
    gate: dict[str, Any] = {}
    if len(holdout):
        base_p, base_topics = _predict(base, holdout, "gate: base on held-out", progress)
        new_p, new_topics = _predict(adapted, holdout, "gate: adapted on held-out", progress)
        frame = holdout.assign(dataset="held-out")
        gate["holdout"] = {
            "base": _summary(evaluate_frame(base_p, frame, ("lang",))),
            "adapted": _summary(evaluate_frame(new_p, frame, ("lang",))),
            "topic_agreement": float(
                np.mean([a == b for a, b in zip(base_topics, new_topics, strict=True)])
            ),
            "adapted_confusion": _confusions(new_p, holdout),
        }
    if test_frame is not None and len(test_frame):
        base_p, _ = _predict(base, test_frame, "gate: base on test sets", progress)
        new_p, _ = _predict(adapted, test_frame, "gate: adapted on test sets", progress)
        gate["standard"] = {
            "rows": int(len(test_frame)),
            "base": _summary(evaluate_frame(base_p, test_frame, ("lang",))),
            "adapted": _summary(evaluate_frame(new_p, test_frame, ("lang",))),
        }
    return gate


def _confusions(probabilities: np.ndarray, frame: pd.DataFrame) -> dict[str, list[list[int]]]:
    from sklearn.metrics import confusion_matrix

    y = np.array([SENTIMENTS.index(label) for label in frame["label"]])
    predicted = probabilities.argmax(axis=1)
    labels = list(range(len(SENTIMENTS)))
    out = {"*": confusion_matrix(y, predicted, labels=labels).tolist()}
    for lang, rows in frame.groupby("lang").indices.items():
        out[str(lang)] = confusion_matrix(y[rows], predicted[rows], labels=labels).tolist()
    return out


def format_gate(gate: dict[str, Any], margin: float = 0.01) -> str:
    """The gate as a table: macro-F1 of base and adapted per part and language."""
    lines = [f"{'':<34} {'base':>7} {'adapted':>8} {'delta':>7}"]
    for part, title in (("holdout", "held-out part of your file"), ("standard", "standard tests")):
        if part not in gate:
            continue
        section = gate[part]
        extra = f", {section['rows']} rows" if part == "standard" else ""
        lines.append(f"{title}{extra}:")
        for key in section["base"]:
            b, a = section["base"][key]["macro_f1"], section["adapted"][key]["macro_f1"]
            name = "all" if key == "*" else key
            n = section["base"][key]["n"]
            lines.append(f"  {name + f' ({n} rows)':<32} {b:>7.4f} {a:>8.4f} {a - b:>+7.4f}")
    if "holdout" in gate:
        lines.append(
            f"topic tags unchanged on {gate['holdout']['topic_agreement']:.0%} of held-out rows"
        )
    lines.append("verdict: " + gate_verdict(gate, margin))
    return "\n".join(lines)


def gate_passed(gate: dict[str, Any], margin: float = 0.01) -> bool:
    """Better than the base on the held-out rows (when there are any) and within `margin` of it
    on every language's standard tests (when they were run): what `gate_verdict` says in words."""
    if "holdout" in gate:
        b = gate["holdout"]["base"]["*"]["macro_f1"]
        if not gate["holdout"]["adapted"]["*"]["macro_f1"] > b:
            return False
    return all(row["ok"] for row in gate_rows(gate, margin) if row["part"] == "standard")


def gate_rows(gate: dict[str, Any], margin: float = 0.01) -> list[dict[str, Any]]:
    """The gate's scores as `cxnlp.modeldir.GateRecord` rows: one per part and language."""
    rows = []
    for part in ("holdout", "standard"):
        if part not in gate:
            continue
        section = gate[part]
        for lang, base in section["base"].items():
            b, a = base["macro_f1"], section["adapted"][lang]["macro_f1"]
            # The held-out rows must gain (overall); a language may lose up to the margin.
            ok = a > b if (part, lang) == ("holdout", "*") else a >= b - margin
            rows.append(
                {
                    "part": part,
                    "lang": lang,
                    "n": base["n"],
                    "reference": b,
                    "candidate": a,
                    "delta": a - b,
                    "ok": ok,
                }
            )
    return rows


def gate_record(gate: dict[str, Any], margin: float = 0.01) -> GateRecord:
    """The adapt gate as the model directory's gate record."""
    details = {k: v for k, v in gate.items() if k not in ("holdout", "standard", "base")}
    if "holdout" in gate:
        details["topic_agreement"] = gate["holdout"]["topic_agreement"]
    if "standard" in gate:
        details["standard_rows"] = gate["standard"]["rows"]
    return GateRecord(
        "adapt",
        gate_passed(gate, margin),
        gate_verdict(gate, margin),
        margin,
        str(gate.get("base", "")),
        gate_rows(gate, margin),
        details,
    )


def gate_verdict(gate: dict[str, Any], margin: float = 0.01) -> str:
    notes = []
    if "holdout" in gate:
        b = gate["holdout"]["base"]["*"]["macro_f1"]
        a = gate["holdout"]["adapted"]["*"]["macro_f1"]
        notes.append(
            f"{'better' if a > b else 'not better'} than the base on your held-out rows "
            f"({a - b:+.4f} macro-F1)"
        )
    else:
        notes.append("no held-out rows: nothing of yours to compare on")
    if "standard" in gate:
        worse = [
            lang
            for lang in gate["standard"]["base"]
            if lang != "*"
            and gate["standard"]["adapted"][lang]["macro_f1"]
            < gate["standard"]["base"][lang]["macro_f1"] - margin
        ]
        notes.append(
            f"loses more than {margin:.2f} on the standard tests of {worse}"
            if worse
            else f"within {margin:.2f} of the base on every language's standard tests"
        )
    return "; ".join(notes)


def adapt(
    base: str | Path,
    data_file: str | Path,
    out: str | Path,
    *,
    config: AdaptConfig | None = None,
    test_data: str | Path | None = None,
    test_per_dataset: int | None = 200,
    progress: bool = True,
) -> AdaptResult:
    """Adapt model `base` (name or path) to the labeled rows of `data_file` and save it to `out`.

    `data_file` is a labeled table (text,label[,lang]) or a Label Studio JSON export; blank
    labels are skipped. A stratified `config.holdout` share is held out for the gate; with
    `test_data` (a corpus directory) the gate also scores both models on up to
    `test_per_dataset` rows of each standard test set.
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
    logger.info(
        "adapting %s on %d rows of %s (%d held out)", base_dir, len(train), data_file, len(holdout)
    )
    base_model = load(base_dir)
    transformer, fast = _members(base_model)
    info: dict[str, Any] = {}
    steps = 0
    new_transformer = new_fast = None
    if transformer is not None:
        new_transformer, info["transformer"] = adapt_transformer(
            transformer, train, config, progress
        )
        steps = info["transformer"]["steps"]
    if fast is not None:
        new_fast, info["fast"] = update_fast(fast, train, config, progress)
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
    train_seconds = time.time() - started

    test_frame = None
    if test_data is not None and Path(test_data).is_dir():
        test_frame = sample_test_sets(test_data, test_per_dataset, config.seed)
    gate = run_gate(base_model, adapted, holdout, test_frame=test_frame, progress=progress)
    gate["base"] = str(base_dir)
    gate["test_data"] = str(test_data) if test_frame is not None else None
    gate["test_per_dataset"] = test_per_dataset if test_frame is not None else None

    base_config = read_config(base_dir)
    record = {
        "file": data_file.name,
        "sha256": file_sha256(data_file),
        "rows": int(len(frame)),
        "train_rows": int(len(train)),
        "holdout_rows": int(len(holdout)),
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
    write_gate(staging, gate_record(gate))
    (staging / CARD_FILE).write_text(adapted_card(record, config, info, gate), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return AdaptResult(path=out, gate=gate, seconds=seconds, steps=steps, info=info)


def adapted_card(
    record: dict[str, Any], config: AdaptConfig, info: dict[str, Any], gate: dict[str, Any]
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
        f"- date: {record['date']}",
        f"- base model: `{record['base']}` ({record['base_path']})",
        "",
        "## Recipe",
        "",
    ]
    if "transformer" in info:
        t = info["transformer"]
        lines.append(
            f"- transformer: LoRA (r {config.lora_r}, alpha {config.lora_alpha:g}) on encoder "
            f"layers {t['lora_layers'][0]}-{t['lora_layers'][1]}, merged into the saved weights; "
            f"layers 0-{t['frozen_layers'][1]} (the topic head's tap) untouched; {t['steps']} "
            f"steps of {config.batch_size} (about {config.epochs:g} epochs, capped at "
            f"{config.max_steps}); loss {1 - config.distill_weight:.2f} x cross-entropy + "
            f"{config.distill_weight:.2f} x KL to the base's predictions (T "
            f"{config.distill_temperature:g}) + {config.feature_weight:.2f} x top-layer "
            "feature drift; sentiment head "
            + ("trained" if config.train_head else "kept (shared by every language)")
        )
    if "fast" in info:
        lines.append(
            f"- char n-gram member: the weights of {info['fast']['ngrams_updated']} n-grams "
            f"moved from the base's by an L2-penalised fit (C {config.fast_C:g}, a tenth of it "
            "for 1-2 character n-grams); IDF and intercepts kept"
        )
    lines += [
        "- blend weights, calibration temperatures and the topic head: the base's",
        "",
        "## Gate",
        "",
        "```",
        format_gate(gate),
        "```",
        "",
        "The held-out rows are the gate's alone (never trained on). `dev_confusion.json` (used by "
        "`cxnlp report` for ACC) is the adapted model's confusion on them when there are at least "
        "30, else the base's.",
        "",
    ]
    return "\n".join(lines)
