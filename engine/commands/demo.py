"""``instmatt demo``: the whole pipeline, offline, on a short generated multi-person clip.

    bash scripts/run_demo.sh            # = .venv/bin/instmatt demo
    instmatt demo --out out/demo --frames 8 --people 3

1. ``engine.data.figures.make_clip`` draws people walking across a generated room, with
   exact per-person alphas (the ground truth).
2. Guidance as a detector would give it: each person's alpha thresholded at 0.5, eroded
   or dilated by a few pixels, in a shuffled order, tiny fragments dropped (2 % rule).
3. The tracker gives stable IDs; InstMatt (the shipped checkpoint, or random weights with
   a warning) mattes every person; the EXRs go to ``OUT/demo.####.exr`` exactly as
   ``instmatt matte`` writes them, with the input frames in ``OUT/plate/``.
4. A contact sheet (``OUT/contact_sheet.png``): frame | all people | one column per person.
5. IMQ against the known ground truth, next to the masks-as-alpha baseline, read back from
   the EXR files and scored as 8-bit alphas (as the paper scores its PNGs); ID switches of
   the tracker. Also saved as ``OUT/imq.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from engine.settings import BACKENDS, REFINE, REFINE_MODES

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def person_colour(number: int) -> tuple[int, int, int]:
    return PALETTE[(number - 1) % len(PALETTE)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--frames", type=int, default=8, help="clip length in frames (default 8)")
    parser.add_argument("--people", type=int, default=3, help="people in the clip (default 3)")
    parser.add_argument("--height", type=int, default=256, help="frame height (default 256)")
    parser.add_argument("--width", type=int, default=384, help="frame width (default 384)")
    parser.add_argument("--seed", type=int, default=0, help="clip and guidance seed (default 0)")
    parser.add_argument("--weights", metavar="PATH", help="InstMatt weights (default: the shipped checkpoint)")
    parser.add_argument("--backend", default="pytorch", choices=BACKENDS,
                        help="inference backend (default pytorch: no export step on a short clip)")
    parser.add_argument("--refine", default=REFINE, choices=REFINE_MODES)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    parser.add_argument("--sheet-frames", type=int, default=4, help="frames on the contact sheet (default 4)")


# --- guidance as a detector gives it ---------------------------------------------------------

def simulate_detections(alphas: np.ndarray, seed: int = 0, min_area: float = 0.02):
    """(T,K,H,W) ground truth -> per frame (masks (k,H,W) in shuffled order, gt index of each).

    Binary masks (alpha > 0.5), each eroded or dilated by 1-3 px at random, as an instance
    segmenter's masks are a little off at the edges; people with less than ``min_area``
    of the frame visible are not detected.
    """
    import cv2

    rng = np.random.default_rng(seed + 1000)
    frames, people, height, width = alphas.shape
    detections, owners = {}, {}
    for t in range(frames):
        masks, who = [], []
        for k in rng.permutation(people):
            mask = (alphas[t, k] > 0.5).astype(np.uint8)
            radius = int(rng.integers(1, 4))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
            if mask.mean() < min_area:
                continue
            masks.append(mask.astype(np.float32))
            who.append(int(k))
        detections[t + 1] = np.stack(masks) if masks else np.zeros((0, height, width), np.float32)
        owners[t + 1] = who
    return detections, owners


def id_switches(frame_ids: dict[int, list[str]], frame_owners: dict[int, list[int]]) -> tuple[int, dict]:
    """How often a ground-truth person's ID changed from one frame to the next; gt -> IDs used."""
    history: dict[int, list[str]] = {}
    for frame in sorted(frame_ids):
        for pid, owner in zip(frame_ids[frame], frame_owners[frame]):
            history.setdefault(owner, []).append(pid)
    switches = sum(sum(1 for a, b in zip(ids, ids[1:]) if a != b) for ids in history.values())
    return switches, {k: sorted(set(v)) for k, v in sorted(history.items())}


# --- contact sheet -------------------------------------------------------------------------

