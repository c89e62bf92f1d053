"""A stand-in for ``python -m engine serve --stdio`` that speaks protocol 1 exactly as
docs/protocol.md describes, for testing the add-on without torch.

It mattes nothing: with ``masks`` guidance a person's alpha is the mask itself (so tests
know the exact answer; with ``propagate`` the mask of the nearest keyframe folder, and a
``note`` before the frames says which keyframes it found); with ``index`` guidance it is
``id == n``; the detector finds nobody.  It writes the documented EXR layout (``person_NN.A`` half channels, ZIP,
``instmatt_manifest`` header) through a temporary name and a rename.

    python fake_engine.py [--mode normal|slow|crash|oom|no-hello|bad-protocol|exit-on-start]
                          [--delay SECONDS]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import re
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RASTER = os.path.join(HERE, "..", "..", "blender_instmatt", "client", "raster.py")


def _load_raster():
    spec = importlib.util.spec_from_file_location("instmatt_raster", RASTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def frame_path(pattern: str, frame: int) -> str:
    count = pattern.count("#")
    return pattern.replace("#" * count, f"{frame:0{count}d}")


def write_exr(path: str, alphas: dict, size, manifest: dict) -> None:
    import numpy as np
    import OpenEXR

    width, height = size
    channels = {f"{name}.A": a.astype(np.float16) for name, a in alphas.items()}
    if not channels:
        channels = {"A": np.zeros((height, width), np.float16)}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              "instmatt_manifest": json.dumps(manifest)}
    tmp = path + ".tmp.exr"
    OpenEXR.File(header, channels).write(tmp)
    os.replace(tmp, path)


def keyframes_in(folder: str) -> list[int]:
    return sorted(int(name) for name in os.listdir(folder) if name.isdigit())


def alphas_for(guidance: dict, frame: int, raster, propagate: bool = False):
    import numpy as np

    kind = guidance.get("kind", "detector")
    if kind == "masks":
        if propagate:  # the nearest keyframe (the earlier one on a tie)
            frame = min(keyframes_in(guidance["path"]), key=lambda key: (abs(key - frame), key))
        folder = os.path.join(guidance["path"], f"{frame:04d}")
        if not os.path.isdir(folder):
            folder = guidance["path"]  # a still image: DIR/<NN>.png
        alphas, size = {}, (64, 48)
        for name in sorted(os.listdir(folder)):
            m = re.match(r"^(\d+)\.png$", name)
            if not m:
                continue
            width, height, data = raster.read_png_gray(os.path.join(folder, name))
            size = (width, height)
            alpha = np.frombuffer(bytes(data), np.uint8).reshape(height, width).astype(np.float32) / 255.0
            alphas[f"person_{int(m.group(1)):02d}"] = alpha
        return alphas, size
    if kind == "index":
        count = guidance["path"].count("#")
        path = guidance["path"].replace("#" * count, f"{frame:0{count}d}")
        width, height, data = raster.read_png_gray(path)
        ids = np.frombuffer(bytes(data), np.uint8).reshape(height, width)
        return {f"person_{i:02d}": (ids == i).astype(np.float32) for i in sorted(set(ids.flat) - {0})}, (width, height)
    return {}, (64, 48)


def run_job(req, cancelled: threading.Event, args, raster):
    job_id = req.get("id")
    frames = req.get("frames") or [1, 1]
    if isinstance(frames, str):
        a, _, b = frames.partition("-")
        frames = [int(a), int(b or a)]
    first, last = int(frames[0]), int(frames[1])
    options = req.get("options") or {}
    guidance = req.get("guidance") or {"kind": "detector"}
    people: list[str] = []
    total = last - first + 1
    propagate = bool(options.get("propagate")) and guidance.get("kind") == "masks"
    if propagate:
        keys = keyframes_in(guidance["path"])
        emit({"type": "note", "id": job_id, "message": f"{total} frames from keyframes {keys}"})
    start = time.monotonic()
    for done, frame in enumerate(range(first, last + 1), start=1):
        if cancelled.is_set():
            emit({"type": "done", "id": job_id, "frames": done - 1, "people": people, "cancelled": True})
            return
        out = frame_path(req["output"], frame)
        skipped = os.path.exists(out) and not options.get("overwrite")
        if not skipped:
            if "#" in req["input"] and not os.path.exists(frame_path(req["input"], frame)):
                emit({"type": "error", "id": job_id, "message": f"{frame_path(req['input'], frame)}: no such file",
                      "file": frame_path(req["input"], frame), "fatal": True})
                return
            time.sleep(args.delay)
            alphas, size = alphas_for(guidance, frame, raster, propagate)
            write_exr(out, alphas, size, {"people": list(alphas), "source": req["input"], "frame": frame,
                                          "weights": None, "settings": options,
                                          "labels": {p: n for p, n in (options.get("labels") or {}).items()
                                                     if p in alphas}})
            names = list(alphas)
        else:
            names = []
        for name in names:
            if name not in people:
                people.append(name)
        emit({"type": "frame", "id": job_id, "frame": frame, "path": out, "people": names, "skipped": skipped})
        elapsed = time.monotonic() - start
        fps = done / elapsed if elapsed > 0 else 0.0
        emit({"type": "progress", "id": job_id, "done": done, "total": total, "frame": frame,
              "fps": round(fps, 2), "eta_s": round((total - done) / fps, 2) if fps else None})
        if args.mode == "crash" and done == 1:
            sys.stderr.write("RuntimeError: simulated engine crash\n")
            sys.stderr.flush()
            os._exit(3)
        if args.mode == "oom" and done == 1:  # the kernel's out-of-memory killer, mid-job
            sys.stderr.write(f"instmatt: INFO: job {job_id}: frame {frame + 1}: matting 30 people\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    emit({"type": "done", "id": job_id, "frames": total, "people": people, "cancelled": False})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="normal")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    if args.mode == "exit-on-start":
        sys.stderr.write("Traceback (most recent call last):\nModuleNotFoundError: No module named 'torch'\n")
        sys.exit(1)
    if args.mode == "no-hello":
        time.sleep(60)
        return
    raster = _load_raster()
    emit({"type": "hello", "protocol": 99 if args.mode == "bad-protocol" else 1, "engine_version": "fake",
          "backend": "fake", "weights": None, "pid": os.getpid()})
    requests: queue.Queue = queue.Queue()
    cancel_flags: dict[str, threading.Event] = {}
    worker = {"thread": None, "id": None}

    def reader():
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                requests.put(json.loads(line))
            except ValueError:
                emit({"type": "error", "message": f"malformed request: {line[:80]}", "fatal": False})
        requests.put({"type": "shutdown", "eof": True})

    threading.Thread(target=reader, daemon=True).start()
    while True:
        req = requests.get()
        kind = req.get("type")
        if kind == "ping":
            emit({"type": "pong"})
        elif kind == "shutdown":
            flag = cancel_flags.get(worker["id"])
            if flag:
                flag.set()
            if worker["thread"]:
                worker["thread"].join()
            if not req.get("eof"):
                emit({"type": "bye"})
            return
        elif kind == "cancel":
            flag = cancel_flags.get(req.get("id"))
            if flag:
                flag.set()
        elif kind == "matte":
            if worker["thread"] is not None and worker["thread"].is_alive():
                emit({"type": "error", "id": req.get("id"), "message": f"busy: job {worker['id']} is running",
                      "fatal": True})
                continue
            flag = cancel_flags[req["id"]] = threading.Event()
            worker["id"] = req["id"]
            worker["thread"] = threading.Thread(target=run_job, args=(req, flag, args, raster), daemon=True)
            worker["thread"].start()
        else:
            emit({"type": "error", "message": f"unknown request type {kind!r}", "fatal": False})


if __name__ == "__main__":
    main()
