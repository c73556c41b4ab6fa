"""The model directory format: every file name in it, and reading and writing each file.

A model directory holds::

    config.json            what the model is (kind, labels, temperatures, backbone spec, versions)
    model.safetensors      its weights
    metrics.json           `cxnlp evaluate` report on the test splits
    dev_confusion.json     dev confusion matrices ("*" and per language), for the report's ACC
    training_config.json   the training configuration that produced it
    MODEL_CARD.md          the model card
    gate.json              the verdict of the gate it went through, if any (`GateRecord`)
    adapt_config.json      the adaptation recipe, for a model made by `cxnlp adapt`
    topics/                the topic head: its own config.json, model.safetensors, metrics.json
    mixed/                 the learned `mixed` head: its own config.json, model.safetensors, metrics.json
    urgency/               the learned urgency head: its own config.json, model.safetensors, metrics.json
    members/<kind>/        a blend's members, each a model directory of its own

An adapted model its gate refused is saved as `<out>` + `REFUSED_SUFFIX` (`mine.refused`), never
as `<out>`, so nothing loads it by the name asked for.

Nothing else in cxnlp, `training` or `service` spells these names. `model_class` maps a config's
`kind` to the class that loads it. `gate.json` has one shape whichever gate wrote it (`cxnlp
promote` or `cxnlp adapt`), one writer (`write_gate`) and one reader (`read_gate`, which
`cxnlp models` shows).

>>> from cxnlp.modeldir import model_class
>>> model_class("fast").__name__
'FastSentimentModel'
"""

from __future__ import annotations

import datetime as dt
import json
import warnings
from dataclasses import asdict, dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from cxnlp.labels import SENTIMENTS

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
DEV_CONFUSION_FILE = "dev_confusion.json"
TRAINING_CONFIG_FILE = "training_config.json"
CARD_FILE = "MODEL_CARD.md"
GATE_FILE = "gate.json"
ADAPT_CONFIG_FILE = "adapt_config.json"
TOPICS_DIR = "topics"
MIXED_DIR = "mixed"
URGENCY_DIR = "urgency"
MEMBERS_DIR = "members"
REFUSED_SUFFIX = ".refused"

# kind -> "module:class". Looked up by name on use, so that this module (which every model
# module imports) imports none of them.
KINDS: dict[str, str] = {
    "transformer": "cxnlp.models.transformer:TransformerSentimentModel",
    "fast": "cxnlp.models.fast:FastSentimentModel",
    "blend": "cxnlp.models.blend:BlendedSentimentModel",
}


def model_class(kind: str | None) -> type:
    """The class of a model `kind` (as in a config's "kind")."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {list(KINDS)}")
    module, name = KINDS[kind].split(":")
    return getattr(import_module(module), name)


def _write_json(path: Path, value: Any, indent: int = 2) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=indent) + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).exists()


def write_config(path: str | Path, config: dict[str, Any]) -> None:
    """Write `config.json`, stamped with the cxnlp version that wrote it."""
    from cxnlp import __version__

    _write_json(Path(path) / CONFIG_FILE, {"cxnlp_version": __version__, **config})


def read_config(path: str | Path, *, warn_newer: bool = True) -> dict[str, Any]:
    """`config.json` of a model directory; warns when a newer cxnlp wrote it."""
    from cxnlp import __version__

    path = Path(path)
    config_path = path / CONFIG_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"{path} is not a cxnlp model directory: it has no {CONFIG_FILE}")
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ValueError(
            f"{config_path} holds a JSON {type(config).__name__}, not an object: not a model config"
        )
    written_by = config.get("cxnlp_version", "0")
    if warn_newer and _version_tuple(written_by) > _version_tuple(__version__):
        warnings.warn(
            f"{path} was written by cxnlp {written_by}, newer than this cxnlp {__version__}; "
            "upgrade cxnlp if loading fails or results look wrong",
            stacklevel=3,
        )
    return config


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def read_metrics(path: str | Path) -> dict[str, Any]:
    """`metrics.json` of a model (or topic) directory, empty when there is none."""
    metrics_path = Path(path) / METRICS_FILE
    return _read_json(metrics_path) if metrics_path.exists() else {}


def write_metrics(model_dir: str | Path, report: dict[str, Any]) -> None:
    """Save an evaluation report in a model directory: sentiment scores as metrics.json, topic
    scores (if the report has them) beside the topic head, topics/metrics.json, not twice."""
    model_dir = Path(model_dir)
    sentiment = {k: v for k, v in report.items() if k != "topics"}
    (model_dir / METRICS_FILE).write_text(json.dumps(sentiment, indent=2) + "\n", encoding="utf-8")
    if report.get("topics") and (model_dir / TOPICS_DIR).is_dir():
        (model_dir / TOPICS_DIR / METRICS_FILE).write_text(
            json.dumps(report["topics"], indent=2) + "\n", encoding="utf-8"
        )


def write_dev_confusion(model_dir: str | Path, confusion: dict[str, list[list[int]]]) -> None:
    """`dev_confusion.json`: "*" and language codes to 3x3 counts, rows = true label, columns =
    predicted, in `cxnlp.labels.SENTIMENTS` order."""
    (Path(model_dir) / DEV_CONFUSION_FILE).write_text(
        json.dumps(confusion, indent=1) + "\n", encoding="utf-8"
    )


def read_dev_confusion(model_dir: str | Path) -> dict[str, list[list[float]]] | None:
    """The dev confusion matrices a model directory carries in `dev_confusion.json`, or None.

    The file maps "*" (all languages) and language codes to 3x3 counts, rows = true label,
    columns = predicted, in `cxnlp.labels.SENTIMENTS` order; a "labels" entry may give another
    order, and a value may also be {"labels": [...], "matrix": [...]}. Returned in SENTIMENTS order.
    """
    path = Path(model_dir) / DEV_CONFUSION_FILE
    if not path.exists():
        return None
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object mapping '*' and languages to 3x3 matrices")
    default_labels = raw.get("labels", list(SENTIMENTS))
    matrices = {}
    for key, value in raw.items():
        if key == "labels":
            continue
        labels = default_labels
        if isinstance(value, dict):
            labels, value = value.get("labels", default_labels), value.get("matrix")
        if sorted(labels) != sorted(SENTIMENTS):
            raise ValueError(f"{path}: labels {labels} are not the three sentiments {SENTIMENTS}")
        order = [list(labels).index(s) for s in SENTIMENTS]
        matrix = np.asarray(value, dtype=np.float64)
        if matrix.shape != (3, 3):
            raise ValueError(f"{path}: entry {key!r} is not a 3x3 matrix (shape {matrix.shape})")
        matrices[key] = matrix[np.ix_(order, order)].tolist()
    return matrices


def write_training_config(model_dir: str | Path, config: dict[str, Any]) -> None:
    _write_json(Path(model_dir) / TRAINING_CONFIG_FILE, config)


def read_training_config(model_dir: str | Path) -> dict[str, Any] | None:
    """`training_config.json` as a dict, or None when the directory has none."""
    path = Path(model_dir) / TRAINING_CONFIG_FILE
    return _read_json(path) if path.exists() else None


def topics_dir(model_dir: str | Path) -> Path:
    return Path(model_dir) / TOPICS_DIR


def has_topics(model_dir: str | Path) -> bool:
    """True when the model directory has a topic head."""
    return (topics_dir(model_dir) / CONFIG_FILE).is_file()


def mixed_dir(model_dir: str | Path) -> Path:
    return Path(model_dir) / MIXED_DIR


def has_mixed(model_dir: str | Path) -> bool:
    """True when the model directory has a learned `mixed` head (`cxnlp train-mixed`)."""
    return (mixed_dir(model_dir) / CONFIG_FILE).is_file()


def urgency_dir(model_dir: str | Path) -> Path:
    return Path(model_dir) / URGENCY_DIR


def has_urgency(model_dir: str | Path) -> bool:
    """True when the model directory has a learned urgency head (`cxnlp train-urgency`)."""
    return (urgency_dir(model_dir) / CONFIG_FILE).is_file()


def member_dir(kind: str) -> str:
    """Where a blend keeps its member of `kind`, relative to the blend's directory."""
    return f"{MEMBERS_DIR}/{kind}"


