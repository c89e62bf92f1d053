"""``instmatt matte``: footage in, one multilayer EXR of per-person alphas per frame out.

    instmatt matte plate.####.exr -o out/            # detector + tracker, all frames
    instmatt matte clip.mp4 -o out/clip.####.exr --frames 1-48 --png
    instmatt matte plate.####.exr -o out/ --masks roto/ --refine dense

The same :class:`MatteJob` runs behind ``instmatt serve`` (the Blender add-on's engine
process); only the way it reports differs (a progress bar here, JSON events there).

Per frame: read (8/16-bit or linear float) -> guidance (detector, mask folder or ID
image) -> stable IDs (tracker, for the detector) -> InstMatt on all people at once ->
optional PNG / premultiplied RGBA side outputs -> the EXR, written atomically last. A
rerun skips frames whose EXR exists (``--overwrite`` recomputes them) and picks the
tracker up from the last written frame, so resumed and split jobs keep their IDs where
the previous frame is on disk.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import InputFileError, UserError

log = logging.getLogger("instmatt")

REFINE_MODES = ("windowed", "dense", "none")
BACKENDS = ("auto", "pytorch", "onnxruntime", "tensorrt")


@dataclass
class MatteSettings:
    max_side: int = 1280
    refine: str = "windowed"
    score: float = 0.7
    min_area: float = 0.02
    write_png: bool = False
    write_rgba: bool = False
    backend: str = "auto"
    weights: str | None = None
    detector_weights: str | None = None
    detector_size: int = 800
    overwrite: bool = False
    device: str | None = None
    threads: int | None = None

    def check(self) -> None:
        if self.refine not in REFINE_MODES:
            raise UserError(f"refine must be one of {', '.join(REFINE_MODES)}, got {self.refine!r}")
        if not isinstance(self.max_side, int) or isinstance(self.max_side, bool) or self.max_side < 64:
            raise UserError(f"max_side must be an integer of at least 64, got {self.max_side!r}")
        if not 0.0 <= float(self.score) <= 1.0:
            raise UserError(f"score must be within [0, 1], got {self.score!r}")
        if not 0.0 <= float(self.min_area) < 1.0:
            raise UserError(f"min_area must be a fraction of the frame within [0, 1), got {self.min_area!r}")

    def manifest(self) -> dict:
        return {"max_side": self.max_side, "refine": self.refine, "score": self.score, "min_area": self.min_area}


# --- the network ----------------------------------------------------------------------------

_MODELS: dict = {}


def load_matting_model(backend: str = "auto", weights: str | None = None, device: str | None = None,
                       threads: int | None = None):
    """The matting network behind one interface (``engine.backends``), kept loaded and reused.

    Falls back to the eager PyTorch network when ``engine.backends`` is not in this build.
    Warns (log) when no trained weights exist and random ones are used.
    """
    key = (backend, None if weights is None else str(weights), device, threads)
    if key in _MODELS:
        return _MODELS[key]
    if weights is not None and not Path(weights).is_file():
        raise InputFileError(weights, "weights file not found")
    try:
        from engine.backends import create_backend
    except ImportError:
        create_backend = None
    if create_backend is not None:
        try:
            model = create_backend(preference=backend, weights=weights, device=device, threads=threads)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    else:
        if backend not in ("auto", "pytorch", "torch"):
            raise UserError(f"backend {backend!r} is not available in this build (only pytorch)")
        import torch

        from engine.model import load_model
        from engine.weights import default_weights_path

        if threads:
            torch.set_num_threads(int(threads))
        path = weights or default_weights_path()
        if path is None:
            log.warning("no trained weights shipped: using RANDOM weights (width 0.25); the mattes are meaningless")
        model = load_model(path, device or "cpu", 0.25 if path is None else 1.0)
        model.name = "pytorch"
        model.reason = "engine.backends is not available: eager PyTorch"
    _MODELS.clear()  # keep one network in memory
    _MODELS[key] = model
    return model


def model_weights(model) -> str | None:
    return getattr(model, "weights_path", None)


def model_name(model) -> str:
    return str(getattr(model, "name", type(model).__name__))


# --- job ---------------------------------------------------------------------------------------

class Listener:
    """What a job reports. The CLI prints, the server sends JSON lines."""

    def progress(self, done: int, total: int, frame: int, fps: float | None, eta_s: float | None) -> None: ...

    def frame(self, frame: int, path: str, people: list[str], skipped: bool) -> None: ...

    def error(self, message: str, file: str | None, fatal: bool) -> None: ...


@dataclass
class JobResult:
    frames: int = 0  # frames in place at the end (written or already there)
    written: int = 0
    skipped: int = 0
    failed: int = 0
    people: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)


def _engine_version() -> str:
    import engine

    return getattr(engine, "__version__", "0")


class MatteJob:
    def __init__(self, source, output_pattern: str, guidance, model, settings: MatteSettings,
                 frames: list[int] | None = None, listener: Listener | None = None,
                 cancel: threading.Event | None = None, tracker=None):
        self.source = source
        self.output_pattern = output_pattern
        self.guidance = guidance
        self._model = model  # the network, or a function that loads it (only when a frame needs it)
        self.settings = settings
        self.frames = list(source.frames if frames is None else frames)
        self.listener = listener or Listener()
        self.cancel = cancel or threading.Event()
        self.tracker = tracker
        self.timings = {"read": 0.0, "guidance": 0.0, "network": 0.0, "write": 0.0}
        # per frame written: the person IDs and, for each, the index of its guidance mask
        self.assignments: dict[int, tuple[list[str], list[int]]] = {}

    @property
    def model(self):
        if callable(self._model) and not hasattr(self._model, "matting"):
            self._model = self._model()
        return self._model

    # .................................................................................
    def _path(self, frame: int) -> str:
        from engine.frames import format_pattern

        return format_pattern(self.output_pattern, frame)

    def _extra_paths(self, frame: int, pid: str, linear: bool) -> dict[str, str]:
        from engine.frames import extra_pattern, format_pattern

        paths = {}
        if self.settings.write_png:
            paths["png"] = format_pattern(extra_pattern(self.output_pattern, "png", pid), frame)
        if self.settings.write_rgba:
            suffix = ".exr" if linear else ".png"
            paths["rgba"] = format_pattern(extra_pattern(self.output_pattern, "rgba", pid, suffix), frame)
        return paths

    def _write_extras(self, frame: int, image, alphas, ids: list[str], only_missing: bool) -> None:
        """PNG alphas and premultiplied RGBA cut-outs. ``image`` may be a callable that reads it."""
        import numpy as np

        from engine.io import alpha_to_png, write_png, write_rgba_exr

        if not (self.settings.write_png or self.settings.write_rgba):
            return
        wanted = [kind for kind, on in (("png", self.settings.write_png), ("rgba", self.settings.write_rgba)) if on]
        for pid, alpha in zip(ids, alphas):
            for kind in wanted:
                if only_missing and any(os.path.exists(self._extra_paths(frame, pid, linear)[kind])
                                        for linear in (False, True)):
                    continue
                if callable(image):
                    image = image()  # read only when a file is missing
                path = self._extra_paths(frame, pid, image.linear)[kind]
                pixels = image.pixels
                bits = 8 if pixels.dtype == np.uint8 else 16
                if kind == "png":
                    write_png(path, alpha_to_png(alpha, bits))
                elif image.linear:  # linear float input: premultiplied half-float EXR
                    rgba = np.concatenate([pixels.astype(np.float32) * alpha[..., None], alpha[..., None]], axis=-1)
                    write_rgba_exr(path, rgba)
                else:  # 8/16-bit input: premultiplied PNG of the same depth
                    dtype = np.uint8 if bits == 8 else np.uint16
                    rgb = np.round(pixels.astype(np.float32) * alpha[..., None]).astype(dtype)
                    write_png(path, np.concatenate([rgb, alpha_to_png(alpha, bits)[..., None]], axis=-1))

    def _seed_tracker(self, frame: int) -> None:
        """Continue the IDs of the frame before, when its EXR is on disk (resume, split shots)."""
        from engine.io import person_number, read_person_exr

        if self.tracker is None or self.tracker.tracks or self.tracker.seen:
            return
        before = [f for f in self.source.frames if f < frame]
        if not before:
            return
        previous = self._path(before[-1])
        if not os.path.isfile(previous):
            return
        try:
            ids, alphas, _ = read_person_exr(previous)
        except InputFileError:
            return
        numbers = [person_number(pid) for pid in ids]
        # all-zero layers stand for people out of view: they are not where the tracks are
        keep = [k for k, n in enumerate(numbers) if n is not None and alphas[k].any()]
        self.tracker.seed([numbers[k] for k in keep], alphas[keep] if keep else alphas)
        log.info("tracker continues the %d people of %s", len(keep), previous)

    def _existing(self, frame: int, path: str) -> list[str] | None:
        """The people of an EXR already written (None when it is not one of ours / unreadable)."""
        from engine.io import read_manifest

        try:
            manifest = read_manifest(path)
        except InputFileError as exc:
            log.warning("%s; it will be recomputed", exc)
            return None
        if manifest is None:
            return None
        return list(manifest.get("people", []))

    # .................................................................................
    def run(self) -> JobResult:
        import numpy as np

        from engine.io import person_id, read_person_exr, write_person_exr
        from engine.pipeline import matte

        self.settings.check()
        self.guidance.check(self.frames)
        if self.guidance.tracked and self.tracker is None:
            from engine.tracking import Tracker

            self.tracker = Tracker()
        result = JobResult()
        total = len(self.frames)
        start = time.perf_counter()
        computed_seconds = 0.0
        computed = 0
        if total:
            self.listener.progress(0, total, self.frames[0], None, None)  # the job has started
        for index, frame in enumerate(self.frames):
            if self.cancel.is_set():
                result.cancelled = True
                break
            path = self._path(frame)
            if os.path.exists(path) and not self.settings.overwrite:
                people = self._existing(frame, path)
                if people is not None:
                    if self.settings.write_png or self.settings.write_rgba:
                        try:  # side files asked for now, next to an EXR written before
                            ids, alphas, _ = read_person_exr(path)
                            self._write_extras(frame, lambda f=frame: self.source.read(f), alphas, ids,
                                               only_missing=True)
                        except InputFileError as exc:
                            result.failed += 1
                            self.listener.error(str(exc), exc.path, False)
                    for pid in people:
                        if pid not in result.people:
                            result.people.append(pid)
                    result.skipped += 1
                    result.frames += 1
                    self.listener.frame(frame, path, people, True)
                    self._progress(index + 1, total, frame, computed, computed_seconds)
                    continue
            frame_start = time.perf_counter()
            try:
                t0 = time.perf_counter()
                image = self.source.read(frame)
                t1 = time.perf_counter()
                guide = self.guidance.people(frame, image.rgb8)
                masks = np.asarray(guide.masks, np.float32)
                present = [k for k in range(masks.shape[0]) if (masks[k] > 0).any()]
                masks = masks[present]
                if guide.numbers is not None:
                    numbers = [guide.numbers[k] for k in present]
                else:
                    self._seed_tracker(frame)
                    numbers = self.tracker.update(masks, image.rgb8)
                t2 = time.perf_counter()
            except InputFileError as exc:
                result.failed += 1
                self.listener.error(str(exc), exc.path, False)
                self._progress(index + 1, total, frame, computed, computed_seconds)
                continue
            order = sorted(range(len(numbers)), key=lambda k: numbers[k])
            masks = masks[order]
            numbers = [numbers[k] for k in order]
            alphas = matte(self.model, image.rgb8, masks, refine=self.settings.refine, max_side=self.settings.max_side)
            t3 = time.perf_counter()
            ids = [person_id(n) for n in numbers]
            for pid in ids:
                if pid not in result.people:
                    result.people.append(pid)
            layer_ids, layer_alphas = with_absent_people(ids, alphas, result.people)
            manifest = {
                "people": layer_ids,
                "visible": ids,
                "source": self.source.path,
                "source_file": self.source.file_for(frame),
                "frame": frame,
                "size": [int(image.shape[1]), int(image.shape[0])],
                "weights": model_weights(self.model),
                "backend": model_name(self.model),
                "engine_version": _engine_version(),
                "guidance": self.guidance.describe(),
                "settings": self.settings.manifest(),
            }
            if guide.scores is not None:
                manifest["scores"] = {ids[i]: round(float(guide.scores[present[order[i]]]), 4)
                                      for i in range(len(ids))}
            self._write_extras(frame, image, alphas, ids, only_missing=False)
            write_person_exr(path, layer_alphas, layer_ids, manifest, shape=image.shape)  # last: means done
            t4 = time.perf_counter()
            for key, value in zip(("read", "guidance", "network", "write"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                self.timings[key] += value
            self.assignments[frame] = (ids, [present[k] for k in order])
            result.written += 1
            result.frames += 1
            computed += 1
            computed_seconds += time.perf_counter() - frame_start
            self.listener.frame(frame, path, ids, False)
            self._progress(index + 1, total, frame, computed, computed_seconds)
        self._add_absent_layers(result.people)
        result.seconds = time.perf_counter() - start
        result.timings = dict(self.timings)
        if self.cancel.is_set() and result.frames + result.failed < total:
            result.cancelled = True
        return result

    def _add_absent_layers(self, shot_people: list[str]) -> None:
        """Give every EXR of the job a layer for every person of the shot.

        Blender's Image node takes its sockets from the frame it loads; on a frame that lacks
        a person's layer, that socket shows another person's alpha. So a person who enters
        late gets an all-zero layer in the frames before, rewritten atomically at the end.
        """
        from engine.io import read_manifest, read_person_exr, write_person_exr

        for frame in self.frames:
            path = self._path(frame)
            if not os.path.isfile(path):
                continue
            try:
                manifest = read_manifest(path)
                if manifest is None or set(shot_people) <= set(manifest.get("people", [])):
                    continue
                ids, alphas, manifest = read_person_exr(path)
            except InputFileError as exc:
                log.warning("%s; left as it is", exc)
                continue
            layer_ids, layer_alphas = with_absent_people(ids, alphas, shot_people)
            manifest = dict(manifest, people=layer_ids)
            manifest.setdefault("visible", ids)
            write_person_exr(path, layer_alphas, layer_ids, manifest, shape=alphas.shape[1:])

    def _progress(self, done: int, total: int, frame: int, computed: int, seconds: float) -> None:
        fps = computed / seconds if computed and seconds > 0 else None
        eta = (total - done) / fps if fps else None
        self.listener.progress(done, total, frame, fps, eta)


def with_absent_people(ids: list[str], alphas, shot_people: list[str]):
    """Layers for every person of the shot, ordered by number: zeros for those not in view."""
    import numpy as np

    from engine.io import person_number

    everyone = sorted(set(ids) | set(shot_people), key=lambda pid: (person_number(pid) or 0, pid))
    planes = dict(zip(ids, alphas))
    layers = np.zeros((len(everyone),) + tuple(alphas.shape[1:]), np.float32)
    for index, pid in enumerate(everyone):
        if pid in planes:
            layers[index] = planes[pid]
    return everyone, layers


# --- building a job from CLI or protocol fields -----------------------------------------------

def build_job(input_path: str, output: str, frames=None, guidance: dict | None = None,
              settings: MatteSettings | None = None, listener: Listener | None = None,
              cancel: threading.Event | None = None, model=None) -> MatteJob:
    from engine.frames import format_pattern, open_source, output_pattern, select_frames
    from engine.guidance import make_guidance

    settings = settings or MatteSettings()
    settings.check()
    if settings.threads:
        import torch

        torch.set_num_threads(int(settings.threads))  # the detector too, not only the network
    guidance = dict(guidance or {"kind": "detector"})
    if settings.weights is not None and not Path(settings.weights).is_file():
        raise InputFileError(settings.weights, "weights file not found")
    source = open_source(input_path)
    chosen = select_frames(source.frames, frames, source.path)
    pattern = output_pattern(output, source.stem)
    inputs = {os.path.abspath(source.file_for(f)) for f in chosen if source.file_for(f)}
    if any(os.path.abspath(format_pattern(pattern, f)) in inputs for f in chosen):
        raise UserError(f"{output}: the output would overwrite the input frames; choose another folder or name")
    guide = make_guidance(guidance.get("kind", "detector"), guidance.get("path"), settings.detector_weights,
                          settings.score, settings.min_area, settings.device,
                          settings.detector_size)
    guide.check(chosen)  # before loading the network: fail fast on missing guidance
    if model is None:
        def model():
            return load_matting_model(settings.backend, settings.weights, settings.device, settings.threads)
    return MatteJob(source, pattern, guide, model, settings, chosen, listener, cancel)


# --- command line ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT",
                        help="an image, a folder of images, a frame pattern (shot.####.exr) or a video file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="a folder (files OUT/<input stem>.####.exr) or a pattern such as out/shot.####.exr")
    parser.add_argument("--frames", metavar="FIRST-LAST", help="only these frames, e.g. 1001-1100 (video frames count from 1)")
    guide = parser.add_mutually_exclusive_group()
    guide.add_argument("--masks", metavar="DIR", help="per-person masks instead of the detector: DIR/<frame, 4 digits>/<NN>.png")
    guide.add_argument("--index", metavar="PATTERN", help="one ID image per frame instead of the detector (0 = nobody)")
    parser.add_argument("--weights", metavar="PATH", help="InstMatt weights (default: the shipped checkpoint)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="inference backend (default: auto)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    parser.add_argument("--refine", default="windowed", choices=REFINE_MODES,
                        help="multi-instance refinement: windowed (the authors'), dense (whole frame) or none")
    parser.add_argument("--max-side", type=int, default=1280, help="longest side the network sees (default 1280)")
    parser.add_argument("--score", type=float, default=0.7, help="detector: minimum person score (default 0.7)")
    parser.add_argument("--min-area", type=float, default=0.02,
                        help="detector: minimum mask area as a fraction of the frame (default 0.02)")
    parser.add_argument("--detector-weights", metavar="PATH",
                        help="Mask R-CNN weights (default: torchvision's cache, maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth)")
    parser.add_argument("--detector-size", type=int, default=800,
                        help="detector: shorter side of the frame it sees (default 800; smaller is faster)")
    parser.add_argument("--png", action="store_true", help="also write one PNG alpha per person")
    parser.add_argument("--rgba", action="store_true", help="also write premultiplied RGBA cut-outs per person")
    parser.add_argument("--overwrite", action="store_true", help="recompute frames whose EXR already exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _format_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar(Listener):
    """A text progress bar on stderr: frames done, frames per second, time left."""

    def __init__(self, stream=None, quiet: bool = False, width: int = 28):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_line = 0.0
        self._open = False
        self.errors: list[str] = []

    def progress(self, done, total, frame, fps, eta_s) -> None:
        if self.quiet:
            return
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        rate = f"{fps:.2f} fps" if fps else "-- fps"
        text = f"[{bar}] {done}/{total} frames  {rate}  {_format_time(eta_s)} left  (frame {frame})"
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self._open = done < total
            if done >= total:
                self.stream.write("\n")
        elif done >= total or now - self._last_line >= 2.0 or done == 1:
            self.stream.write(text + "\n")
            self._last_line = now
        self.stream.flush()

    def error(self, message, file, fatal) -> None:
        self.errors.append(message)
        if self._open:
            self.stream.write("\n")
            self._open = False
        self.stream.write(f"instmatt matte: error: {message}\n")
        self.stream.flush()


class _InterruptGuard:
    """First Ctrl-C: finish the frame in hand, then stop. Second: stop now (the frame is discarded)."""

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel
        self.previous = None

    def _handler(self, signum, frame):
        if self.cancel.is_set():
            raise KeyboardInterrupt
        self.cancel.set()
        sys.stderr.write("\ninstmatt matte: stopping after the frame in hand (Ctrl-C again to stop at once)\n")
        sys.stderr.flush()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def setup_logging(verbose: bool = False) -> None:
    root = logging.getLogger("instmatt")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("instmatt: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def settings_from_args(args) -> MatteSettings:
    return MatteSettings(max_side=args.max_side, refine=args.refine, score=args.score, min_area=args.min_area,
                         write_png=args.png, write_rgba=args.rgba, backend=args.backend, weights=args.weights,
                         detector_weights=args.detector_weights, detector_size=args.detector_size,
                         overwrite=args.overwrite, device=args.device, threads=args.threads)


def run(args) -> int:
    setup_logging()
    settings = settings_from_args(args)
    if args.masks:
        guidance = {"kind": "masks", "path": args.masks}
    elif args.index:
        guidance = {"kind": "index", "path": args.index}
    else:
        guidance = {"kind": "detector"}
    cancel = threading.Event()
    bar = ProgressBar(quiet=args.quiet)
    job = build_job(args.input, args.output, args.frames, guidance, settings, bar, cancel)
    with _InterruptGuard(cancel):
        result = job.run()
    out_dir = os.path.dirname(job.output_pattern) or "."
    summary = (f"instmatt matte: {result.written} frames written, {result.skipped} already there"
               + (f", {result.failed} failed" if result.failed else "")
               + f"; people: {', '.join(result.people) or 'none'}; output in {out_dir}")
    if result.cancelled:
        summary += " (stopped early: rerun the same command to resume)"
    print(summary, file=sys.stderr)
    if result.failed:
        return 2
    return 130 if result.cancelled else 0
