"""Models to classify with: a checkpoint's, or an exported .onnx file run by onnxruntime."""
from __future__ import annotations

import json
import os
from typing import Any

import torch

from utils.errors import CheckpointError, one_line
from utils.serve.inputs import probe_inputs
from utils.storage.checkpoint import check_predictor_checkpoint, load_checkpoint, model_from_checkpoint
from utils.storage.files import read_json


class OnnxClassifier:
    """An exported .onnx file run by onnxruntime, called like the PyTorch model: inputs -> logits."""

    def __init__(self, path: str) -> None:
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            saved = self.session.get_modelmeta().custom_metadata_map
            self.checkpoint = {key: json.loads(saved[key]) for key in ("task", "class_names", "meta", "model_name")}
        except (KeyError, ValueError) as error:
            raise CheckpointError(f"{path} is an ONNX file without this repository's metadata (task, class "
                                  "names, meta): export it with export.py") from error
        except Exception as error:  # onnxruntime raises its own exception types for files it cannot parse
            raise CheckpointError(f"{path} is not a readable ONNX file ({type(error).__name__})") from error
        self.input_names = [item.name for item in self.session.get_inputs()]

    def __call__(self, inputs: Any) -> torch.Tensor:
        tensors = inputs if isinstance(inputs, tuple) else (inputs,)
        feed = {name: tensor.numpy() for name, tensor in zip(self.input_names, tensors)}
        return torch.from_numpy(self.session.run(["logits"], feed)[0])


def load_for_inference(path: str) -> tuple[Any, dict[str, Any]]:
    """The model of a checkpoint (in eval mode on the CPU) or of an exported .onnx file, and the
    checkpoint (for .onnx: its task, class names and meta), checked to work together (check_fits)."""
    if path.endswith(".onnx"):
        if not os.path.isfile(path):
            raise CheckpointError(f"{path} not found")
        model = OnnxClassifier(path)
        checkpoint = model.checkpoint
        check_predictor_checkpoint({**checkpoint, "model": {}, "model_kwargs": {}}, path)
    else:
        checkpoint = load_checkpoint(path)
        check_predictor_checkpoint(checkpoint, path)
        refuse_non_finite_weights(checkpoint["model"], path)
        model = model_from_checkpoint(checkpoint, path=path)
    check_fits(model, checkpoint, path)
    return model, checkpoint


def run_summary_of(model_path: str) -> dict[str, Any] | None:
    """The summary.json beside a model file (its run's results), or None when the run did not finish
    or the file cannot be read."""
    try:
        summary = read_json(os.path.join(os.path.dirname(os.path.abspath(model_path)), "summary.json"))
    except CheckpointError:
        return None
    return summary if isinstance(summary, dict) else None


def refuse_non_finite_weights(weights: dict[str, torch.Tensor], path: str) -> None:
    """Raise CheckpointError when a floating-point tensor of `weights` holds NaN or an infinity."""
    broken = [name for name, tensor in weights.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if broken:
        raise CheckpointError(f"{path}: {len(broken)} weight tensor(s) hold NaN or infinite values (e.g. {broken[0]}); "
                              "use a checkpoint of a run that did not diverge")


@torch.inference_mode()
def check_fits(model: Any, checkpoint: dict[str, Any], path: str) -> None:
    """Raise CheckpointError unless the model classifies the most demanding input its meta allows
    (see probe_inputs) into finite scores, one per class name."""
    try:
        logits = model(probe_inputs(checkpoint))
    except Exception as error:  # noqa: BLE001 - torch and onnxruntime fail in their own ways
        raise CheckpointError(f"{path}: its model cannot read inputs as its metadata describes them "
                              f"({one_line(error)[:160]})") from error
    if tuple(logits.shape) != (1, len(checkpoint["class_names"])):
        raise CheckpointError(f"{path}: its model gives {logits.shape[-1]} scores but its metadata names "
                              f"{len(checkpoint['class_names'])} classes")
    if not torch.isfinite(logits).all():
        raise CheckpointError(f"{path}: its model gives scores that are not finite (NaN or infinite weights)")


@torch.inference_mode()
def class_probabilities(model: Any, inputs: Any) -> torch.Tensor:
    """Softmax probabilities (N, num_classes)."""
    return torch.softmax(model(inputs).float(), dim=1)
