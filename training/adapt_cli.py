"""The `cxnlp adapt` and `cxnlp select` verbs: each parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.adapt_config import (
    DEFAULT_MARGIN,
    LORA_MODULES,
    SELECTION_STRATEGIES,
    AdaptConfig,
)

DEFAULT_TEST_DATA = "../shared/data"


def add_adapt_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the adaptation recipe (shared by `adapt` and `train --base`)."""
    default = AdaptConfig()
    p.add_argument("--holdout", type=float, default=default.holdout, help="share held out")
    p.add_argument("--epochs", type=float, default=default.epochs, help="passes over your rows")
    p.add_argument("--max-steps", type=int, default=default.max_steps, help="cap on training steps")
    p.add_argument(
        "--distill-weight",
        type=float,
        default=default.distill_weight,
        help="weight of the pull to the base's predictions on your rows",
    )
    p.add_argument(
        "--replay-ratio",
        type=float,
        default=default.replay_ratio,
        help="share of each batch replayed from the base's training pool (0: no replay)",
    )
    p.add_argument(
        "--replay-distill-weight",
        type=float,
        default=default.replay_distill_weight,
        help="weight of the pull to the base's predictions on replayed rows (the rest: their gold)",
    )
    p.add_argument(
        "--replay-own-langs",
        type=float,
        default=default.replay_own_langs,
        help="share of the replayed rows drawn from your rows' languages (the rest: equal shares)",
    )
    p.add_argument(
        "--replay-data",
        default=DEFAULT_TEST_DATA,
        help="the base's training pool (corpus directory) whose train rows are replayed",
    )
    p.add_argument(
        "--lora-from-layer",
        type=int,
        help="first encoder layer with adapters (default: the topic head's tap layer)",
    )
    p.add_argument(
        "--lora-modules",
        nargs="+",
        choices=list(LORA_MODULES),
        default=list(default.lora_modules),
        help="the sub-layers that get adapters",
    )
    p.add_argument(
        "--test-per-dataset",
        type=int,
        default=200,
        help="rows of each standard test set the gate scores (0: all)",
    )
    p.add_argument(
        "--no-standard-tests",
        action="store_true",
        help="gate on your held-out rows only, even where the standard test sets are at hand",
    )
    p.add_argument("--seed", type=int, default=default.seed)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_verbs(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "adapt", help="adapt a model to your own labeled rows in minutes (LoRA + distillation)"
    )
    p.add_argument("--base", default="default", help="model to adapt (name or path)")
    p.add_argument(
        "--data",
        required=True,
        help="labeled file (CSV/JSONL/Parquet/XLSX with text,label[,lang]) or a Label Studio "
        "JSON export; rows with a blank label are skipped",
    )
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--test-data", default=DEFAULT_TEST_DATA, help="standard test sets, if any")
    p.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help="largest macro-F1 loss on a language's standard tests before the model is refused",
    )
    add_adapt_arguments(p)
    p.set_defaults(handler=run_adapt)

    p = verbs.add_parser(
        "select", help="choose the rows of a classified export most worth labeling"
    )
    p.add_argument("classified", help="output of `cxnlp classify` (text and p_* columns)")
    p.add_argument("-o", "--output", required=True, help="CSV to write (empty `label` column)")
    p.add_argument("--n", type=int, default=300, help="how many rows to choose")
    p.add_argument("--model", default="default", help="model whose encoder embeds the texts")
    p.add_argument("--text-col", default="text")
    p.add_argument("--id-col", default="id")
    p.add_argument(
        "--strategy",
        choices=SELECTION_STRATEGIES,
        default="random",
        help="random (default: measured as good as the others, and the sample PACC needs), the "
        "most uncertain rows, or mix (uncertain, then diverse over the model's embeddings)",
    )
    p.add_argument("--seed", type=int, default=0, help="random: the draw's seed")
    p.add_argument(
        "--pool-factor",
        type=float,
        default=4.0,
        help="mix: the most uncertain n x this rows are the pool diversity is chosen from",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_select)


def adapt_config(args: argparse.Namespace) -> AdaptConfig:
    """The recipe the options of `add_adapt_arguments` ask for."""
    return AdaptConfig(
        holdout=args.holdout,
        epochs=args.epochs,
        max_steps=args.max_steps,
        min_steps=min(AdaptConfig.min_steps, args.max_steps),
        distill_weight=args.distill_weight,
        replay_ratio=args.replay_ratio,
        replay_distill_weight=args.replay_distill_weight,
        replay_own_langs=args.replay_own_langs,
        lora_from_layer=args.lora_from_layer,
        lora_modules=tuple(args.lora_modules),
        seed=args.seed,
    )


def run_adapt(args: argparse.Namespace) -> int:
    """Adapt, print the gate, and return 0 when the model is saved as ready, 1 when refused."""
    from training.adapt import adapt

    test_data = None if args.no_standard_tests else args.test_data
    replay_data = args.replay_data if args.replay_ratio > 0 else None
    if replay_data is not None and not Path(replay_data).is_dir():
        print(
            f"note: no training pool at {replay_data}; adapting without replay, so forgetting "
            "is more likely (give the pool with --replay-data)",
            file=sys.stderr,
        )
        replay_data = None
    result = adapt(
        args.base,
        args.data,
        args.out,
        config=adapt_config(args),
        test_data=test_data,
        test_per_dataset=args.test_per_dataset or None,
        replay_data=replay_data,
        margin=args.margin,
        progress=not args.quiet,
    )
    print(result.table())
    if result.gate.get("test_data") is None and not args.no_standard_tests:
        print(
            f"note: no standard test sets at {args.test_data}; gated on your held-out rows only",
            file=sys.stderr,
        )
    if result.refused:
        print(
            f"REFUSED: the adapted model did not pass the gate ({result.verdict()}). It was "
            f"saved as {result.path} for inspection, NOT as {args.out}"
            + (" (left as it was)" if Path(args.out).exists() else "")
            + "; it is not ready to serve.",
            file=sys.stderr,
        )
        return 1
    print(f"saved {result.path} ({result.steps} steps, {result.seconds:.0f} s)")
    return 0


def _select(args: argparse.Namespace) -> int:
    from cxnlp.models.store import load
    from training.labeling import select_file

    # Only `mix` reads the model's encoder.
    model = load(args.model) if args.strategy == "mix" else None
    selected, paths = select_file(
        args.classified,
        args.output,
        args.n,
        model=model,
        model_version=Path((model.source_ if model else None) or args.model).name,
        text_col=args.text_col,
        id_col=args.id_col,
        pool_factor=args.pool_factor,
        strategy=args.strategy,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(
        f"chose {len(selected)} rows (median uncertainty {selected['uncertainty'].median():.2f}); "
        "label them in one of:"
    )
    for path in paths:
        print(f"  {path}")
    return 0