# The gates a model can go through: `cxnlp promote` (a candidate against the current default, on
# the test sets) and `cxnlp adapt` (an adapted model against its base, on the user's held-out
# rows and a sample of the standard test sets).
GATE_KINDS: tuple[str, ...] = ("promote", "adapt")


@dataclass
class GateRecord:
    """What `gate.json` holds, whichever gate wrote it.

    `rows` are macro-F1 scores, one per part of the test data and language ("*": all):
    `{"part", "lang", "n", "reference", "candidate", "delta", "ok"}`, where `reference` is the
    model compared against (the current default, or the base) and `ok` says the row is within
    the gate's rule. `passed` is the verdict (promoted; for adapt: better on the held-out rows and
    within `margin` on every standard test), `verdict` the same in words. `details` holds what
    only one gate has (adapt: topic agreement, the test data, seconds).

    >>> record = GateRecord("promote", True, "promoted", 0.01, "models/default")
    >>> GateRecord.from_dict(record.to_dict()) == record
    True
    """

    kind: str
    passed: bool
    verdict: str
    margin: float
    reference: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    date: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if self.kind not in GATE_KINDS:
            raise ValueError(f"unknown gate kind {self.kind!r}; expected one of {list(GATE_KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GateRecord:
        names = set(cls.__dataclass_fields__)
        missing = sorted({"kind", "passed", "verdict", "margin", "reference"} - set(raw))
        if missing:
            raise ValueError(
                f"not a gate record: {missing} missing; expected the fields {sorted(names)}"
            )
        return cls(**{k: v for k, v in raw.items() if k in names})

    def table(self) -> str:
        """The rows as a table, then the verdict (a score missing on one side shows as -)."""

        def score(value: float | None, sign: str = "") -> str:
            return "-" if value is None else f"{value:{sign}.4f}"

        lines = [
            f"{'part':<10} {'lang':<5} {'n':>6} {'reference':>10} {'candidate':>10} {'delta':>8}"
        ]
        for r in self.rows:
            n = "" if r.get("n") is None else str(r["n"])
            lines.append(
                f"{r['part']:<10} {r['lang']:<5} {n:>6} {score(r['reference']):>10} "
                f"{score(r['candidate']):>10} {score(r['delta'], '+'):>8}"
                + ("" if r["ok"] else "  outside the gate's rule")
            )
        lines.append(f"{self.kind} gate ({self.date}), margin {self.margin:.2f}: {self.verdict}")
        return "\n".join(lines)


def write_gate(model_dir: str | Path, record: GateRecord) -> None:
    """Write `gate.json`: the one writer, for both gates."""
    _write_json(Path(model_dir) / GATE_FILE, record.to_dict())


def read_gate(model_dir: str | Path) -> GateRecord | None:
    """The gate record of a model directory, or None when it went through no gate."""
    path = Path(model_dir) / GATE_FILE
    if not path.exists():
        return None
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a JSON {type(raw).__name__}, not a gate record")
    try:
        return GateRecord.from_dict(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
