"""How `cxnlp adapt` moves a model towards a user's rows without forgetting the rest.

- The transformer gets LoRA adapters on the encoder layers from `lora_from_layer` up (by default
  the topic head's tap layer, so the tap features do not change) and keeps its sentiment head.
  The layers below are frozen: their output for every row is computed once, as predictions
  compute it, and cached in bfloat16. Every batch mixes the user's rows with replayed rows of
  the base's own training pool (every language, drawn evenly over its datasets): the loss on the
  user's rows is cross-entropy plus a distillation term (KL to the base's probabilities), on
  replayed rows mostly that KL, and on all rows a term that keeps the pooled top-layer features,
  which the topic head also reads, near the base's. Batches are drawn in windows sorted by
  length, so little of a batch is padding, with bfloat16 autocast where the CPU has it.
- The char n-gram member takes an L2-penalised step from the base's weights on the n-grams of
  the user's rows; replayed rows hold those weights to the base's predictions on them.

Everything is seeded by `AdaptConfig.seed`: the same rows and settings give the same model.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from cxnlp.labels import LANGS, SENTIMENTS
from cxnlp.text.clean import text_key
from cxnlp.text.normalize import normalize
from training.adapt_config import LORA_MODULES, AdaptConfig

logger = logging.getLogger(__name__)


def row_weights(labels: pd.Series, class_balance: float) -> np.ndarray:
    counts = labels.map(labels.value_counts()).to_numpy(dtype=np.float64)
    weights = counts ** (-class_balance)
    return weights / weights.mean()


def label_masks(train: pd.DataFrame) -> torch.Tensor:
    """Per row, 1 for each label the user's file uses: a file labeled positive / negative only
    leaves the model's neutral as it was. A file with a single label trains on all three."""
    present = set(train["label"])
    allowed = [float(label in present or len(present) < 2) for label in SENTIMENTS]
    return torch.tensor([allowed] * len(train))


def replay_pool(
    corpus: pd.DataFrame,
    n: int,
    seed: int,
    *,
    datasets: Sequence[str] | None = None,
    exclude_texts: Sequence[str] = (),
    own_langs: dict[str, float] | None = None,
    own_share: float = 0.0,
) -> pd.DataFrame:
    """`n` rows of the base's training pool to replay: train-split rows of `corpus` (as
    `training.data.load_corpus` reads it) with a sentiment label, of `datasets` when given (the
    base's `trained_on`), none whose text is in `exclude_texts` (the user's own), drawn evenly
    over each language's datasets; texts normalised as for training. `own_share` of the rows go
    to the user's languages in proportion to `own_langs` (each language's share of the user's
    rows), the rest in equal shares to every language (`own_share` 0: equal shares).

    >>> corpus = pd.DataFrame({"text": [f"t{i}" for i in range(60)], "split": "train",
    ...     "label": "positive", "lang": ["fa", "ar", "en"] * 20, "dataset": "d"})
    >>> replay_pool(corpus, 12, 0)["lang"].value_counts().to_dict()
    {'fa': 4, 'ar': 4, 'en': 4}
    >>> replay_pool(corpus, 12, 0, own_langs={"en": 1.0}, own_share=0.5)["lang"].value_counts().to_dict()
    {'en': 8, 'fa': 2, 'ar': 2}
    """
    rows = corpus[(corpus["split"] == "train") & corpus["label"].isin(SENTIMENTS)]
    if datasets:
        rows = rows[rows["dataset"].isin(set(datasets))]
    if len(exclude_texts):
        rows = rows[~rows["text"].map(text_key).isin({text_key(t) for t in exclude_texts})]
    langs = [lang for lang in LANGS if (rows["lang"] == lang).any()]
    if n <= 0 or not langs:
        return pd.DataFrame(columns=["text", "label", "lang", "dataset"])
    parts = []
    quotas = lang_quotas(n, langs, own_langs, own_share)
    for k, (lang, share) in enumerate(zip(langs, quotas, strict=True)):
        part = rows[rows["lang"] == lang]
        weights = 1.0 / part["dataset"].map(part["dataset"].value_counts())
        parts.append(part.sample(min(share, len(part)), weights=weights, random_state=seed + k))
    pool = pd.concat(parts, ignore_index=True)[["text", "label", "lang", "dataset"]]
    pool["text"] = [
        normalize(t, lang=lang) for t, lang in zip(pool["text"], pool["lang"], strict=True)
    ]
    return pool


