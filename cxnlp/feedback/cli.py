"""The store's verbs of the `cxnlp` command: `cxnlp ingest` and `cxnlp db upgrade`, and the
`--store` options of `cxnlp classify`."""

from __future__ import annotations

import argparse
import sys

from cxnlp.labels import SCORE_KINDS

DB_HELP = "database URL (default $CXNLP_DATABASE_URL, else the SQLite file cxnlp-feedback.sqlite)"


def add_store_options(p: argparse.ArgumentParser, dataset_required: bool) -> None:
    """The options that say where and how classified rows are stored."""
    p.add_argument(
        "--dataset",
        required=dataset_required,
        default=None,
        help="dataset name in the store; re-sent ids of one dataset update their items"
        + ("" if dataset_required else " (default: the input file's name without extension)"),
    )
    p.add_argument("--db", default=None, help=DB_HELP)
    p.add_argument(
        "--date-col", default="created_at", help="column with the item's date (default created_at)"
    )
    p.add_argument(
        "--score-col",
        default=None,
        help="survey score column with --score-kind, or KIND=COLUMN / KIND:LOW-HIGH=COLUMN "
        "(csat:1-7=q2: CSAT's top two boxes are 6-7); a dataset keeps its first scale",
    )
    p.add_argument("--score-kind", default=None, choices=SCORE_KINDS)


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "ingest", help="store a file written by `cxnlp classify` in the feedback store"
    )
    p.add_argument("input", help="CSV / JSONL / Parquet / XLSX output of `cxnlp classify`")
    add_store_options(p, dataset_required=True)
    p.add_argument("--text-col", default="text")
    p.add_argument("--id-col", default="id")
    p.add_argument("--model-name", default=None, help="the model that classified the file")
    p.add_argument("--model-version", default=None)
    p.set_defaults(handler=_ingest)

    p = verbs.add_parser("db", help="the feedback store's schema")
    p.add_argument("action", choices=["upgrade", "current"], help="migrate to the latest schema")
    p.add_argument("--db", default=None, help=DB_HELP)
    p.set_defaults(handler=_db)


def _ingest(args: argparse.Namespace) -> int:
    _store_file(args, args.input, args.dataset, args.model_name, args.model_version)
    return 0


def _alerts(url: str | None, dataset: str) -> None:
    import os

    from cxnlp.feedback.alerts import WEBHOOK_ENV, after_ingest
    from cxnlp.feedback.db import open_store

    if os.environ.get(WEBHOOK_ENV):
        with open_store(url) as store:
            after_ingest(store, dataset)


def store_classified(args: argparse.Namespace, model) -> None:
    """`cxnlp classify --store`: the output file into the store, with the model's identity."""
    from pathlib import Path

    from cxnlp.feedback.records import model_identity

    name, version = model_identity(model)
    _store_file(args, args.output, args.dataset or Path(args.input).stem, name, version)


def _store_file(
    args: argparse.Namespace,
    path: str,
    dataset: str,
    model_name: str | None,
    model_version: str | None,
) -> None:
    """A classified file into the store (`args`: its columns and --db), said on stderr, and the
    alerts raised after it (`_alerts`)."""
    from cxnlp.feedback.ingest import ingest_file

    stats = ingest_file(
        path,
        dataset=dataset,
        store=args.db,
        text_col=args.text_col,
        id_col=args.id_col,
        date_col=args.date_col,
        score_col=args.score_col,
        score_kind=args.score_kind,
        model_name=model_name,
        model_version=model_version,
    )
    _print_stats(stats)
    _alerts(args.db, stats.dataset)


def _print_stats(stats) -> None:
    print(
        f"stored {stats.rows} rows in dataset {stats.dataset!r}: {stats.inserted} new, "
        f"{stats.updated} updated, {stats.errors} without a result ({stats.seconds:.1f} s, "
        f"{stats.items_per_second:.0f} items/s)",
        file=sys.stderr,
    )


def _db(args: argparse.Namespace) -> int:
    from cxnlp.feedback.db import upgrade_url

    print(upgrade_url(args.db, only_report=args.action == "current"))
    return 0
