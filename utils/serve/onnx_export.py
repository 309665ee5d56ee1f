"""Export a checkpoint to ONNX, and prove the file right before calling it done.

The exported graph takes `images` (batch, 1, 28, 28) float, or `token_ids` (batch, time) and
`lengths` (batch,) int64, with batch and time dynamic, and returns `logits`. Its metadata holds
what a predictor needs: the task, the class names and the checkpoint's `meta` (normalisation,
tokenizer). Recurrent models are exported through their masked path, not packed sequences.
`verify` runs the file with onnxruntime on real or generated inputs at several batch sizes and
lengths and compares the logits with PyTorch's.
"""
from __future__ import annotations

import json
import warnings
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from models.rnn import RecurrentClassifier
from data.bundle import kind_of
from utils.errors import ExportError, one_line

OPSET = 17
TOLERANCE = 1e-4  # largest allowed |logit difference| between onnxruntime and PyTorch (float32)
BATCH_SIZES = (1, 7, 64)


class TextGraph(nn.Module):
    """A text model as a graph of two tensor inputs; recurrent models take their masked path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, RecurrentClassifier):
            return self.model.forward_masked((token_ids, lengths))
        return self.model((token_ids, lengths))


def export(model: nn.Module, checkpoint: dict[str, Any], example: Any, path: str) -> None:
    """Write `model` (eval mode, CPU) as an ONNX file at `path`, with dynamic batch (and time) sizes
    and the checkpoint's task, class names and meta as metadata."""
    import onnx

    text = kind_of(checkpoint["task"]) == "text"
    graph = TextGraph(model).eval() if text else model  # export restores each module's mode from the top one
    names = ["token_ids", "lengths"] if text else ["images"]
    axes = ({"token_ids": {0: "batch", 1: "time"}, "lengths": {0: "batch"}} if text else {"images": {0: "batch"}})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notices are not the user's business
            torch.onnx.export(graph, tuple(example) if text else (example,), path, input_names=names,
                              output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
    except Exception as error:  # the exporter raises many kinds of errors for unsupported operations
        raise ExportError(f"the {checkpoint['model_name']} model cannot be exported to ONNX "
                          f"({type(error).__name__}: {one_line(error)[:200]})") from error
    exported = onnx.load(path)
    for key, value in {"task": checkpoint["task"], "class_names": checkpoint["class_names"],
                       "meta": checkpoint["meta"], "model_name": checkpoint["model_name"]}.items():
        exported.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(exported, path)


def batches_to_check(inputs: Any, text: bool) -> Iterator[Any]:
    """Slices of the example inputs at each of BATCH_SIZES; text batches trimmed to their longest
    question, so that different lengths are checked too."""
    count = len(inputs[1]) if text else len(inputs)
    for size in BATCH_SIZES:
        for start in range(0, count - size + 1, max(size, count // 3)):
            if not text:
                yield inputs[start:start + size]
                continue
            token_ids, lengths = inputs[0][start:start + size], inputs[1][start:start + size]
            yield token_ids[:, :int(lengths.max())], lengths


def verify(model: nn.Module, path: str, inputs: Any, text: bool) -> dict[str, Any]:
    """Run the file with onnxruntime against PyTorch on `inputs` at several batch sizes and lengths;
    returns the largest logit difference and the share of equal predictions, or raises ExportError."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst, agree, total, shapes = 0.0, 0, 0, set()
    for batch in batches_to_check(inputs, text):
        with torch.inference_mode():
            expected = (TextGraph(model)(*batch) if text else model(batch)).float().numpy()
        feed = dict(zip([i.name for i in session.get_inputs()], [t.numpy() for t in (batch if text else [batch])]))
        got = session.run(["logits"], feed)[0]
        if not (np.isfinite(got).all() and np.isfinite(expected).all()):
            raise ExportError(f"{path} gives non-finite logits on the check inputs: the export should not be used")
        worst = max(worst, float(np.abs(got - expected).max()))
        agree += int((got.argmax(1) == expected.argmax(1)).sum())
        total += len(got)
        shapes.add(tuple(batch[0].shape) if text else len(batch))
    result = {"max_abs_diff": worst, "same_prediction": agree / max(total, 1), "examples": total,
              "batch_shapes": sorted(shapes)}
    if not worst <= TOLERANCE:
        raise ExportError(f"{path} differs from PyTorch by up to {worst:.2e} in the logits (allowed {TOLERANCE:.0e}); "
                          "the export is wrong and should not be used")
    return result