def _label(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    tile = np.ascontiguousarray(tile)
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def contact_sheet(frames: list[tuple[int, np.ndarray, list[str], np.ndarray]], all_ids: list[str]) -> np.ndarray:
    """Rows of [frame | all people coloured | one column per person]; (H', W', 3) uint8 RGB."""
    from engine.io import person_number

    rows = []
    for frame, rgb, ids, alphas in frames:
        height, width = rgb.shape[:2]
        tiles = [_label(rgb.copy(), f"frame {frame}")]
        union = rgb.astype(np.float32) * 0.25
        per_person = []
        for pid in all_ids:
            colour = np.array(person_colour(person_number(pid) or 1), np.float32)
            if pid in ids:
                alpha = alphas[ids.index(pid)][..., None]
                union = union * (1 - alpha) + colour * alpha
                tile = (alpha * colour).astype(np.uint8)
            else:
                tile = np.zeros((height, width, 3), np.uint8)
            per_person.append(_label(tile, pid if pid in ids else f"{pid} (absent)"))
        tiles.append(_label(np.clip(union, 0, 255).astype(np.uint8), "all people"))
        tiles.extend(per_person)
        separator = np.full((height, 2, 3), 40, np.uint8)
        row = [tiles[0]]
        for tile in tiles[1:]:
            row += [separator, tile]
        rows.append(np.concatenate(row, axis=1))
    gap = np.full((2, rows[0].shape[1], 3), 40, np.uint8)
    out = [rows[0]]
    for row in rows[1:]:
        out += [gap, row]
    return np.concatenate(out, axis=0)


# --- the run ---------------------------------------------------------------------------------

def _format_results(rows: list[tuple[str, dict]]) -> str:
    columns = ["IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "RQ"]
    lines = [f"{'IMQ x100 (IoU >= 0.5)':<34}" + "".join(f"{c:>10}" for c in columns) + f"{'IMQ_mad@.75':>13}"]
    for name, result in rows:
        row = result["0.5"]
        lines.append(f"{name:<34}" + "".join(f"{row[c]:>10.2f}" for c in columns)
                     + f"{result['0.75']['IMQ_mad']:>13.2f}")
    return "\n".join(lines)


def run(args) -> int:
    from engine.backends import load_backend
    from engine.commands.progress import ProgressBar, setup_logging
    from engine.data.figures import make_clip
    from engine.evaluation.baselines import masks_as_alpha
    from engine.evaluation.metrics import IMQAccumulator
    from engine.guidance import ArrayGuidance
    from engine.io import read_person_exr, write_bytes_atomic, write_png
    from engine.io.patterns import format_pattern
    from engine.io.sources import ArraySource
    from engine.job import MatteJob
    from engine.settings import MatteSettings

    setup_logging()
    if args.frames < 1 or args.people < 1:
        from engine.errors import UserError
        raise UserError("demo needs at least one frame and one person")
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print(f"demo: generating a {args.frames}-frame {args.width}x{args.height} clip with {args.people} people "
          f"(seed {args.seed})", file=sys.stderr)
    frames, gt = make_clip(frames=args.frames, height=args.height, width=args.width, people=args.people,
                           seed=args.seed)
    for t, rgb in enumerate(frames):
        write_png(out / "plate" / f"plate.{t + 1:04d}.png", rgb)
    detections, owners = simulate_detections(gt, args.seed)

    # the shipped checkpoint unless told otherwise, even when the authors' one is cached:
    # the demo's numbers (README) describe it, and it runs in seconds on a CPU
    from engine.weights import default_weights_path

    weights = args.weights or (None if default_weights_path() is None else str(default_weights_path()))
    backend = load_backend(args.backend, weights, None, args.threads)
    print(f"demo: network {backend.label}, weights {backend.weights_path}", file=sys.stderr)

    settings = MatteSettings(refine=args.refine, backend=args.backend, overwrite=True, weights=weights)
    pattern = str(out / "demo.####.exr")
    listener = ProgressBar("demo")
    job = MatteJob(ArraySource(frames, stem="demo", path=f"make_clip(seed={args.seed})"), pattern,
                   ArrayGuidance(detections), backend, settings, listener=listener)
    result = job.run()
    if listener.errors:
        return 2

    # read the results back from the files, as Blender would
    pred_acc, base_acc = IMQAccumulator(), IMQAccumulator()
    frame_ids, frame_owners, shown = {}, {}, []
    pick = set(np.linspace(1, args.frames, min(args.sheet_frames, args.frames)).round().astype(int).tolist())
    for t in range(args.frames):
        frame = t + 1
        ids, alphas, _ = read_person_exr(format_pattern(pattern, frame))
        # scored as 8-bit, like the paper's PNG mattes: IMQ binarises at > 0, and the
        # network's (tanh + 1) / 2 output is never exactly 0 before quantisation
        pred_acc.add(np.round(alphas * 255.0) / 255.0, gt[t])
        base_acc.add(masks_as_alpha(frames[t], detections[frame]), gt[t])
        frame_ids[frame] = ids
        # which ground-truth person each ID is (through its detection), to count ID switches
        assigned_ids, guide_index = job.assignments[frame]
        frame_owners[frame] = [owners[frame][i] for i in guide_index]
        frame_ids[frame] = assigned_ids
        if frame in pick:
            shown.append((frame, frames[t], ids, alphas))
    switches, used = id_switches(frame_ids, frame_owners)
    sheet = contact_sheet(shown, result.people)
    write_png(out / "contact_sheet.png", sheet)

    pred, base = pred_acc.result(), base_acc.result()
    seconds = time.perf_counter() - started
    summary = {
        "frames": args.frames, "people": result.people, "size": [args.width, args.height],
        "weights": backend.weights_path, "backend": backend.name, "refine": args.refine,
        "id_switches": switches, "instmatt": pred, "masks_as_alpha": base,
        "seconds": round(seconds, 2), "matting_fps": round(args.frames / max(result.seconds, 1e-9), 3),
    }
    write_bytes_atomic(out / "imq.json", json.dumps(summary, indent=2).encode())

    print()
    print(f"InstMatt demo: {args.frames} frames, {args.width}x{args.height}, {args.people} people, "
          f"weights: {backend.weights_path}")
    mapping = ", ".join(f"{k + 1}->{'/'.join(v)}" for k, v in used.items() if k >= 0)
    print(f"people found: {', '.join(result.people)}; ID switches: {switches} "
          f"(ground-truth person -> ID: {mapping})")
    label = "InstMatt (no refinement)" if args.refine == "none" else f"InstMatt ({args.refine} refinement)"
    print(_format_results([(label, pred), ("masks as alpha (guidance only)", base)]))
    print("(alphas read back from the EXRs and scored as 8-bit, like the paper's PNGs)")
    print(f"wrote {args.frames} EXRs ({pattern}), {out / 'contact_sheet.png'}, {out / 'imq.json'}; "
          f"frames in {out / 'plate'}")
    print(f"took {seconds:.1f} s ({summary['matting_fps']:.2f} frames/s through the pipeline)")
    return 0
