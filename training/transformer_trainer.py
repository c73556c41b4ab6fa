"""Fine-tuning the transformer tier on CPU (or GPU when there is one).

The encoder's lower layers are frozen: their outputs for every training text are computed once
(in bfloat16) and cached in memory, and each step runs only the top layers and the head. On two CPU
cores this is what makes several epochs over a 100k-text pool affordable. A checkpoint (safetensors
+ JSON, never pickle) is written every `checkpoint_every` steps; a rerun with the same output
directory resumes from it, drawing exactly the batches the interrupted run would have drawn.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from cxnlp.labels import SENTIMENTS
from cxnlp.models.transformer import (
    TransformerSentimentModel,
    build_net,
    pad_states,
    resolve_inference_dtype,
)
from training.config import Config
from training.sampling import draw_weights, epoch_batches

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tokenize(tokenizer, texts: list[str], max_length: int, prefix: str) -> list[list[int]]:
    """Token ids of each (already normalised) text, after the backbone's prefix, via
    `datasets.map`."""
    from datasets import Dataset

    dataset = Dataset.from_dict({"text": [prefix + t for t in texts]})
    dataset = dataset.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
        desc="tokenising",
    )
    return dataset["input_ids"]


def _compute_dtype(device: torch.device) -> str:
    """bfloat16 on a GPU or a CPU that does it in hardware; float32 (training) and int8 (the frozen,
    cached layers, as they will run at inference) on other CPUs."""
    return "bfloat16" if device.type == "cuda" else resolve_inference_dtype("auto")


@torch.inference_mode()
def cache_lower_layers(
    net,
    ids: list[list[int]],
    n_layers: int,
    batch_size: int = 64,
    rows: np.ndarray | None = None,
):
    """Each text's hidden states after the frozen layers, unpadded, stored in bfloat16; with
    `rows`, only those texts' (the others stay None)."""
    device = next(net.parameters()).device
    compute = _compute_dtype(device)
    net.eval()
    if compute == "int8":
        net = torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    wanted = np.arange(len(ids)) if rows is None else np.asarray(rows)
    order = wanted[np.argsort([len(ids[i]) for i in wanted], kind="stable")]
    cache: list[torch.Tensor | None] = [None] * len(ids)
    for start in tqdm(range(0, len(order), batch_size), desc=f"caching layers 0-{n_layers - 1}"):
        index = order[start : start + batch_size]
        length = max(len(ids[i]) for i in index)
        input_ids = torch.full((len(index), length), net.spec.pad_id, dtype=torch.long)
        mask = torch.zeros((len(index), length), dtype=torch.long)
        for row, i in enumerate(index):
            input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=compute == "bfloat16"):
            hidden = net.lower(input_ids.to(device), mask.to(device), n_layers)
        hidden = hidden.to("cpu", torch.bfloat16)
        for row, i in enumerate(index):
            cache[i] = hidden[row, : len(ids[i])].clone()
    return cache