def lang_quotas(
    n: int, langs: Sequence[str], own_langs: dict[str, float] | None, own_share: float
) -> list[int]:
    """Replayed rows per language of `langs`, summing to `n` (largest remainders): `own_share`
    of them by `own_langs` (weights, normalised over `langs`), the rest equally."""
    own = {lang: float((own_langs or {}).get(lang, 0.0)) for lang in langs}
    total = sum(own.values())
    if total <= 0:
        own_share = 0.0
    wanted = [
        n * ((1.0 - own_share) / len(langs) + (own_share * own[lang] / total if total else 0.0))
        for lang in langs
    ]
    quotas = [int(w) for w in wanted]
    order = sorted(range(len(langs)), key=lambda i: (quotas[i] - wanted[i], i))
    for i in order[: n - sum(quotas)]:
        quotas[i] += 1
    return quotas


def plan_batches(
    user_weights: np.ndarray,
    user_lengths: Sequence[int],
    replay_lengths: Sequence[int],
    steps: int,
    parts: tuple[int, int],
    bucket_batches: int,
    seed: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(user rows, replayed rows) of each step. User rows are drawn with replacement in
    proportion to `user_weights`; replayed rows go through seeded permutations of the pool, so
    each is read once before any twice. Each window of `bucket_batches` steps has its draws sorted
    by length before being cut into batches (then shuffled), so a batch is of similar lengths."""
    rng = np.random.default_rng(seed)
    n_user, n_replay = parts
    user = rng.choice(len(user_lengths), size=steps * n_user, p=user_weights / user_weights.sum())
    replay = np.zeros(0, dtype=np.int64)
    if n_replay and len(replay_lengths):
        needed = steps * n_replay
        rounds = -(-needed // len(replay_lengths))
        replay = np.concatenate([rng.permutation(len(replay_lengths)) for _ in range(rounds)])
        replay = replay[:needed]
    user_len, replay_len = np.asarray(user_lengths), np.asarray(replay_lengths)
    batches = []
    for first in range(0, steps, bucket_batches):
        count = min(bucket_batches, steps - first)
        u = user[first * n_user : (first + count) * n_user]
        u = u[np.argsort(user_len[u], kind="stable")].reshape(count, n_user)
        r = replay[first * n_replay : (first + count) * n_replay]
        if len(r):
            r = r[np.argsort(replay_len[r], kind="stable")].reshape(count, n_replay)
        else:
            r = np.zeros((count, 0), dtype=np.int64)
        batches.extend((u[k], r[k]) for k in rng.permutation(count))
    return batches


@torch.inference_mode()
def base_outputs(
    net: Any,
    states: Sequence[torch.Tensor],
    first_layer: int,
    autocast: bool,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and pooled top-layer features of `net` for each text, from its cached hidden
    states entering `first_layer`: the base's outputs the adapted model is held to, pooled as
    the model pools when it predicts (`SentimentNet.forward_from`)."""
    from cxnlp.models.transformer import pad_states

    net.eval()
    logits = torch.zeros((len(states), net.head.out_features))
    pooled = torch.zeros((len(states), net.head.in_features))
    order = np.argsort([len(s) for s in states], kind="stable")
    for start in range(0, len(states), batch_size):
        index = order[start : start + batch_size]
        hidden, mask = pad_states([states[j] for j in index])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            batch_logits, batch_pooled = net.forward_from(
                hidden if autocast else hidden.float(), mask, first_layer, with_pooled=True
            )
        logits[index] = batch_logits.float()
        pooled[index] = batch_pooled.float()
    return logits, pooled


def _kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.nn.functional.kl_div(
        torch.log_softmax(student / temperature, dim=-1),
        torch.softmax(teacher / temperature, dim=-1),
        reduction="batchmean",
    ) * (temperature**2)


def _lora_first_layer(member: Any, config: AdaptConfig) -> int:
    tap, n_layers = member.tap_layer, len(member.net.layers)
    if tap <= 0:  # a model whose topic head taps the embeddings: nothing below it to cache
        raise ValueError("the base model's tap layer is 0; adapt needs frozen lower layers")
    first = tap if config.lora_from_layer is None else config.lora_from_layer
    if not tap <= first < n_layers:
        raise ValueError(
            f"lora_from_layer {first}: expected {tap} (the topic head's tap layer, which must "
            f"not change) to {n_layers - 1} (the top layer)"
        )
    return first


def adapt_transformer(
    member: Any,
    train: pd.DataFrame,
    config: AdaptConfig,
    progress: bool = True,
    replay: pd.DataFrame | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A copy of the transformer `member` adapted to `train` (normalised `text`, `label`), with
    `replay` rows (normalised `text`, `label`, `dataset`) of the base's pool in every batch."""
    from peft import LoraConfig, get_peft_model

    from cxnlp.models.transformer import TransformerSentimentModel, pad_states
    from training.transformer_trainer import label_masks as dataset_label_masks
    from training.transformer_trainer import label_set_cross_entropy

    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    replay = replay if replay is not None and len(replay) else None
    first = _lora_first_layer(member, config)
    n_layers = len(member.net.layers)
    autocast = member.compute_dtype == "bfloat16"
    texts = train["text"].tolist() + ([] if replay is None else replay["text"].tolist())
    ids = member.token_ids(texts)
    started = time.time()
    states: list[torch.Tensor] = []
    for start in tqdm(
        range(0, len(ids), 256),
        desc=f"caching layers 0-{first - 1}",
        unit="chunk",
        disable=not progress,
    ):
        states.extend(member.lower_states(ids[start : start + 256], first))
    cache_seconds = time.time() - started

    net = copy.deepcopy(member.net).float().cpu()
    # The base's own predictions and features: the distillation targets.
    teacher_logits, teacher_pooled = base_outputs(net, states, first, autocast)
    feature_scale = float(teacher_pooled.var(dim=0).mean().clamp(min=1e-8))

    spec = net.spec
    layers = "|".join(re.escape(spec.layer_prefix(i)) for i in range(first, n_layers))
    modules = "|".join(LORA_MODULES[name] for name in config.lora_modules)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=rf"({layers})({modules})",
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

    n_train = len(train)
    parts = config.batch_parts(replay is not None)
    total = config.steps_for(n_train, replay is not None)
    warmup = max(1, int(total * config.warmup_ratio))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else max(0.0, (total - step) / max(1, total - warmup))
        ),
    )
    lengths = [len(x) for x in ids]
    batches = plan_batches(
        row_weights(train["label"], config.class_balance),
        lengths[:n_train],
        lengths[n_train:],
        total,
        parts,
        config.bucket_batches,
        config.seed,
    )
    labels = [SENTIMENTS.index(label) for label in train["label"]]
    masks = [label_masks(train)]
    if replay is not None:
        labels += [SENTIMENTS.index(label) for label in replay["label"]]
        masks.append(dataset_label_masks(replay, label_set_loss=True))
    label_tensor, mask_tensor = torch.tensor(labels), torch.cat(masks)
    temperature = config.distill_temperature
    share_user = parts[0] / sum(parts)

    inner.train()
    losses: list[float] = []
    padding: list[float] = []
    started = time.time()
    bar = tqdm(total=total, desc="adapting", unit="step", disable=not progress)
    for user_rows, replay_rows in batches:
        rows = np.concatenate([user_rows, n_train + replay_rows]).tolist()
        hidden, mask = pad_states([states[j] for j in rows])
        padding.append(1.0 - float(mask.float().mean()))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits, pooled = inner.forward_from(
                hidden if autocast else hidden.float(), mask, first, with_pooled=True
            )
        logits, pooled = logits.float(), pooled.float()
        u = slice(0, len(user_rows))
        loss = share_user * (
            (1 - config.distill_weight)
            * label_set_cross_entropy(logits[u], label_tensor[rows][u], mask_tensor[rows][u])
            + config.distill_weight * _kl(logits[u], teacher_logits[rows][u], temperature)
        )
        if len(replay_rows):
            r = slice(len(user_rows), len(rows))
            loss = loss + (1 - share_user) * (
                (1 - config.replay_distill_weight)
                * label_set_cross_entropy(logits[r], label_tensor[rows][r], mask_tensor[rows][r])
                + config.replay_distill_weight
                * _kl(logits[r], teacher_logits[rows][r], temperature)
            )
        drift = ((pooled - teacher_pooled[rows]) ** 2).mean() / feature_scale
        loss = loss + config.feature_weight * drift
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapters + head, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        if len(losses) % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    bar.close()
    seconds = time.time() - started
    logger.info("adapted in %d steps, %.0f s (caching %.0f s)", total, seconds, cache_seconds)
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
        "batch": {"user_rows": parts[0], "replayed_rows": parts[1]},
        "replay_rows": 0 if replay is None else int(len(replay)),
        "replay_langs": {}
        if replay is None
        else {str(k): int(v) for k, v in replay["lang"].value_counts().sort_index().items()},
        "seconds": round(seconds, 1),
        "cache_seconds": round(cache_seconds, 1),
        "autocast": "bfloat16" if autocast else "float32",
        "padding_share": round(float(np.mean(padding)), 3),
        "lora_layers": [first, n_layers - 1],
        "frozen_layers": [0, first - 1],
        "first_loss": round(float(np.mean(losses[:10])), 4),
        "last_loss": round(float(np.mean(losses[-10:])), 4),
    }
    return model, info


