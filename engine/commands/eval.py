"""``instmatt eval``: IMQ of predicted alphas against HIM2K ground truth, as the paper's table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.errors import InputFileError
from engine.evaluation.evaluate import TABLE_COLUMNS, evaluate
from engine.io.atomic import write_bytes_atomic


def add_arguments(parser) -> None:
    parser.add_argument("--pred", required=True, type=Path, help="predictions: PRED/SUBSET/NAME/NN.png")
    parser.add_argument("--gt", required=True, type=Path, help="HIM2K root with alphas/SUBSET/NAME/NN.png")
    parser.add_argument("--json", type=Path, default=None, help="also write the results (x100) to this JSON file")
    parser.add_argument("--subset", action="append", default=None, help="only this subset (repeatable); default all")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out images with no prediction folder, as the authors' script does (hides missed people)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def format_table(results: dict) -> str:
    """The paper's table: one row per subset and threshold, x100."""
    lines = []
    header = f"{'subset':<10} {'IoU':>4} " + " ".join(f"{c:>9}" for c in TABLE_COLUMNS) + f" {'TP':>6} {'FP':>6} {'FN':>6}"
    lines.append(header)
    lines.append("-" * len(header))
    for subset, result in results.items():
        for key in sorted(k for k in result if isinstance(result[k], dict)):
            row = result[key]
            values = " ".join(f"{row[c]:9.2f}" for c in TABLE_COLUMNS)
            lines.append(f"{subset:<10} {key:>4} {values} {row['TP']:6d} {row['FP']:6d} {row['FN']:6d}")
    lines.append("")
    for subset, result in results.items():
        note = f"{subset}: {result['images']} images"
        if result["missed_images"]:
            note += (f", {result['missed_images']} with no prediction: their {result['missed_people']} people"
                     " are counted as missed (FN); the authors' script would skip them")
        else:
            note += ", none without predictions"
        if result["skipped_images"]:
            note += f"; {result['skipped_images']} images without a prediction folder left out (--skip-missing)"
        if result["unmatched_folders"]:
            note += f"; {result['unmatched_folders']} prediction folders with no ground truth ignored"
        lines.append(note)
    return "\n".join(lines)


def _json_ready(results: dict) -> dict:
    """Plain floats rounded to 4 decimals (x100 scale), ints kept."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (int, np.integer)):
            return int(value)
        return round(float(value), 4)

    return clean(results)


def run(args) -> int:
    results = evaluate(args.pred, args.gt, args.subset, args.skip_missing, progress=not args.quiet)
    print(format_table(results))
    if args.json is not None:
        try:
            write_bytes_atomic(args.json, (json.dumps(_json_ready(results), indent=2) + "\n").encode())
        except OSError as exc:
            raise InputFileError(args.json, f"cannot write: {exc.strerror or exc}") from None
        print(f"wrote {args.json}")
    return 0
