"""``instmatt-build`` / ``python -m build_trt``: export ONNX graphs and build TensorRT engines."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engine.errors import UserError, run_command


def _load(weights: str | None, random_width: float | None):
    from engine.model import load_model

    if weights is None and random_width is None:
        from engine.weights import default_weights_path

        weights = default_weights_path()
    if weights is not None:
        return load_model(weights, "cpu"), str(weights)
    return load_model(None, "cpu", random_width), None


def _verify(model, path: Path, refiner_path: Path) -> dict:
    """Max |ONNX Runtime - PyTorch| on a small random input (CPU)."""
    import numpy as np
    import torch

    from engine.backends.onnx_runtime import import_onnxruntime

    onnxruntime = import_onnxruntime()  # telemetry off

    generator = torch.Generator().manual_seed(0)
    image = torch.randn(2, 3, 96, 128, generator=generator)
    trimask = torch.rand(2, 3, 96, 128, generator=generator)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = session.run(None, {"image": image.numpy(), "trimask": trimask.numpy()})
    with torch.no_grad():
        reference = model.matting(image, trimask)
    names = [output.name for output in session.get_outputs()]
    report = {name: float(np.abs(result - reference[name].numpy()).max()) for name, result in zip(names, results)}
    if refiner_path.is_file():
        session = onnxruntime.InferenceSession(str(refiner_path), providers=["CPUExecutionProvider"])
        trimatte = reference["alpha_os1"]
        refined = session.run(None, {"image": image.numpy(), "trimatte": trimatte.numpy(),
                                     "feature": reference["feature"].numpy()})[0]
        with torch.no_grad():
            expected = model.refiner(image, trimatte, reference["feature"])
        report["refined"] = float(np.abs(refined - expected.numpy()).max())
    return report


def cmd_export(args) -> int:
    import onnx

    from engine.backends.onnx_export import (
        export_matting,
        export_refiner,
        refiner_path_for,
    )
    from engine.backends.onnx_ops import operator_counts

    model, source = _load(args.weights, args.random_width)
    out = Path(args.out)
    export_matting(model, out, args.precision, args.opset)
    print(f"wrote {out} ({args.precision}, opset {args.opset}, width {model.width:g}, weights {source or 'random'})")
    if not args.no_refiner:
        refiner = refiner_path_for(out)
        export_refiner(model, refiner, args.opset)
        print(f"wrote {refiner} (dense refiner, fp32)")
    graph = onnx.load(str(out))
    print("operators: " + ", ".join(f"{op} {count}" for op, count in operator_counts(graph).items()))
    print("checked: ONNX checker, TensorRT operator allowlist, dynamic people/height/width")
    if args.verify:
        report = _verify(model, out, refiner_path_for(out) if not args.no_refiner else Path("/nonexistent"))
        print("max |onnxruntime - pytorch| on 2x3x96x128: " + ", ".join(f"{k} {v:.2e}" for k, v in report.items()))
    return 0


def cmd_build(args) -> int:
    from engine.backends.cache import file_sha256, onnx_dir
    from engine.backends.onnx_export import cached_graphs, export_matting

    from .tensorrt_build import (
        BuildError,
        Profile,
        TensorRTUnavailable,
        build_engine,
        cuda_compute_capability,
        ensure_engine,
        import_tensorrt,
    )

    try:
        profile = Profile.parse(args.min_shape, args.opt_shape, args.max_shape)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:  # fail before a slow export when the build cannot happen anyway
        import_tensorrt()
        cuda_compute_capability()
    except TensorRTUnavailable as exc:
        raise UserError(f"cannot build a TensorRT engine here: {exc}") from None
    if args.onnx:
        onnx_path = Path(args.onnx)
        if not onnx_path.is_file():
            raise UserError(f"{onnx_path}: ONNX file not found")
    else:
        model, source = _load(args.weights, args.random_width)
        if source is None:  # a random network: not worth a keyed cache entry
            onnx_path = onnx_dir(args.cache_dir) / f"instmatt-random-w{model.width:g}-{args.precision}.onnx"
            export_matting(model, onnx_path, args.precision)
        else:  # the same key the runtime uses, so `auto` finds this engine later
            onnx_path, _ = cached_graphs(model, file_sha256(source), args.cache_dir, args.precision)
    try:
        if args.force:
            path = build_engine(onnx_path, args.out, profile, args.precision, args.workspace_mib, args.cache_dir,
                                args.timing_cache)
        else:
            path = ensure_engine(onnx_path, profile, args.precision, args.workspace_mib, args.cache_dir, args.out)
    except TensorRTUnavailable as exc:
        raise UserError(f"cannot build a TensorRT engine here: {exc}") from None
    except BuildError as exc:
        raise UserError(str(exc)) from None
    print(f"engine: {path}")
    return 0


def cmd_info(args) -> int:
    from engine.backends.cache import read_sidecar

    sidecar = read_sidecar(args.engine)
    if sidecar is None:
        raise UserError(f"{args.engine}: no readable sidecar {args.engine}.json")
    print(json.dumps(sidecar, indent=2, sort_keys=True))
    try:
        from engine.backends.cache import stale_reason

        from .tensorrt_build import (
            Profile,
            cuda_compute_capability,
            engine_fields,
            import_tensorrt,
        )

        trt = import_tensorrt()
        fields = sidecar["fields"]
        onnx_path = sidecar.get("onnx")
        current = engine_fields(onnx_path, Profile(**{k: tuple(v) for k, v in fields["profile"].items()}),
                                fields["precision"], fields["workspace_mib"], trt.__version__,
                                cuda_compute_capability())
        reason = stale_reason(args.engine, current)
        print("status: " + ("current" if reason is None else f"stale ({reason})"))
    except Exception as exc:  # informational only
        print(f"status: unknown here ({exc})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="instmatt-build",
                                     description="Export InstMatt to ONNX and build TensorRT engines.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    export = sub.add_parser("export", help="export the matting network (and the dense refiner) to ONNX")
    export.add_argument("--weights", help="checkpoint: the authors' best_model.pth or the project's .pth/.safetensors "
                                          "(default: the shipped weights)")
    export.add_argument("--random-width", type=float, help="export a random network of this width (testing)")
    export.add_argument("--out", required=True, help="output FILE.onnx (the refiner goes to FILE.refiner.onnx)")
    export.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                        help="fp16: FP16 body with FP32 inputs/outputs (TensorRT strongly typed)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default 17)")
    export.add_argument("--no-refiner", action="store_true", help="do not export the refiner graph")
    export.add_argument("--verify", action="store_true", help="compare ONNX Runtime with PyTorch on a small input")
    export.set_defaults(func=cmd_export)

    build = sub.add_parser("build", help="build (or reuse) a TensorRT engine for this GPU")
    source = build.add_mutually_exclusive_group()
    source.add_argument("--onnx", help="an exported matting graph")
    source.add_argument("--weights", help="checkpoint to export first (cached by weights hash)")
    build.add_argument("--random-width", type=float, help=argparse.SUPPRESS)
    build.add_argument("--out", help="engine file (default: the engine cache, keyed)")
    build.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    build.add_argument("--min-shape", help="profile minimum PEOPLExHEIGHTxWIDTH (default 1x64x64)")
    build.add_argument("--opt-shape", help="profile optimum (default 2x800x1344: a padded 1280x720 frame)")
    build.add_argument("--max-shape", help="profile maximum (default 4x1344x1344)")
    build.add_argument("--workspace-mib", type=int, default=4096, help="builder workspace limit in MiB")
    build.add_argument("--cache-dir", help="cache root (default ~/.cache/blender-instmatt, or $INSTMATT_CACHE_DIR)")
    build.add_argument("--timing-cache", help="timing cache file (default: one per TensorRT version and GPU)")
    build.add_argument("--force", action="store_true", help="rebuild even when a current engine exists")
    build.set_defaults(func=cmd_build)

    info = sub.add_parser("info", help="show an engine's cache key and whether it is current here")
    info.add_argument("engine")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    return run_command(f"instmatt-build {args.command}", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
