"""Classify new inputs with a saved checkpoint alone: images as FashionMNIST, questions as TREC."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from data.text import Vocabulary, pad_sequences, tokenize
from utils.checkpoint import load_checkpoint
from utils.experiment import model_from_checkpoint

CHECKPOINT_KEYS = {"model", "model_name", "model_kwargs", "task", "class_names", "meta"}


class InputError(ValueError):
    """An input or checkpoint that cannot be classified; the message says which and why."""


def load_for_inference(path: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model of a checkpoint, in eval mode on the CPU, and the checkpoint itself."""
    try:
        checkpoint = load_checkpoint(path)
    except (FileNotFoundError, ValueError) as error:
        raise InputError(str(error)) from error
    if not isinstance(checkpoint, dict) or not CHECKPOINT_KEYS <= set(checkpoint):
        raise InputError(f"{path} is not a checkpoint of this repository (no model_name/task/class_names)")
    return model_from_checkpoint(checkpoint), checkpoint


def image_to_fashion_mnist(image: Image.Image, size: int = 28) -> np.ndarray:
    """A (size, size) uint8 array drawn like FashionMNIST: light object on black, fitted and centred.

    Photos usually show a dark object on a light background, so the image is inverted when its
    border is brighter than its middle.
    """
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean()
    if border > gray.mean():
        gray = 255.0 - gray
    height, width = gray.shape
    scale = size / max(height, width)
    fitted = Image.fromarray(gray.astype(np.uint8)).resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS)
    canvas = np.zeros((size, size), dtype=np.uint8)
    top, left = (size - fitted.height) // 2, (size - fitted.width) // 2
    canvas[top:top + fitted.height, left:left + fitted.width] = np.asarray(fitted)
    return canvas


def read_image(path: str) -> np.ndarray:
    """An image file (PNG, JPEG, ... any size and colour) as a FashionMNIST-like array."""
    try:
        with Image.open(path) as image:
            return image_to_fashion_mnist(image)
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"cannot read image {path!r}: {error}") from error


def image_inputs(arrays: Sequence[np.ndarray], meta: dict[str, Any]) -> torch.Tensor:
    """A normalised (N, 1, 28, 28) float batch from uint8 arrays."""
    pixels = torch.from_numpy(np.stack(arrays)).float().div(255.0)
    return ((pixels - meta["mean"]) / meta["std"]).unsqueeze(1)


def question_inputs(questions: Sequence[str], meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and lengths of questions, encoded with the checkpoint's vocabulary."""
    vocabulary = Vocabulary(meta["vocabulary"])
    encoded = []
    for question in questions:
        tokens = tokenize(question)
        if not tokens:
            raise InputError("empty question: give some words to classify")
        encoded.append(vocabulary.encode(tokens))
    return pad_sequences(encoded)


@torch.inference_mode()
def class_probabilities(model: torch.nn.Module, inputs: Any) -> torch.Tensor:
    """Softmax probabilities (N, num_classes)."""
    return torch.softmax(model(inputs).float(), dim=1)
