"""The training configuration: one typed object, read from YAML, validated once, saved with the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from cxnlp.backbone.spec import POOLINGS
from cxnlp.labels import LANGS

KINDS = ("transformer", "fast")


@dataclass
class DataConfig:
    dir: str = "../shared/data"
    langs: list[str] = field(default_factory=lambda: list(LANGS))
    commercial_only: bool = False
    exclude: list[str] = field(default_factory=list)
    # Large datasets are capped so that no one source (or domain) dominates the mix; null keeps
    # the whole pool and leaves the balance to the draw weights (see dataset_temperature).
    max_per_dataset: int | None = 12000
    # Per-dataset exceptions to the cap, e.g. more of a source whose domain the tool must serve.
    cap_overrides: dict[str, int] = field(default_factory=dict)
    # Share of each epoch's draws per language; Persian, the smallest pool, is drawn as often as
    # the others, so its examples repeat more.
    lang_weights: dict[str, float] = field(
        default_factory=lambda: {"fa": 1.0, "ar": 1.0, "en": 1.0}
    )
    balance_classes: bool = True
    # Within a language and label, each dataset's share of the draws grows as (its rows) ** this:
    # 1 draws every row equally often (big sources dominate), 0 gives every dataset the same share,
    # 0.5 is in between (temperature sampling).
    dataset_temperature: float = 1.0
    dev_per_lang: int = 2000
    # Hand-read labels for pool texts (e.g. training/hard_cases/hard_{lang}.jsonl, `{lang}` filled
    # per language): a train-split pool row whose text one of them holds trains on the hand label
    # (negative / neutral / positive; a `mixed` reading keeps the pool's gold) and is drawn
    # `hand_label_repeat` times as often. Dev rows keep their gold, so dev stays comparable.
    hand_labels: list[str] = field(default_factory=list)
    hand_label_repeat: int = 1


@dataclass
class ModelConfig:
    # Any Hugging Face model id or directory; what the model needs to know about it is saved as
    # its backbone spec (cxnlp.backbone.spec). prefix: text put before every input (None: e5's
    # "query: " for e5, none for others); pooling: "mean" or "cls"; layer_path: where the encoder
    # keeps its layers (None: "encoder.layer", as in BERT / XLM-R).
    backbone: str = "multilingual-e5-small"
    prefix: str | None = None
    pooling: str = "mean"
    layer_path: str | None = None
    max_length: int = 128
    # Layers below this index stay frozen (their outputs are computed once and cached).
    trained_from_layer: int = 8
    dropout: float = 0.1
    # A row from a dataset whose gold labels lack a class (e.g. positive / negative only) trains on
    # the probabilities renormalised over the labels that dataset has, so it is not pushed away
    # from the classes its annotators could not choose.
    label_set_loss: bool = False
    # How the fine-tuned layers are stored: float16, or int8 per output row (half the size).
    weights_dtype: str = "float16"
    # Transformer only: also train the fast tier on the same rows and blend the two, with the
    # weight chosen on dev (see cxnlp.models.blend).
    blend_fast: bool = False
    # Start from this model's fine-tuned weights (a model name or directory, e.g. "default"):
    # continued training, as `cxnlp train --base` does for a user's labels. None: from the backbone.
    init_from: str | None = None
    # A distilled student (see training/configs/lite.yaml): the layers of the `init_from` model
    # it keeps, in order, e.g. [0, 1, 2, 3, 7, 11]; it keeps the frozen ones below
    # `trained_from_layer` as they are and learns from the teacher (train.distill_*).
    keep_layers: list[int] | None = None
    # Copy the topic head of this model into the trained one (for a student whose pooled
    # features are distilled to the teacher's, train.distill_features > 0).
    topics_from: str | None = None
    # Fast tier (and the fast member of a blend).
    n_features: int = 2**20
    C: float = 4.0


@dataclass
class TrainConfig:
    epochs: float = 2.0
    examples_per_epoch: int = 60000
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    seed: int = 13
    checkpoint_every: int = 200
    threads: int | None = None
    # Distillation from the `init_from` model (the teacher), for a student (model.keep_layers):
    # the loss is (1 - distill_logits) * cross-entropy on the gold label + distill_logits * KL
    # from the teacher's probabilities at `distill_temperature`, + distill_features * the mean
    # squared distance of the pooled top-layer features to the teacher's (what topics read).
    distill_logits: float = 0.0
    distill_temperature: float = 2.0
    distill_features: float = 0.0


@dataclass
class Config:
    name: str = "default"
    kind: str = "transformer"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        unknown = sorted(set(self.data.langs) - set(LANGS))
        if unknown:
            raise ValueError(f"data.langs has unknown {unknown}; supported: {list(LANGS)}")
        # The upper bound is the backbone's layer count, checked when the backbone is loaded.
        if self.model.trained_from_layer < 0:
            raise ValueError(
                f"model.trained_from_layer must be >= 0, got {self.model.trained_from_layer}"
            )
        if self.model.pooling not in POOLINGS:
            raise ValueError(
                f"model.pooling must be one of {list(POOLINGS)}, got {self.model.pooling!r}"
            )
        if self.model.weights_dtype not in ("float16", "int8"):
            raise ValueError(
                f"model.weights_dtype must be float16 or int8, got {self.model.weights_dtype!r}"
            )
        if self.data.max_per_dataset is not None and self.data.max_per_dataset < 1:
            raise ValueError("data.max_per_dataset must be >= 1, or null for the whole pool")
        if self.data.hand_label_repeat < 1:
            raise ValueError(
                f"data.hand_label_repeat must be at least 1, got {self.data.hand_label_repeat}"
            )
        if not 0.0 <= self.data.dataset_temperature <= 1.0:
            raise ValueError(
                f"data.dataset_temperature must be in [0, 1], got {self.data.dataset_temperature}"
            )
        keep = self.model.keep_layers
        if keep is not None:
            first = self.model.trained_from_layer
            if list(keep[:first]) != list(range(first)) or len(keep) <= first:
                raise ValueError(
                    "model.keep_layers must start with the frozen layers 0.."
                    f"{first - 1} (model.trained_from_layer) and keep at least one above them, "
                    f"got {keep}"
                )
            if self.model.init_from is None:
                raise ValueError("a student (model.keep_layers) needs a teacher: model.init_from")
        if not 0.0 <= self.train.distill_logits <= 1.0 or self.train.distill_features < 0:
            raise ValueError("train.distill_logits must be in [0, 1], distill_features >= 0")
        if self.train.batch_size < 1 or self.train.epochs <= 0:
            raise ValueError("train.batch_size must be >= 1 and train.epochs > 0")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Config:
        sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
        known = {f.name for f in fields(cls)}
        extra = sorted(set(raw) - known)
        if extra:
            raise ValueError(f"unknown config keys {extra}; expected some of {sorted(known)}")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in sections:
                section = sections[key]
                if value is not None and not isinstance(value, dict):
                    raise ValueError(
                        f"'{key}' must be a mapping of settings, got {type(value).__name__} "
                        f"{value!r}; expected keys among {sorted(f.name for f in fields(section))}"
                    )
                allowed = {f.name for f in fields(section)}
                bad = sorted(set(value or {}) - allowed)
                if bad:
                    raise ValueError(
                        f"unknown keys {bad} in '{key}'; expected some of {sorted(allowed)}"
                    )
                values[key] = section(**(value or {}))
            else:
                values[key] = value
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
