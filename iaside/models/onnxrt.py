"""``onnx:PATH``: an ONNX graph run by onnxruntime behind a torch module."""

from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from ..config import DATA_FIELDS
from ..errors import IasideError
from ._common import Built, Declared, existing_file, file_fingerprint, reject_weights


class OnnxNet(nn.Module):
    """An onnxruntime session as a module: (B, C, H, W) float -> (B, K) float32 on the input's device.

    A graph with a fixed batch size N gets the batch in chunks of N, the last one zero-padded.
    No gradients flow through it.
    """

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        graph_input = session.get_inputs()[0]
        self.input_name = graph_input.name
        self.fixed_batch = graph_input.shape[0] if isinstance(graph_input.shape[0], int) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.detach().to("cpu", torch.float32).contiguous().numpy()
        step = self.fixed_batch or len(pixels)
        outputs = []
        for start in range(0, len(pixels), step):
            chunk = pixels[start : start + step]
            n = len(chunk)
            if n < step:
                chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), np.float32)])
            outputs.append(self.session.run(None, {self.input_name: chunk})[0][:n])
        return torch.from_numpy(np.concatenate(outputs).astype(np.float32, copy=False)).to(x.device)


def load_onnx(path: str, *, weights: str | None, device: torch.device, num_classes: int | None) -> Built:
    """An ONNX classifier; CUDA provider when ``device`` is cuda and onnxruntime has it.

    Declared data config: channels and (H, W) from the graph input when static, then the
    model's ``metadata_props``: a ``data_config`` entry (JSON object of DataConfig fields) or
    one entry per field (JSON values), e.g. set with ``onnx.helper.set_model_props``.
    """
    reject_weights(weights, "ONNX")
    p = existing_file(path, "ONNX file")
    try:
        import onnxruntime as ort
    except ImportError as e:
        from ..install import pip_hint

        raise IasideError(f"onnx:PATH needs onnxruntime: {pip_hint('iaside[onnx]')}") from e
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(p), providers=providers)
    except Exception as e:
        raise IasideError(f"onnxruntime cannot open {str(p)!r}: {e}") from e
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        found = [(i.name, i.shape) for i in inputs]
        raise IasideError(f"{str(p)!r} must take one (B, C, H, W) image input; it takes {found}")
    channels, height, width = inputs[0].shape[1:]
    graph: dict[str, int | tuple[int, int]] = {"channels": channels} if isinstance(channels, int) else {}
    if isinstance(height, int) and isinstance(width, int):
        graph["input_size"] = (height, width)
    declared = [(graph, "ONNX graph input"), *_metadata(session.get_modelmeta().custom_metadata_map, p.name)]
    net = OnnxNet(session)
    extra = {"path": str(p), "providers": session.get_providers(), "fixed_batch": net.fixed_batch}
    return Built(net, declared, file_fingerprint(p), extra=extra)


def _metadata(props: dict[str, str], name: str) -> list[Declared]:
    """The data config declared in an ONNX model's metadata_props (JSON values)."""
    found = {}
    try:
        if "data_config" in props:
            found.update(json.loads(props["data_config"]))
        found.update({k: json.loads(v) for k, v in props.items() if k in DATA_FIELDS})
    except ValueError as e:
        raise IasideError(f"{name}: metadata_props data-config entries must be JSON ({e})") from e
    return [(found, f"{name} metadata_props")] if found else []
