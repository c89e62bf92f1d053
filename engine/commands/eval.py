"""``instmatt eval``: IMQ of predicted alphas against HIM2K ground truth, as the paper's table;
``--video``: the flicker of a matted shot (warp error with the footage, dtSSD with truth)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.errors import InputFileError, UserError
from engine.evaluation.evaluate import TABLE_COLUMNS, evaluate
from engine.io.atomic import write_bytes_atomic


def add_arguments(parser) -> None:
    parser.add_argument("--pred", type=Path, help="predictions: PRED/SUBSET/NAME/NN.png")
    parser.add_argument("--gt", type=Path, help="HIM2K root with alphas/SUBSET/NAME/NN.png; with --video, true alphas "
                                               "in the mask-folder layout GT/<frame, 4 digits>/<NN>.png (gives dtSSD)")
    parser.add_argument("--video", metavar="OUT", help="flicker of a matted shot: its EXRs (a pattern such as "
                                                       "out/shot.####.exr)")
    parser.add_argument("--footage", metavar="INPUT", help="with --video: the shot's frames (gives the warp error)")
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
    if args.video:
        return run_video(args)
    if args.pred is None or args.gt is None:
        raise UserError("eval needs --pred and --gt (HIM2K), or --video OUT for the flicker of a shot")
    results = evaluate(args.pred, args.gt, args.subset, args.skip_missing, progress=not args.quiet)
    print(format_table(results))
    _write_json(args.json, _json_ready(results))
    return 0


def _write_json(path: Path | None, results: dict) -> None:
    if path is None:
        return
    try:
        write_bytes_atomic(path, (json.dumps(results, indent=2) + "\n").encode())
    except OSError as exc:
        raise InputFileError(path, f"cannot write: {exc.strerror or exc}") from None
    print(f"wrote {path}")


def run_video(args) -> int:
    from engine.evaluation.video import evaluate_sequence
    from engine.guidance.masks import _person_files
    from engine.io import person_id
    from engine.io.images import read_mask
    from engine.io.patterns import match_pattern

    outputs = match_pattern(args.video)
    if not outputs:
        raise InputFileError(args.video, "no EXR frames match this pattern (expected e.g. out/shot.####.exr)")
    read_frame = None
    if args.footage:
        from engine.io.sources import open_source

        source = open_source(args.footage)
        missing = sorted(set(outputs) - set(source.frames))
        if missing:
            raise InputFileError(args.footage, f"has no frame {missing[0]} (the EXRs go to {max(outputs)})")
        read_frame = lambda frame: source.read(frame).rgb8
    truth = None
    if args.gt:
        if not args.gt.is_dir():
            raise InputFileError(args.gt, "ground-truth folder not found (expected GT/<frame, 4 digits>/<NN>.png)")

        def truth(frame):
            folder = args.gt / f"{frame:04d}"  # the mask-folder layout, read as guidance reads it
            return {person_id(n): read_mask(f) for n, f in (_person_files(folder) if folder.is_dir() else [])}
    if read_frame is None and truth is None:
        raise UserError("--video needs --footage INPUT (warp error) and/or --gt GT (dtSSD)")
    result = evaluate_sequence({f: str(p) for f, p in outputs.items()}, read_frame, truth)
    print(f"{result['frames']} frames, people: {', '.join(result['people']) or 'none'}")
    if "warp_error" in result:
        print(f"warp error (x100, lower is steadier): {result['warp_error']:.3f}")
    if "dtssd" in result:
        print(f"dtSSD (x100, against the truth): {result['dtssd']:.3f}")
    _write_json(args.json, result)
    return 0
