"""The training verbs of the `cxnlp` command: train, evaluate, models, promote, train-topics,
train-mixed, train-urgency."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_TEST_DATA = "../shared/data"


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("train", help="train a model from a config, or retrain one on new labels")
    p.add_argument("--config", help="YAML training config (e.g. training/configs/default.yaml)")
    p.add_argument("--base", help="model to start from (name or path); its config is reused")
    p.add_argument(
        "--data", help="labeled file (CSV/JSONL/Parquet/XLSX with text,label[,lang,topics])"
    )
    p.add_argument("--out", help="output model directory (default: models/<config name>)")
    p.add_argument("--promote", action="store_true", help="run the retraining gate afterwards")
    p.add_argument("--test-data", default=DEFAULT_TEST_DATA, help="test sets for --promote")
    p.add_argument("--margin", type=float, default=0.01, help="largest macro-F1 loss allowed")
    p.add_argument(
        "--full-retrain",
        action="store_true",
        help="with --base: run the base's whole training recipe on --data instead of adapting "
        "(slow; drops the topic head)",
    )
    from training.adapt_cli import add_adapt_arguments

    add_adapt_arguments(p)
    p.set_defaults(handler=_train)

    from training.adapt_cli import add_verbs as add_adapt_verbs

    add_adapt_verbs(verbs)

    p = verbs.add_parser("evaluate", help="score a model on labeled data")
    p.add_argument("--model", default="default", help="model name or path")
    p.add_argument(
        "--data", required=True, help="corpus directory (its test splits) or labeled file"
    )
    p.add_argument("--json", help="write the full report here")
    p.add_argument(
        "--write-card",
        action="store_true",
        help="save the report as the model's metrics.json and regenerate its MODEL_CARD.md",
    )
    p.add_argument("--notes", help="markdown appended to the card (known weaknesses, measurements)")
    p.add_argument(
        "--no-topics",
        action="store_true",
        help="skip the topic scores (given by default for a corpus directory and a model with topics)",
    )
    p.set_defaults(handler=_evaluate)

    p = verbs.add_parser(
        "calibrate",
        help="choose a saved model's per-language blend weights, offsets and temperatures on dev",
    )
    p.add_argument("--model", default="default", help="model name or directory")
    p.add_argument("--out", required=True, help="directory of the recalibrated copy")
    p.add_argument("--no-biases", action="store_true", help="no per-language logit offsets")
    p.add_argument(
        "--no-lang-weights", action="store_true", help="one blend weight for every language"
    )
    p.set_defaults(handler=_calibrate)

    p = verbs.add_parser("promote", help="make a model the default if it passes the gate")
    p.add_argument("candidate", help="candidate model directory")
    p.add_argument("--test-data", default=DEFAULT_TEST_DATA)
    p.add_argument("--margin", type=float, default=0.01)
    p.add_argument("--current", default="default", help="the model to compare with and replace")
    p.add_argument(
        "--candidate-report",
        help="the candidate's saved `cxnlp evaluate --json` report on --test-data, used instead "
        "of evaluating it again",
    )
    p.add_argument(
        "--current-report",
        help="the same for the current model (both reports must name the same data)",
    )
    p.set_defaults(handler=_promote)

    p = verbs.add_parser("models", help="list model versions with their metrics")
    p.set_defaults(handler=_models)

    p = verbs.add_parser(
        "train-topics", help="train a model's topic head on its own encoder features"
    )
    p.add_argument("--model", default="default", help="model name or path; gets a topics/ dir")
    p.add_argument("--config", default="training/configs/topics.yaml", help="topic config YAML")
    p.add_argument("--out", help="model directory to write (default: the model's own)")
    p.add_argument("--no-evaluate", action="store_true", help="skip scoring on the topic test sets")
    p.add_argument(
        "--recalibrate",
        action="store_true",
        help="keep the head, choose per-language thresholds, gates and polarity weights on the "
        "config's calibration sets",
    )
    p.add_argument(
        "--fit-gates",
        action="store_true",
        help="keep the head and its thresholds, only fit the document gates of `gate_langs`",
    )
    p.add_argument(
        "--fit-polarity",
        action="store_true",
        help="keep the head, thresholds and gates, only choose per-language polarity weights",
    )
    p.add_argument(
        "--langs",
        nargs="+",
        help="with --recalibrate or --fit-polarity: only these languages (others keep theirs)",
    )
    p.add_argument(
        "--keep-gates",
        action="store_true",
        help="with --recalibrate: keep the document gates (weights and floors) as they are",
    )
    p.set_defaults(handler=_train_topics)

    p = verbs.add_parser(
        "train-mixed",
        help="fit a model's learned `mixed` head on the corpus's train and dev rows labeled mixed",
    )
    p.add_argument("--model", default="default", help="model name or path; gets a mixed/ dir")
    p.add_argument("--data", default=DEFAULT_TEST_DATA, help="corpus directory (train/dev splits)")
    p.add_argument("--out", help="model directory to write (default: the model's own)")
    p.add_argument(
        "--per-lang", type=int, default=1500, help="at most this many mixed rows per language"
    )
    p.add_argument(
        "--dev-share",
        type=float,
        default=0.25,
        help="share of train-split rows (by text hash) used as dev beside the dev splits",
    )
    p.add_argument("--cache-dir", help="default: $CXNLP_CACHE_DIR or ~/.cache/cxnlp")
    p.add_argument(
        "--fresh", action="store_true", help="read every text again instead of the signal cache"
    )
    p.set_defaults(handler=_train_mixed)

    p = verbs.add_parser(
        "train-urgency",
        help="fit a model's learned urgency head on the hand-labeled urgency tuning sets",
    )
    p.add_argument("--model", default="default", help="model name or path; gets an urgency/ dir")
    p.add_argument("--out", help="model directory to write (default: the model's own)")
    p.add_argument(
        "--eval-dir",
        help="directory of the urgency sets and their as-of-draw cue lists (default: training/eval)",
    )
    p.add_argument("--langs", default="fa,ar,en", help="comma-separated languages to fit on")
    p.add_argument(
        "--min-precision",
        type=float,
        default=0.85,
        help="precision floor of head OR cues (out of fold) for the head to cover a language",
    )
    p.add_argument(
        "--current-cues",
        action="store_true",
        help="fit on the shipped cue list's flags, not each set's as-of-draw list (optimistic)",
    )
    p.add_argument(
        "--compare-per-lang",
        action="store_true",
        help="also cross-validate one head per language and report it (slower)",
    )
    p.add_argument("--cache-dir", help="default: $CXNLP_CACHE_DIR or ~/.cache/cxnlp")
    p.add_argument(
        "--fresh", action="store_true", help="read every text again instead of the signal cache"
    )
    p.set_defaults(handler=_train_urgency)

    p = verbs.add_parser("evaluate-topics", help="score a model's topics on the topic test sets")
    p.add_argument("--model", default="default", help="model name or path")
    p.add_argument("--data", default=DEFAULT_TEST_DATA, help="corpus directory")
    p.add_argument("--json", help="write the full report here")
    p.set_defaults(handler=_evaluate_topics)


def _train(args: argparse.Namespace) -> int:
    from cxnlp.modeldir import has_topics, read_training_config
    from cxnlp.models.store import models_dir, resolve_model
    from training.config import Config
    from training.train import dev_scores, train

    if args.base and not args.full_retrain and not args.config:
        if not args.data:
            raise ValueError("--base retrains on new labels: give them with --data FILE")
        from training.adapt_cli import run_adapt

        args.out = args.out or str(models_dir() / f"{Path(args.base).name}-adapted")
        status = run_adapt(args)
        if not args.promote or status != 0:  # a refused adaptation is never promoted
            return status
        return _gate(Path(args.out), "default", test_data=args.test_data, margin=args.margin)
    if args.base:
        base = resolve_model(args.base)
        if not args.data:
            raise ValueError("--base retrains on new labels: give them with --data FILE")
        saved = read_training_config(base)
        if saved is None and not args.config:
            raise ValueError(f"--base {base} has no training configuration; pass --config FILE")
        config = Config.from_dict(saved) if saved is not None else None
        if args.config:
            config = Config.from_yaml(args.config)
    elif args.config:
        base, config = None, Config.from_yaml(args.config)
    else:
        raise ValueError(
            "give --config FILE (a fresh model) or --base MODEL --data FILE (retraining)"
        )
    out = Path(args.out) if args.out else models_dir() / config.name
    path = train(config, out, base=base, data_file=args.data)
    print(f"saved {path}")
    dev = dev_scores(path)
    if dev:
        print("dev macro-F1: " + ", ".join(f"{lang} {f1:.4f}" for lang, f1 in dev.items()))
    if base is not None and has_topics(base) and not has_topics(path):
        print(
            f"note: {path} has no topic head. The base model's head reads encoder features that "
            "retraining changed, so it was not carried over; train one with `cxnlp train-topics "
            f"--model {path}` (it needs the labeled topic corpus, training/configs/topics.yaml).",
            file=sys.stderr,
        )
    if args.promote:
        return _gate(path, "default", test_data=args.test_data, margin=args.margin)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from training.train import recalibrate_saved

    report = recalibrate_saved(
        args.model, args.out, biases=not args.no_biases, lang_weights=not args.no_lang_weights
    )
    print(f"saved {args.out}")
    for key in ("fast_weight", "biases"):
        for lang, result in report.get(key, {}).items():
            print(
                f"{key} {lang}: chosen {result['chosen']} dev macro-F1 {result['baseline']:.4f} "
                f"-> {result['dev']:.4f}, two-fold gain {result['cv_gain']:+.4f}"
            )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cxnlp.models.evaluation import format_report
    from cxnlp.models.store import load
    from training.evaluate import evaluate

    model = load(args.model)
    report = evaluate(model, args.data, json_path=None)
    print(format_report(report))
    if model.topic_tagger is not None and Path(args.data).is_dir() and not args.no_topics:
        from training.topic_eval import evaluate_topics, format_topic_report

        report["topics"] = evaluate_topics(model, args.data)
        print(format_topic_report(report["topics"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.write_card:
        from cxnlp.modeldir import METRICS_FILE
        from cxnlp.models.store import resolve_model
        from training.card import write_card_and_metrics

        model_dir = resolve_model(args.model)
        card = write_card_and_metrics(model_dir, report, data=args.data, notes_file=args.notes)
        print(f"wrote {model_dir / METRICS_FILE} and {card}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    return _gate(
        Path(args.candidate),
        args.current,
        test_data=args.test_data,
        margin=args.margin,
        candidate_report=args.candidate_report,
        current_report=args.current_report,
    )


def _gate(candidate: Path, current_name: str, **options) -> int:
    """Run `training.gate.run_gate` against the model named `current_name`; print its verdict."""
    from cxnlp.models.store import models_dir
    from training.gate import run_gate

    current_dir = models_dir() / current_name
    result = run_gate(candidate, current_dir, **options)
    print(result.table())
    if result.promoted:
        print(
            f"{candidate} is now {current_dir}"
            + (f"; previous kept as {result.archived}" if result.archived else "")
        )
        return 0
    print(f"{current_dir} unchanged", file=sys.stderr)
    return 1


def _train_topics(args: argparse.Namespace) -> int:
    from cxnlp.modeldir import METRICS_FILE, topics_dir
    from cxnlp.models.store import load, resolve_model
    from training.topic_eval import evaluate_topics, format_topic_report
    from training.topic_trainer import TopicConfig, train_topics

    if args.langs and not (args.recalibrate or args.fit_polarity):
        raise SystemExit("--langs goes with --recalibrate or --fit-polarity")
    if args.keep_gates and not args.recalibrate:
        raise SystemExit("--keep-gates goes with --recalibrate")
    model = load(args.model)
    config = TopicConfig.from_yaml(args.config)
    if args.recalibrate:
        from training.topic_calibration import format_recalibration, recalibrate_topics

        report = recalibrate_topics(model, config, args.langs, gates=not args.keep_gates)
        print(format_recalibration(report))
        tagger = model.topic_tagger
    elif args.fit_polarity:
        from training.topic_calibration import fit_polarity_only, format_recalibration

        print(format_recalibration(fit_polarity_only(model, config, args.langs)))
        tagger = model.topic_tagger
    elif args.fit_gates:
        from training.topic_calibration import fit_gates_only, format_recalibration

        print(format_recalibration(fit_gates_only(model, config)))
        tagger = model.topic_tagger
    else:
        tagger, _ = train_topics(model, config)
    out = Path(args.out) if args.out else resolve_model(args.model)
    if args.out:
        model.save(out)
    tagger.save(topics_dir(out))
    print(f"saved {topics_dir(out)}")
    if not args.no_evaluate:
        model.topic_tagger = tagger
        report = evaluate_topics(model, config.data_dir, json_path=topics_dir(out) / METRICS_FILE)
        print(format_topic_report(report))
    return 0


def _train_mixed(args: argparse.Namespace) -> int:
    from training.mixed_head import MixedConfig, format_mixed_report, train_mixed

    report = train_mixed(
        args.model,
        MixedConfig(data_dir=args.data, per_lang=args.per_lang, dev_share=args.dev_share),
        out=args.out,
        cache_dir=args.cache_dir,
        fresh=args.fresh,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_mixed_report(report))
    return 0


def _train_urgency(args: argparse.Namespace) -> int:
    from training.urgency_head import UrgencyConfig, format_urgency_report, train_urgency

    report = train_urgency(
        args.model,
        UrgencyConfig(
            **({"eval_dir": args.eval_dir} if args.eval_dir else {}),
            langs=tuple(lang.strip() for lang in args.langs.split(",") if lang.strip()),
            min_precision=args.min_precision,
            cues="current" if args.current_cues else "asof",
            compare_per_lang=args.compare_per_lang,
        ),
        out=args.out,
        cache_dir=args.cache_dir,
        fresh=args.fresh,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_urgency_report(report))
    return 0


def _evaluate_topics(args: argparse.Namespace) -> int:
    from cxnlp.models.store import load
    from training.topic_eval import evaluate_topics, format_topic_report

    report = evaluate_topics(load(args.model), args.data, json_path=args.json)
    print(format_topic_report(report))
    return 0


def _models(args: argparse.Namespace) -> int:
    from cxnlp.modeldir import read_gate
    from cxnlp.models.store import list_models

    for entry in list_models():
        f1 = " ".join(f"{lang}={v:.3f}" for lang, v in entry["macro_f1_by_lang"].items())
        kind = entry["kind"] or "(no kind)"  # a config.json without one: say so, not crash
        print(f"{entry['name']:<28} {kind:<12} {f1 or '(no metrics)'}  {entry['path']}")
        try:
            gate = read_gate(entry["path"])
        except ValueError as exc:
            print(f"{'':<28} gate: unreadable ({exc})")
            continue
        if gate is not None:
            state = "passed" if gate.passed else "did not pass"
            print(f"{'':<28} {gate.kind} gate {state} ({gate.date[:10]}): {gate.verdict}")
    return 0
