"""The settings of `cxnlp adapt` (`AdaptConfig`), apart from the recipe that reads them
(`training.adapt_recipe`), so that the command line builds them without importing torch.

>>> AdaptConfig().batch_parts(replay=True)
(8, 8)
>>> AdaptConfig().steps_for(400)
150
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

# How `cxnlp select` chooses rows to label (`training.labeling.select_for_labeling`); the first is
# the default.
SELECTION_STRATEGIES = ("random", "uncertainty", "mix")

# The largest loss of macro-F1 on a language's standard tests an adapted model may have before
# its gate refuses it (`training.adapt_gate`).
DEFAULT_MARGIN = 0.01

# The sub-layers of an encoder layer LoRA may adapt (names inside a BERT-style layer, as the
# default backbone has); `AdaptConfig.lora_modules` picks among them.
LORA_MODULES: dict[str, str] = {
    "query": r"attention\.self\.query",
    "key": r"attention\.self\.key",
    "value": r"attention\.self\.value",
    "attention_output": r"attention\.output\.dense",
    "intermediate": r"intermediate\.dense",
    "output": r"output\.dense",
}


@dataclass
class AdaptConfig:
    """The adaptation recipe.

    Each step reads `batch_size` rows: `replay_ratio` of them replayed from the base's training
    pool (when one is given), the rest the user's. Steps = epochs x the user's train rows / the
    user's rows per batch, within [min_steps, max_steps].
    """

    epochs: float = 3.0
    min_steps: int = 30
    max_steps: int = 300
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
    # First encoder layer with adapters (None: the topic head's tap layer, the lowest allowed);
    # the layers below it are frozen and cached. Higher is faster and changes less.
    lora_from_layer: int | None = None
    lora_modules: tuple[str, ...] = tuple(LORA_MODULES)
    # On the user's rows: (1 - distill_weight) CE + distill_weight KL(base || adapted) at the
    # temperature; on replayed rows the same with replay_distill_weight; on all rows
    # + feature_weight x (top-layer feature drift / its variance under the base).
    distill_weight: float = 0.3
    distill_temperature: float = 2.0
    feature_weight: float = 0.3
    replay_ratio: float = 0.5
    replay_distill_weight: float = 0.8
    max_replay_rows: int = 3000
    # Share of the replayed rows drawn from the user's own languages (in proportion to their
    # rows); the rest in equal shares over every language. Forgetting shows first in the adapted
    # language's other domains, which equal shares replay least.
    replay_own_langs: float = 0.0
    # Batches drawn together and sorted by length before they are cut (length bucketing).
    bucket_batches: int = 8
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
        self.lora_modules = tuple(self.lora_modules)
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.min_steps < 1 or self.max_steps < self.min_steps:
            raise ValueError("need 1 <= min_steps <= max_steps")
        if not 0.0 <= self.replay_own_langs <= 1.0:
            raise ValueError(f"replay_own_langs must be in [0, 1], got {self.replay_own_langs}")
        for name in ("distill_weight", "replay_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.replay_distill_weight <= 1.0:
            raise ValueError(
                f"replay_distill_weight must be in [0, 1], got {self.replay_distill_weight}"
            )
        if self.batch_size < 2 and self.replay_ratio > 0:
            raise ValueError("replay needs batch_size >= 2 (one user row and one replayed row)")
        unknown = sorted(set(self.lora_modules) - set(LORA_MODULES))
        if unknown or not self.lora_modules:
            raise ValueError(
                f"lora_modules {list(self.lora_modules)}: expected some of {list(LORA_MODULES)}"
            )
        if self.lora_from_layer is not None and self.lora_from_layer < 0:
            raise ValueError(f"lora_from_layer must be >= 0, got {self.lora_from_layer}")

    def batch_parts(self, replay: bool) -> tuple[int, int]:
        """(user rows, replayed rows) in each batch: at least one of the user's."""
        if not replay or self.replay_ratio == 0:
            return self.batch_size, 0
        replayed = min(self.batch_size - 1, max(1, round(self.batch_size * self.replay_ratio)))
        return self.batch_size - replayed, replayed

    def steps_for(self, rows: int, replay: bool = True) -> int:
        """Steps for `rows` training rows of the user's: `epochs` passes over them."""
        wanted = math.ceil(self.epochs * rows / self.batch_parts(replay)[0])
        return int(min(self.max_steps, max(self.min_steps, wanted)))
