"""Models to classify with: a checkpoint's, or an exported .onnx file run by onnxruntime."""
from __future__ import annotations

import json
import os
from typing import Any

import torch

from utils.errors import CheckpointError
from utils.storage.checkpoint import check_predictor_checkpoint, load_checkpoint, model_from_checkpoint


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
    checkpoint (for .onnx: its task, class names and meta)."""
    if path.endswith(".onnx"):
        if not os.path.isfile(path):
            raise CheckpointError(f"{path} not found")
        classifier = OnnxClassifier(path)
        check_predictor_checkpoint({**classifier.checkpoint, "model": {}, "model_kwargs": {}}, path)
        return classifier, classifier.checkpoint
    checkpoint = load_checkpoint(path)
    check_predictor_checkpoint(checkpoint, path)
    return model_from_checkpoint(checkpoint, path=path), checkpoint


@torch.inference_mode()
def class_probabilities(model: Any, inputs: Any) -> torch.Tensor:
    """Softmax probabilities (N, num_classes)."""
    return torch.softmax(model(inputs).float(), dim=1)