def update_fast(
    fast: Any,
    train: pd.DataFrame,
    config: AdaptConfig,
    progress: bool = True,
    replay: pd.DataFrame | None = None,
) -> tuple[Any, dict[str, Any]]:
    """A copy of the char n-gram member whose weights take an L2-penalised step from the base's
    towards the user's rows: minimise sum_i w_i CE_i + sum_j dW_j^2 / (2 C_j) over the weights of
    the n-grams the rows contain. The intercepts stay, and n-grams of one or two characters (a
    script's letters, shared by every text in it, so a language-wide intercept in effect) move
    ten times less: one customer's label mix must not shift every Persian or Arabic text. Labels
    a file never uses are left out of its rows' softmax, as for the transformer. `replay` rows
    (normalised) enter with the base's own probabilities as targets, weighted so that they are
    `replay_ratio` of the total, as in the transformer's batches: they hold the moved n-grams
    to what the base said about the other texts that contain them."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax, softmax
    from sklearn.feature_extraction.text import HashingVectorizer

    texts = train["text"].tolist()
    x = fast.tfidf_.transform(fast._vectorizer().transform(texts)).tocsr()
    columns = np.unique(x.indices)
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
    weight = row_weights(train["label"], config.class_balance)
    # Every row's fixed part of the logits (all but the moved weights) and its targets.
    fixed = np.asarray(x[:, columns] @ base_w.T) + base_b
    targets = np.eye(c)[y]
    xs = x[:, columns]
    replayed = 0
    if replay is not None and len(replay) and config.replay_ratio > 0:
        xr = fast.tfidf_.transform(fast._vectorizer().transform(replay["text"].tolist())).tocsr()
        base_logits = np.asarray(xr @ fast.classifier_.coef_.T) + base_b
        share = config.replay_ratio / (1 - config.replay_ratio) * weight.sum() / len(replay)
        fixed = np.vstack([fixed, base_logits])
        targets = np.vstack([targets, softmax(base_logits, axis=1)])
        allowed = np.vstack([allowed, np.ones((len(replay), c), dtype=bool)])
        weight = np.concatenate([weight, np.full(len(replay), share)])
        from scipy.sparse import vstack

        xs = vstack([xs, xr[:, columns]]).tocsr()
        replayed = len(replay)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        dw = theta.reshape(c, k)
        z = np.where(allowed, fixed + np.asarray(xs @ dw.T), -1e9)
        logp = log_softmax(z, axis=1)
        loss = -float(np.sum(weight[:, None] * targets * np.where(allowed, logp, 0.0)))
        loss += float(np.sum(dw**2 * inverse_c)) / 2
        g = (np.exp(logp) - targets) * weight[:, None]
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
        "replayed_rows": int(replayed),
        "iterations": int(result.nit),
    }
    return updated, info
