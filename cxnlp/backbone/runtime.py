"""Running a built backbone without importing `transformers`: a BERT encoder in plain torch and a
tokenizer on the `tokenizers` library alone, both read from the directory `build_backbone` writes.

`import transformers` was a third of the CPU time of a model's warm load, and `AutoTokenizer` a
fifth, of which the `tokenizers` build of the 250,002-piece vocabulary (what remains here) is about
two thirds (`benchmarks/load_time.py --breakdown`). The encoder here has Hugging Face's `BertModel` module tree and
parameter names (`embeddings.word_embeddings`, `encoder.layer.{i}.attention.self.query`, ...)
and calls the same torch operations in the same order, so its outputs are bit-identical to
`BertModel`'s with `attn_implementation="sdpa"` (in float32, under bfloat16 autocast, and with
dropout in training); it is built on the meta device and takes the safetensors weights as they
lie, memory-mapped, instead of initialising 118 M parameters and then overwriting them. The
tokenizer wrapper answers the calls cxnlp makes of a Hugging Face fast tokenizer with the same ids,
masks and offsets (`tests/test_backbone_runtime.py` checks both against `transformers`).

`load_encoder` and `load_tokenizer` use these for a directory they can run exactly (a BERT config
with absolute positions and GELU, float32 safetensors; a `tokenizer.json` with a generic
fast-tokenizer config, as `build_backbone` writes), and `transformers` for anything else.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own alias
from torch.overrides import TorchFunctionMode

from cxnlp.backbone.build import HF_CONFIG, HF_TOKENIZER, HF_WEIGHTS
from cxnlp.backbone.tokenizer import TOKENIZER_CONFIG_FILE

# Tokenizer classes that are nothing but `tokenizer.json` plus special tokens (no Python-side
# normalisation or defaults of their own), as `build_backbone` writes.
PLAIN_TOKENIZER_CLASSES = frozenset({"PreTrainedTokenizerFast", "TokenizersBackend"})


@dataclass
class BertConfig:
    """The part of a Hugging Face BERT `config.json` the encoder reads."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int | None = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BertConfig:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in raw.items() if k in names})


def runs_here(config: dict[str, Any]) -> bool:
    """True for a config this encoder computes exactly as `BertModel` does: plain BERT, absolute
    positions, exact GELU, no decoder or cross-attention, no feed-forward chunking."""
    return (
        config.get("model_type") == "bert"
        and config.get("hidden_act", "gelu") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and not config.get("is_decoder", False)
        and not config.get("add_cross_attention", False)
        and not config.get("chunk_size_feed_forward", 0)
        and not config.get("embedding_size")
        and config.get("hidden_size", 0) % max(config.get("num_attention_heads", 1), 1) == 0
    )


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_positions = config.max_position_embeddings

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape
        device = self.word_embeddings.weight.device
        position_ids = torch.arange(length, device=device)[None, :]
        token_type_ids = torch.zeros((batch, length), dtype=torch.long, device=device)
        # The order of the sums is BertEmbeddings's: (words + token types) + positions.
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.attention_head_size**-0.5
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        input_shape = hidden.shape[:-1]
        shape = (*input_shape, -1, self.attention_head_size)
        query = self.query(hidden).view(*shape).transpose(1, 2)
        key = self.key(hidden).view(*shape).transpose(1, 2)
        value = self.value(hidden).view(*shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=self.dropout.p if self.training else 0.0,
            scale=self.scaling,
            is_causal=False,
        )
        out = out.reshape(out.shape[0], -1, query.shape[2], value.shape[-1])
        out = out.transpose(1, 2).contiguous()
        return out.reshape(*input_shape, -1).contiguous()


class BertSelfOutput(nn.Module):
    def __init__(self, config: BertConfig, in_features: int) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


# BERT's feed-forward output has the attention output's shape: dense, dropout, residual LayerNorm.
BertOutput = BertSelfOutput


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config, config.hidden_size)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, attention_mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden))


class BertLayer(nn.Module):
    """One encoder layer: `layer(hidden, additive_mask)` -> hidden, as `BertLayer` in
    `transformers` computes it (which cxnlp calls the same way)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config, config.intermediate_size)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        attended = self.attention(hidden, attention_mask)
        return self.output(self.intermediate(attended), attended)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    """Kept so that the state dict is `BertModel`'s; e5 pools by the mean and never calls it."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)


class BertModel(nn.Module):
    """`BertModel`'s embeddings and layers (cxnlp runs them one by one, see `SentimentNet`)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)


# What modules call to initialise their parameters.
_INITIALISERS = frozenset(
    {
        nn.init.normal_,
        nn.init.uniform_,
        nn.init.kaiming_uniform_,
        nn.init.zeros_,
        nn.init.ones_,
        torch.Tensor.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.fill_,
        torch.Tensor.zero_,
    }
)


class _SkipInit(TorchFunctionMode):
    """Modules built under it keep their parameters uninitialised (the checkpoint replaces them
    at once). On the meta device PyTorch's initialisers run Python decompositions that import
    `torch._dynamo`, over a second of a load. A torch function mode: this thread only."""

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in _INITIALISERS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


# Buffers a checkpoint written by `transformers` may hold; this encoder makes them per call.
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def _safetensors_header(path: Path) -> dict[str, Any]:
    """Tensor name -> {"dtype", "shape", ...} of a safetensors file, read from its header alone."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header


