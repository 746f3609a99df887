"""Export a checkpoint to ONNX, and predict through onnxruntime with the same slice-wise code path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output


def export_onnx(
    model: torch.nn.Module,
    in_channels: int,
    path: str | Path,
    size: tuple[int, int] = (256, 256),
    opset: int = 17,
) -> Path:
    """Write ``model`` (input (B, in_channels, H, W), output logits) as ONNX with dynamic batch, H and W."""
    model = model.eval()
    example = torch.zeros(1, in_channels, *size)
    with atomic_output(path) as tmp, torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["slices"],
            output_names=["logits"],
            opset_version=opset,
            dynamic_axes={
                "slices": {0: "batch", 2: "height", 3: "width"},
                "logits": {0: "batch", 2: "height", 3: "width"},
            },
            dynamo=False,
        )
    return Path(path)


class OnnxModel(torch.nn.Module):
    """An onnxruntime session behind the torch Module interface, so Predictor can use it unchanged."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise LesionsegError("onnxruntime is not installed (pip install 'lesionseg[export]')") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(["logits"], {"slices": np.ascontiguousarray(x.float().numpy())})
        return torch.from_numpy(logits)
