"""Where compiled artefacts live and when they are stale.

Layout under the cache root (default ``~/.cache/blender-instmatt``, overridden by the
``cache_dir`` arguments or the ``INSTMATT_CACHE_DIR`` environment variable; the
Blender add-on points it at its extension's user folder):

    onnx/instmatt-<key>.onnx            exported matting graph (ONNX Runtime, TensorRT)
    onnx/instmatt-<key>.refiner.onnx    its refiner graph
    engines/instmatt-<key>.plan         TensorRT engine
    engines/instmatt-<key>.plan.json    its sidecar: the full cache key
    engines/timing-<trt>-sm<cc>.cache   TensorRT timing cache, shared by all builds

A key is the SHA-256 of a canonical JSON of every input that changes the artefact; the
sidecar stores that JSON, so an engine whose sidecar does not match what this machine
would build is stale and is rebuilt, never run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engine.io.atomic import write_bytes_atomic

ENV_CACHE_DIR = "INSTMATT_CACHE_DIR"
SIDECAR_SUFFIX = ".json"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    return Path.home() / ".cache" / "blender-instmatt"


def engines_dir(cache_dir: str | Path | None = None) -> Path:
    return cache_root(cache_dir) / "engines"


def onnx_dir(cache_dir: str | Path | None = None) -> Path:
    return cache_root(cache_dir) / "onnx"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_sha256(state_dict: dict) -> str:
    """Hash of a state dict's names, dtypes, shapes and values (for weights held in memory)."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def canonical(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def normalised(fields: dict) -> dict:
    """``fields`` as they read back from JSON (tuples become lists), for comparisons."""
    return json.loads(canonical(fields))


def cache_key(fields: dict, length: int = 20) -> str:
    """Short hex key of ``fields``; any change in any field changes it."""
    return hashlib.sha256(canonical(fields).encode()).hexdigest()[:length]


def onnx_key_fields(weights_sha256: str, width: float, opset: int, precision: str, export_version: int) -> dict:
    return {"kind": "onnx", "weights_sha256": weights_sha256, "width": float(width), "opset": int(opset),
            "precision": precision, "export_version": int(export_version)}


def engine_key_fields(tensorrt_version: str, compute_capability: str, onnx_sha256: str, profile: dict,
                      precision: str, workspace_mib: int | None = None) -> dict:
    return {"kind": "tensorrt", "tensorrt_version": str(tensorrt_version),
            "compute_capability": str(compute_capability), "onnx_sha256": onnx_sha256,
            "profile": profile, "precision": precision, "workspace_mib": workspace_mib}


def sidecar_path(artefact: str | Path) -> Path:
    artefact = Path(artefact)
    return artefact.with_name(artefact.name + SIDECAR_SUFFIX)


def write_sidecar(artefact: str | Path, fields: dict, extra: dict | None = None) -> Path:
    path = sidecar_path(artefact)
    payload = {"key": cache_key(fields), "fields": normalised(fields), **(extra or {})}
    return write_bytes_atomic(path, (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_sidecar(artefact: str | Path) -> dict | None:
    path = sidecar_path(artefact)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stale_reason(artefact: str | Path, fields: dict) -> str | None:
    """Why ``artefact`` must not be used for ``fields`` (None: it is current)."""
    artefact = Path(artefact)
    fields = normalised(fields)
    if not artefact.is_file() or artefact.stat().st_size == 0:
        return f"{artefact.name} does not exist"
    sidecar = read_sidecar(artefact)
    if sidecar is None:
        return f"{artefact.name} has no readable sidecar {sidecar_path(artefact).name}"
    stored = sidecar.get("fields")
    if not isinstance(stored, dict):
        return f"{sidecar_path(artefact).name} holds no key fields"
    changed = sorted(name for name in set(stored) | set(fields) if stored.get(name) != fields.get(name))
    if changed or sidecar.get("key") != cache_key(fields):
        return f"{artefact.name} was built for different {', '.join(changed) or 'key'}"
    return None
