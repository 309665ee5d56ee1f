"""Raw inputs turned into model inputs as a checkpoint's `meta` says: image files at the checkpoint's
channels and size (drawn like FashionMNIST's images for its models), texts encoded with the
checkpoint's tokenizer."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from data import DataError
from data.bundle import kind_of
from data.image_batches import normalise, per_channel
from data.framing import eval_framing, fit_image, frame_image
from data.images import grayscale_0_255, image_shape, open_image
from data.text import pad_sequences
from data.tokenization import tokenizer_from_meta
from utils.errors import InputError


def image_to_fashion_mnist(image: Image.Image, size: int = 28) -> np.ndarray:
    """A (size, size) uint8 array drawn like FashionMNIST: light object on black, fitted and centred.

    Photos usually show a dark object on a light background, so the image is inverted when its
    border is brighter than its middle.
    """
    gray = grayscale_0_255(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean()
    if border > gray.mean():
        gray = 255.0 - gray
    return fit_image(gray.astype(np.uint8)[None], size, size)[0]


def read_image(source: str | bytes, meta: dict[str, Any] | None = None, task: str = "fashion_mnist",
               name: str = "") -> np.ndarray:
    """An image file, or its bytes (PNG, JPEG, ... any size, mode and bit depth), as the model of a
    checkpoint sees it: for FashionMNIST a 28x28 array drawn like its images (image_to_fashion_mnist),
    else a (channels, H, W) array of the checkpoint's channels and size: the whole image fitted in, or
    for a fine-tuned pretrained network scaled and centre-cropped as it was evaluated.

    Images that cannot be read, files that are not regular files (a folder, a FIFO that would block),
    and images of more than MAX_IMAGE_PIXELS pixels raise InputError.
    """
    try:
        with open_image(source, name) as image:
            if task == "fashion_mnist":
                return image_to_fashion_mnist(image)
            return frame_image(image, eval_framing(meta, int(meta["channels"]), *image_shape(meta)))
    except DataError as error:
        raise InputError(str(error)) from error


def image_inputs(arrays: Sequence[np.ndarray], meta: dict[str, Any]) -> torch.Tensor:
    """A normalised (N, C, H, W) float batch from uint8 arrays ((H, W): one channel)."""
    pixels = torch.from_numpy(np.stack(arrays))
    return normalise(pixels.unsqueeze(1) if pixels.dim() == 3 else pixels, per_channel(meta["mean"]),
                     per_channel(meta["std"]))


def probe_inputs(checkpoint: dict[str, Any]) -> Any:
    """The most demanding input a checkpoint's meta allows: for text, one question of max_length
    copies of the tokenizer's last token; for images, one blank image."""
    meta = checkpoint["meta"]
    if kind_of(checkpoint["task"]) == "text":
        max_length = meta.get("max_length", 64)
        last_token = tokenizer_from_meta(meta).vocab_size - 1
        return torch.full((1, max_length), last_token, dtype=torch.long), torch.tensor([max_length])
    height, width = image_shape(meta)
    return image_inputs([np.zeros((int(meta.get("channels", 1)), height, width), dtype=np.uint8)], meta)


def decode_text(raw: bytes) -> str:
    """Text from bytes: UTF-8, or Latin-1 (which never fails: every byte is a character) where it is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def plain_text(text: str) -> str:
    """`text` as the tokenizers can read it: a command-line argument that was not UTF-8 (held by Python
    as surrogate escapes) is decoded as decode_text does."""
    return decode_text(text.encode("utf-8", "surrogateescape"))


def question_inputs(questions: Sequence[str], meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and lengths of questions, encoded with the checkpoint's tokenizer and cut to the
    length the model was trained with."""
    tokenizer = tokenizer_from_meta(meta)
    max_length = meta.get("max_length", 64)
    encoded = []
    for question in questions:
        if not question.split():
            raise InputError("empty question: give some words to classify")
        encoded.append(tokenizer.encode(plain_text(question), max_length)[0])
    return pad_sequences(encoded, tokenizer.pad_id)
