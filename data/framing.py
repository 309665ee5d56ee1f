"""How images of any size become uint8 arrays of one shape: fitted whole (scratch models), or scaled
and centre-cropped as a pretrained network was evaluated (timm's and torchvision's eval transform)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from data import DataError
from data.images import image_array, open_image

DEFAULT_SIZE = 32  # the side of a scratch model's images when a folder's images differ in size
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Framing:
    """How an image becomes (channels, height, width): with `scale` 0 it is fitted whole, centred on
    black; else its shorter side is scaled to `scale` pixels (`interpolation`) and the centre
    height x width cut out."""

    channels: int
    height: int
    width: int
    scale: int = 0
    interpolation: str = "bicubic"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width)."""
        return self.channels, self.height, self.width


def scale_size(image_size: int, crop_pct: float) -> int:
    """The side a pretrained network's evaluation scales an image's shorter side to before cutting
    its centre `image_size` (timm: floor(image_size / crop_pct))."""
    return int(image_size / crop_pct)


def eval_framing(meta: dict[str, Any], channels: int, height: int, width: int) -> Framing:
    """How a model whose checkpoint (or pretrained configuration) `meta` reads images at evaluation:
    scaled and centre-cropped when it gives a crop_pct, else fitted whole."""
    if "crop_pct" not in meta:
        return Framing(channels, height, width)
    return Framing(channels, height, width, scale_size(height, meta["crop_pct"]), meta.get("interpolation", "bicubic"))


def choose_shape(found: list[tuple[bool, tuple[int, int]]], channels: int, image_size: int) -> tuple[int, int, int]:
    """(channels, height, width) of images `found` as (gray, (width, height)): the flags' when given (0:
    automatic), else 1 channel when every image is gray (3 otherwise), and the images' own size when
    they all share it (else DEFAULT_SIZE)."""
    channels = channels or (1 if all(gray for gray, _ in found) else 3)
    if image_size:
        return channels, image_size, image_size
    sizes = {size for _, size in found}
    width, height = sizes.pop() if len(sizes) == 1 else (DEFAULT_SIZE, DEFAULT_SIZE)
    return channels, height, width


def framings_of(shape: tuple[int, int, int], meta: dict[str, Any] | None) -> tuple[Framing, Framing]:
    """How the training and the evaluation images of `shape` are framed: both fitted whole, or, for a
    network that was pretrained with a centre crop (`meta` gives crop_pct), evaluation images scaled
    and centre-cropped as it was evaluated, and training images kept whole at the scaled side, for
    random crops."""
    evaluation = eval_framing(meta or {}, *shape)
    if not evaluation.scale:
        return evaluation, evaluation
    side = evaluation.scale
    return Framing(shape[0], side, side, side, evaluation.interpolation), evaluation


def fit_image(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (C, H, W) uint8 array resized to fit `height` x `width` whole (its aspect kept), centred on black."""
    channels, old_height, old_width = array.shape
    if (old_height, old_width) == (height, width):
        return array
    scale = min(height / old_height, width / old_width)
    size = (max(1, round(old_width * scale)), max(1, round(old_height * scale)))
    planes = [np.asarray(Image.fromarray(plane).resize(size, Image.Resampling.LANCZOS)) for plane in array]
    canvas = np.zeros((channels, height, width), dtype=np.uint8)
    top, left = (height - size[1]) // 2, (width - size[0]) // 2
    canvas[:, top:top + size[1], left:left + size[0]] = np.stack(planes)
    return canvas


def crop_image(array: np.ndarray, scale: int, height: int, width: int, interpolation: str = "bicubic") -> np.ndarray:
    """A (C, H, W) uint8 array with its shorter side scaled to `scale` (the longer one in proportion,
    rounded down) and its centre `height` x `width` cut out: torchvision's Resize(scale) then
    CenterCrop((height, width)), as timm evaluates."""
    _, old_height, old_width = array.shape
    short, long = sorted((old_height, old_width))
    new_long = int(scale * long / short)
    size = (scale, new_long) if old_width <= old_height else (new_long, scale)  # (width, height)
    if size != (old_width, old_height):
        array = np.stack([np.asarray(Image.fromarray(plane).resize(size, INTERPOLATIONS[interpolation]))
                          for plane in array])
    top, left = int(round((size[1] - height) / 2.0)), int(round((size[0] - width) / 2.0))
    if top < 0 or left < 0:
        raise ValueError(f"an image scaled to {size[0]}x{size[1]} is smaller than the {width}x{height} crop")
    return np.ascontiguousarray(array[:, top:top + height, left:left + width])


def frame_image(image: Image.Image, framing: Framing) -> np.ndarray:
    """Any image as a (C, H, W) uint8 array framed as `framing` says."""
    array = image_array(image, framing.channels)
    if framing.scale:
        return crop_image(array, framing.scale, framing.height, framing.width, framing.interpolation)
    return fit_image(array, framing.height, framing.width)


def decode_images(paths: Sequence[str], framing: Framing, skip_bad_files: bool,
                  progress: Callable[[Sequence[str]], Sequence[str]] = lambda items: items
                  ) -> tuple[np.ndarray, list[int], list[str]]:
    """Every image as one (N, C, H, W) uint8 array framed as `framing` says, the indices of the files
    kept and the files skipped as unreadable (only with `skip_bad_files`; else the first one is a
    DataError). `progress` wraps the iteration (a progress bar)."""
    arrays, kept, skipped = [], [], []
    for position, path in enumerate(progress(paths)):
        try:
            with open_image(path) as image:
                arrays.append(frame_image(image, framing))
        except DataError:
            if not skip_bad_files:
                raise
            skipped.append(path)
            continue
        kept.append(position)
    stacked = np.stack(arrays) if arrays else np.zeros((0, *framing.shape), dtype=np.uint8)
    return stacked, kept, skipped
