"""ONNX Runtime: the exported graphs on the CPU provider, or on CUDA when it is there.

``matting`` and ``refiner`` take and return torch tensors on ``self.device``: on the
CPU the arrays are shared with numpy (no copies), on CUDA they are bound by address
through an IO binding, so :func:`engine.inference.pipeline.matte` runs unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .base import MATTING_OUTPUTS, Backend, BackendUnavailable


def import_onnxruntime():
    """onnxruntime with its telemetry off. The official wheels start a telemetry client on
    import (a device id and an event database under ~/.cache/Microsoft, uploads): the
    environment variable stops that before it starts, disable_telemetry_events() stops
    the events of an already imported module."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        import onnxruntime
    except ImportError as exc:  # also covers sys.modules["onnxruntime"] = None
        raise BackendUnavailable(f"onnxruntime is not importable ({exc})") from None
    if hasattr(onnxruntime, "disable_telemetry_events"):
        onnxruntime.disable_telemetry_events()
    return onnxruntime


def providers_for(device: torch.device) -> list:
    onnxruntime = import_onnxruntime()
    available = onnxruntime.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(f"ONNX Runtime has no CUDA provider here (providers: {', '.join(available)})")
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    if device.type != "cpu":
        raise BackendUnavailable(f"ONNX Runtime does not run on {device.type}")
    return ["CPUExecutionProvider"]


def session_options(threads: int | None = None):
    onnxruntime = import_onnxruntime()
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the graph's shape warnings are expected
    return options


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, matting_path: str | Path, refiner_path: str | Path | None = None,
                 device: torch.device | str = "cpu", threads: int | None = None, reason: str = "",
                 width: float = 1.0, weights_path: str | None = None, torch_refiner=None, keep=None):
        super().__init__(reason, device, width, weights_path)
        self._keep = keep  # e.g. the temporary folder of a random network's graphs
        onnxruntime = import_onnxruntime()
        providers = providers_for(self.device)
        options = session_options(threads)
        self.threads = threads
        self.matting_path = Path(matting_path)
        self.refiner_path = None if refiner_path is None else Path(refiner_path)
        try:
            self.session = onnxruntime.InferenceSession(str(self.matting_path), options, providers=providers)
            self.refiner_session = None
            if self.refiner_path is not None:
                self.refiner_session = onnxruntime.InferenceSession(str(self.refiner_path), options,
                                                                    providers=providers)
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
            raise BackendUnavailable(f"ONNX Runtime could not load {self.matting_path.name} ({exc})") from None
        self.providers = self.session.get_providers()
        if self.device.type == "cuda" and "CUDAExecutionProvider" not in self.providers:
            raise BackendUnavailable("ONNX Runtime's CUDA provider failed to start (CUDA/cuDNN libraries missing?)")
        self.torch_refiner = torch_refiner
        if self.refiner_session is None and torch_refiner is None:
            raise ValueError("give a refiner graph or a torch refiner")
        self.feature_channels = self.session.get_outputs()[3].shape[1]
        self.precision = dict(self.session.get_modelmeta().custom_metadata_map).get("instmatt.precision", "fp32")

    # -- running ------------------------------------------------------------------------------

    def _run(self, session, feeds: dict[str, torch.Tensor], outputs: dict[str, tuple]) -> list[torch.Tensor]:
        if self.device.type == "cpu":
            arrays = {name: tensor.detach().float().contiguous().numpy() for name, tensor in feeds.items()}
            results = session.run(list(outputs), arrays)
            return [torch.from_numpy(np.ascontiguousarray(result)) for result in results]
        binding = session.io_binding()
        index = self.device.index or 0
        feeds = {name: tensor.detach().float().contiguous() for name, tensor in feeds.items()}
        for name, tensor in feeds.items():
            binding.bind_input(name, "cuda", index, np.float32, tuple(tensor.shape), tensor.data_ptr())
        results = []
        for name, shape in outputs.items():
            result = torch.empty(shape, dtype=torch.float32, device=self.device)
            binding.bind_output(name, "cuda", index, np.float32, tuple(shape), result.data_ptr())
            results.append(result)
        torch.cuda.current_stream(self.device).synchronize()  # the inputs must be written first
        session.run_with_iobinding(binding)
        return results

    @torch.inference_mode()
    def _matting_batch(self, image: torch.Tensor, trimask: torch.Tensor) -> dict[str, torch.Tensor]:
        count, _, height, width = image.shape
        shapes = {name: (count, 3, height, width) for name in MATTING_OUTPUTS[:3]}
        shapes["feature"] = (count, self.feature_channels, height, width)
        results = self._run(self.session, {"image": image, "trimask": trimask}, shapes)
        return dict(zip(MATTING_OUTPUTS, results))

    @torch.inference_mode()
    def refiner(self, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        if self.refiner_session is None:
            return self.torch_refiner(image.float(), trimatte.float(), feature.float())
        count, _, height, width = trimatte.shape
        image = image.expand(count, -1, -1, -1) if image.shape[0] != count else image
        return self._run(self.refiner_session, {"image": image, "trimatte": trimatte, "feature": feature},
                         {"refined": (count, 3, height, width)})[0]

    def describe(self) -> dict:
        return {**super().describe(), "providers": self.providers, "threads": self.threads,
                "onnx": str(self.matting_path), "precision": self.precision,
                "refiner": "onnx" if self.refiner_session is not None else "pytorch"}
