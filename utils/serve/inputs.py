"""Raw inputs turned into model inputs as a checkpoint's `meta` says: image files drawn as FashionMNIST
images, questions encoded with the checkpoint's tokenizer."""
from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from data.text import pad_sequences
from data.tokenization import tokenizer_from_meta
from utils.errors import InputError, one_line

MAX_IMAGE_PIXELS = 40_000_000  # a 6000x6000 photo; a larger file is refused before it is decoded


def image_to_fashion_mnist(image: Image.Image, size: int = 28) -> np.ndarray:
    """A (size, size) uint8 array drawn like FashionMNIST: light object on black, fitted and centred.

    Photos usually show a dark object on a light background, so the image is inverted when its
    border is brighter than its middle.
    """
    gray = grayscale_0_255(image)
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


def grayscale_0_255(image: Image.Image) -> np.ndarray:
    """The image's luminance as float32 in [0, 255], whatever its bit depth.

    8-bit modes convert directly; 16- and 32-bit integer and float images (e.g. 16-bit PNGs) are
    scaled by the range of their type instead of being clipped at 255.
    """
    if image.mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) * (255.0 / 65535.0)
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        if image.mode == "F" and low >= 0.0 and high <= 1.0:
            return (values * 255.0).astype(np.float32)
        if low >= 0 and high <= 255:
            return values.astype(np.float32)
        if low >= 0 and high <= 65535:  # how Pillow opens many 16-bit files
            return (values * (255.0 / 65535.0)).astype(np.float32)
        return ((values - low) * (255.0 / max(high - low, 1e-12))).astype(np.float32)
    return np.asarray(image.convert("L"), dtype=np.float32)


def read_image(path: str) -> np.ndarray:
    """An image file (PNG, JPEG, ... any size, colour and bit depth) as a FashionMNIST-like array.

    Files that cannot be read, that are not regular files (a folder, a FIFO that would block), and
    images of more than MAX_IMAGE_PIXELS pixels raise InputError.
    """
    if os.path.exists(path) and not os.path.isfile(path):
        raise InputError(f"cannot read image {path!r}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is below
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise InputError(f"image {path!r} is {width}x{height} pixels, more than the "
                                     f"{MAX_IMAGE_PIXELS:,} pixels this tool reads: scale it down first")
                return image_to_fashion_mnist(image)
    except InputError:
        raise
    except Image.DecompressionBombError as error:
        raise InputError(f"image {path!r} has more than the {MAX_IMAGE_PIXELS:,} pixels this tool reads "
                         "(Pillow refuses it as a possible decompression bomb): scale it down first") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # Pillow's decoders raise all of these
        raise InputError(f"cannot read image {path!r}: {one_line(error)[:200]}") from error


def image_inputs(arrays: Sequence[np.ndarray], meta: dict[str, Any]) -> torch.Tensor:
    """A normalised (N, 1, 28, 28) float batch from uint8 arrays."""
    pixels = torch.from_numpy(np.stack(arrays)).float().div(255.0)
    return ((pixels - meta["mean"]) / meta["std"]).unsqueeze(1)


def probe_inputs(checkpoint: dict[str, Any]) -> Any:
    """The most demanding input a checkpoint's meta allows: for text, one question of max_length
    copies of the tokenizer's last token; for images, one blank image."""
    meta = checkpoint["meta"]
    if checkpoint["task"] == "trec":
        max_length = meta.get("max_length", 64)
        last_token = tokenizer_from_meta(meta).vocab_size - 1
        return torch.full((1, max_length), last_token, dtype=torch.long), torch.tensor([max_length])
    return image_inputs([np.zeros((28, 28), dtype=np.uint8)], meta)


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