def _meta_model(source: Path) -> BertModel | None:
    """This encoder on the meta device (no memory, no random initialisation) for a backbone
    directory it runs exactly: a plain BERT config, float32 weights named and shaped as its own.
    None for any other directory."""
    try:
        raw = json.loads((source / HF_CONFIG).read_text(encoding="utf-8"))
        if not runs_here(raw):
            return None
        config = BertConfig.from_dict(raw)
        header = _safetensors_header(source / HF_WEIGHTS)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    with torch.device("meta"), _SkipInit():
        model = BertModel(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v["shape"]) for k, v in header.items() if k not in _BUFFERS}
    if found != expected or any(v["dtype"] != "F32" for v in header.values()):
        return None
    return model


def load_encoder(source: str) -> nn.Module:
    """The backbone at `source` (a directory or a Hugging Face id) in eval mode: this module's
    `BertModel` where it runs the directory exactly, else `transformers`' `AutoModel` (sdpa,
    safetensors only)."""
    path = Path(source)
    model = _meta_model(path) if path.is_dir() else None
    if model is None:
        from transformers import AutoModel

        return AutoModel.from_pretrained(source, attn_implementation="sdpa", use_safetensors=True)
    from safetensors.torch import load_file

    state = load_file(str(path / HF_WEIGHTS))  # memory-mapped: pages load as they are read
    state = {k: v for k, v in state.items() if k not in _BUFFERS}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


class Tokenizer:
    """A `tokenizers.Tokenizer` answering cxnlp's calls of a Hugging Face fast tokenizer:
    `tok(texts, truncation=, max_length=, padding=, return_tensors=, return_offsets_mapping=,
    return_attention_mask=, add_special_tokens=)` -> `{"input_ids", "attention_mask",
    "offset_mapping"}`, one text or a list, with the same ids, masks and offsets."""

    def __init__(
        self,
        backend: Any,
        *,
        pad_token: str | None = None,
        model_max_length: int | None = None,
        model_input_names: Sequence[str] = ("input_ids", "attention_mask"),
    ) -> None:
        self.backend = backend
        self.backend.no_truncation()
        self.backend.no_padding()
        self.pad_token = pad_token
        self.pad_token_id = backend.token_to_id(pad_token) if pad_token is not None else None
        self.model_max_length = model_max_length
        self.model_input_names = list(model_input_names)
        self._lock = threading.Lock()  # truncation is a setting of the shared backend

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __call__(
        self,
        text: str | Sequence[str],
        *,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
        padding: bool = False,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        return_offsets_mapping: bool = False,
        verbose: bool = True,
    ) -> dict[str, Any]:
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        limit = (max_length or self.model_max_length) if truncation else None
        with self._lock:
            current = self.backend.truncation
            if limit is None and current is not None:
                self.backend.no_truncation()
            elif limit is not None and (current is None or current["max_length"] != limit):
                self.backend.enable_truncation(limit)
            encodings = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        ids = [e.ids for e in encodings]
        masks = [e.attention_mask for e in encodings]
        offsets = [e.offsets for e in encodings] if return_offsets_mapping else None
        if padding and ids:
            if self.pad_token_id is None:
                raise ValueError("this tokenizer has no pad token to pad with")
            width = max(len(row) for row in ids)
            ids = [row + [self.pad_token_id] * (width - len(row)) for row in ids]
            masks = [row + [0] * (width - len(row)) for row in masks]
            if offsets is not None:
                offsets = [row + [(0, 0)] * (width - len(row)) for row in offsets]
        out: dict[str, Any] = {"input_ids": ids}
        if return_attention_mask or (
            return_attention_mask is None and "attention_mask" in self.model_input_names
        ):
            out["attention_mask"] = masks
        if offsets is not None:
            out["offset_mapping"] = offsets
        if return_tensors is not None:
            out = {k: _as_tensor(v, return_tensors) for k, v in out.items()}
        elif single:
            out = {k: v[0] for k, v in out.items()}
        return out


def _as_tensor(rows: list, kind: str) -> Any:
    if kind == "pt":
        return torch.tensor(rows, dtype=torch.long)
    if kind == "np":
        import numpy as np

        return np.asarray(rows, dtype=np.int64)
    raise ValueError(f"return_tensors must be 'pt' or 'np', got {kind!r}")


def _plain_tokenizer_config(source: Path) -> dict[str, Any] | None:
    try:
        config = json.loads((source / TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not (source / HF_TOKENIZER).is_file()
        or config.get("tokenizer_class") not in PLAIN_TOKENIZER_CLASSES
        or config.get("padding_side", "right") != "right"
        or config.get("truncation_side", "right") != "right"
    ):
        return None
    return config


def load_tokenizer(source: str) -> Any:
    """The tokenizer of the backbone at `source`: `Tokenizer` on its `tokenizer.json` where its
    config adds nothing to that file (as `build_backbone` writes it), else `AutoTokenizer`."""
    path = Path(source)
    config = _plain_tokenizer_config(path) if path.is_dir() else None
    if config is None:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source)
    from tokenizers import Tokenizer as Backend

    pad = config.get("pad_token")
    if isinstance(pad, dict):  # an AddedToken written out
        pad = pad.get("content")
    return Tokenizer(
        Backend.from_file(str(path / HF_TOKENIZER)),
        pad_token=pad,
        model_max_length=config.get("model_max_length"),
        model_input_names=config.get("model_input_names", ("input_ids", "attention_mask")),
    )