@torch.inference_mode()
def teacher_outputs(
    net, cache: list, rows: np.ndarray, first: int, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's logits and pooled top-layer features of the cached `rows` (zeros elsewhere),
    computed once before the student is cut from it."""
    device = next(net.parameters()).device
    autocast = _compute_dtype(device) == "bfloat16"
    net.eval()
    logits = torch.zeros((len(cache), net.head.out_features))
    pooled = torch.zeros((len(cache), net.head.in_features), dtype=torch.bfloat16)
    order = rows[np.argsort([cache[i].shape[0] for i in rows], kind="stable")]
    for start in tqdm(range(0, len(order), batch_size), desc="teacher outputs"):
        index = order[start : start + batch_size]
        hidden, mask = pad_states([cache[i] for i in index])
        hidden = hidden.to(device, torch.bfloat16 if autocast else torch.float32)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            features = net.pooled_from(hidden, mask.to(device), first)
            out = net.head(features)
        logits[index] = out.float().cpu()
        pooled[index] = features.to("cpu", torch.bfloat16)
    return logits, pooled


def distillation_loss(
    logits: torch.Tensor,
    pooled: torch.Tensor,
    teacher_logits: torch.Tensor,
    teacher_pooled: torch.Tensor,
    hard_loss: torch.Tensor,
    tc,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(1 - a) * the gold loss + a * T^2 * KL(teacher || student at temperature T) + b * the mean
    squared distance of the pooled features (a, b, T from the train config)."""
    t = tc.distill_temperature
    soft = torch.nn.functional.kl_div(
        torch.log_softmax(logits / t, dim=-1),
        torch.softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
    ) * (t * t)
    feature = torch.nn.functional.mse_loss(pooled.float(), teacher_pooled.float())
    a, b = tc.distill_logits, tc.distill_features
    loss = (1 - a) * hard_loss + a * soft + b * feature
    terms = {"gold": hard_loss.item(), "kl": soft.item(), "features": feature.item()}
    return loss, terms


def cut_student(net, keep_layers: list[int]) -> None:
    """Keep only `keep_layers` of the (teacher-initialised) network, in place."""
    from dataclasses import replace

    spec = replace(net.spec, keep_layers=tuple(keep_layers), n_layers=len(keep_layers))
    spec.keep(net.encoder)
    net.spec = spec


def label_masks(train: pd.DataFrame, label_set_loss: bool) -> torch.Tensor:
    """Per row, 1 for each label its dataset's gold can take (all labels without
    `label_set_loss`, or for a frame without a `dataset` column)."""
    masks = torch.ones((len(train), len(SENTIMENTS)))
    if not label_set_loss or "dataset" not in train.columns:
        return masks
    for name, rows in train.groupby("dataset").indices.items():
        present = set(train["label"].iloc[rows])
        allowed = torch.tensor([float(label in present) for label in SENTIMENTS])
        masks[rows] = allowed
        if len(present) < len(SENTIMENTS):
            logger.info("label-set loss: %s trains on %s only", name, sorted(present))
    return masks


def label_set_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, masks: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy over the labels each row's dataset has: for a positive / negative set this is
    -log p(gold) / (p(positive) + p(negative)), which leaves the neutral logit untouched."""
    masked = logits.masked_fill(masks <= 0, torch.finfo(logits.dtype).min)
    return torch.nn.functional.cross_entropy(masked, target)


def _embed(net, ids: list[list[int]], batch, pad_id: int, device) -> tuple:
    """Embedding-layer output of a batch of token ids (the frozen word embeddings, computed on the
    fly: caching them for a whole pool would take more memory than the machine has)."""
    length = max(len(ids[j]) for j in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for row, j in enumerate(batch):
        input_ids[row, : len(ids[j])] = torch.tensor(ids[j])
        mask[row, : len(ids[j])] = 1
    with torch.no_grad():
        hidden = net.encoder.embeddings(input_ids=input_ids.to(device))
    return hidden, mask


def _trainable(net, first_layer: int) -> list[tuple[str, torch.nn.Parameter]]:
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    chosen = []
    for name, parameter in net.named_parameters():
        layer_index = net.spec.layer_index(name)
        if name.startswith("head.") or (layer_index is not None and layer_index >= first_layer):
            parameter.requires_grad_(True)
            chosen.append((name, parameter))
    return chosen


def _save_checkpoint(path: Path, params, optimizer, step: int, losses: list[float]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: p.detach().contiguous() for name, p in params}, str(tmp / "params.safetensors")
    )
    moments = {}
    for i, (_, p) in enumerate(params):
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                moments[f"{key}.{i}"] = state[key].contiguous()
    save_file(moments, str(tmp / "optimizer.safetensors"))
    save_file({"rng": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses[-1000:]}))
    if path.exists():
        for f in path.iterdir():
            f.unlink()
        path.rmdir()
    tmp.rename(path)


def _load_checkpoint(path: Path, params, optimizer) -> tuple[int, list[float]]:
    state = json.loads((path / "state.json").read_text())
    saved = load_file(str(path / "params.safetensors"))
    with torch.no_grad():
        for name, p in params:
            p.copy_(saved[name])
    moments = load_file(str(path / "optimizer.safetensors"))
    step_tensor = torch.tensor(float(state["step"]))
    for i, (_, p) in enumerate(params):
        if f"exp_avg.{i}" in moments:
            optimizer.state[p] = {
                "step": step_tensor.clone(),
                "exp_avg": moments[f"exp_avg.{i}"],
                "exp_avg_sq": moments[f"exp_avg_sq.{i}"],
            }
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["rng"])
    return int(state["step"]), list(state["losses"])


def fit_transformer(
    config: Config,
    train: pd.DataFrame,
    work_dir: Path,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TransformerSentimentModel:
    """Fine-tune on `train` (normalised `text`, `label`, `lang`); return the uncalibrated model."""
    tc, mc = config.train, config.model
    torch.manual_seed(tc.seed)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = _device()
    tokenizer, net = build_net(
        mc.backbone, prefix=mc.prefix, pooling=mc.pooling, layer_path=mc.layer_path
    )
    if not 0 <= mc.trained_from_layer < net.spec.n_layers:
        raise ValueError(
            f"model.trained_from_layer must be in 0..{net.spec.n_layers - 1} for the backbone "
            f"{mc.backbone!r} ({net.spec.n_layers} layers), got {mc.trained_from_layer}"
        )
    net.dropout.p = mc.dropout
    if init_state:
        net.load_state_dict({k: v.float() for k, v in init_state.items()}, strict=False)
    net.to(device)
    first = mc.trained_from_layer

    ids = tokenize(tokenizer, train["text"].tolist(), mc.max_length, net.spec.prefix)
    lengths = np.array([len(x) for x in ids])
    pad_id = net.spec.pad_id
    labels = torch.tensor([SENTIMENTS.index(label) for label in train["label"]])
    masks = label_masks(train, mc.label_set_loss)
    weights = draw_weights(train, config.data)
    n_epochs = math.ceil(tc.epochs)
    epochs = [
        epoch_batches(weights, lengths, tc.examples_per_epoch, tc.batch_size, tc.seed, epoch)
        for epoch in range(n_epochs)
    ]
    student = mc.keep_layers is not None
    # A student caches (and asks the teacher about) only the rows its epochs draw.
    drawn = np.unique(np.concatenate([b for batches in epochs for b in batches]))
    # With every layer trained only the embeddings are frozen: computed per batch, not cached.
    cache = (
        cache_lower_layers(net, ids, first, rows=drawn if student else None) if first > 0 else None
    )
    teacher = None
    if student:
        started = time.time()
        teacher = teacher_outputs(net, cache, drawn, first)
        logger.info("teacher outputs for %d rows in %.0f s", len(drawn), time.time() - started)
        cut_student(net, mc.keep_layers)
        logger.info("student keeps layers %s of the teacher", mc.keep_layers)

    params = _trainable(net, first)
    head = [p for n, p in params if n.startswith("head.")]
    body = [p for n, p in params if not n.startswith("head.")]
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": tc.lr}, {"params": head, "lr": tc.head_lr}],
        weight_decay=tc.weight_decay,
    )
    steps_per_epoch = math.ceil(tc.examples_per_epoch / tc.batch_size)
    total = int(steps_per_epoch * tc.epochs)
    warmup = max(1, int(total * tc.warmup_ratio))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    checkpoint = work_dir / CHECKPOINT_DIR
    step, losses = 0, []
    if (checkpoint / "state.json").exists():
        step, losses = _load_checkpoint(checkpoint, params, optimizer)
        for _ in range(step):
            scheduler.step()
        logger.info("resumed from %s at step %d of %d", checkpoint, step, total)

    net.train()
    autocast = _compute_dtype(device) == "bfloat16"
    progress = tqdm(total=total, initial=step, desc="training", unit="step")
    started = time.time()
    parts: dict[str, list[float]] = {}
    for epoch, batches in enumerate(epochs):
        for i, batch in enumerate(batches):
            global_step = epoch * steps_per_epoch + i
            if global_step < step:
                continue
            if global_step >= total:
                break
            if cache is None:
                hidden, mask = _embed(net, ids, batch, pad_id, device)
            else:
                hidden, mask = pad_states([cache[j] for j in batch])
            hidden = hidden.to(device, torch.bfloat16 if autocast else torch.float32)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits, pooled = net.forward_from(hidden, mask.to(device), first, with_pooled=True)
            loss = label_set_cross_entropy(
                logits.float(), labels[batch].to(device), masks[batch].to(device)
            )
            if teacher is not None:
                loss, terms = distillation_loss(
                    logits.float(),
                    pooled,
                    teacher[0][batch].to(device),
                    teacher[1][batch].to(device),
                    loss,
                    tc,
                )
                for key, value in terms.items():
                    parts.setdefault(key, []).append(value)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step = global_step + 1
            progress.update(1)
            if step % 50 == 0:
                progress.set_postfix(
                    loss=f"{np.mean(losses[-50:]):.3f}",
                    **{key: f"{np.mean(values[-50:]):.3f}" for key, values in parts.items()},
                )
            if step % tc.checkpoint_every == 0:
                _save_checkpoint(checkpoint, params, optimizer, step, losses)
    progress.close()
    logger.info("trained %d steps in %.0f s", step, time.time() - started)
    net.to("cpu").eval()
    model = TransformerSentimentModel(
        tokenizer,
        net,
        max_length=mc.max_length,
        trained_from_layer=first,
        backbone=mc.backbone,
        weights_dtype=mc.weights_dtype,
    )
    model.training_losses_ = losses
    return model
