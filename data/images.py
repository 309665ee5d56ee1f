"""Images of any file format, mode and size as uint8 (C, H, W) arrays, and image folders in the
class-folder layout (`DIR/train/<class>/*`, optional `DIR/val/...` and `DIR/test/...`, or `DIR/<class>/*`)."""
from __future__ import annotations

import hashlib
import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from data import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GRAY_MODES = {"1", "L", "LA", "I", "F"}  # and every "I;16..." mode
# the split folders people make, in any case: fastai's valid/, Hugging Face's validation/, dev/ ...
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
NOT_DATA = {"__MACOSX", "Thumbs.db", "desktop.ini"}  # what archivers and file browsers leave beside the images
ORIENTATION = 0x0112  # the EXIF tag saying how the camera was held
MAX_IMAGE_PIXELS = 40_000_000  # a 6000x6000 photo; a larger file is refused before it is decoded


def is_gray(mode: str) -> bool:
    """Whether images of a Pillow mode have one channel of content."""
    return mode in GRAY_MODES or mode.startswith("I;16")


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


def image_array(image: Image.Image, channels: int) -> np.ndarray:
    """A (channels, H, W) uint8 array of any image: 1 channel of luminance, or 3 of RGB (a gray image
    repeated; transparency dropped)."""
    if channels == 1 or is_gray(image.mode):
        gray = np.rint(grayscale_0_255(image)).clip(0, 255).astype(np.uint8)
        return np.repeat(gray[None], channels, axis=0)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)


def image_shape(meta: dict) -> tuple[int, int]:
    """(height, width) of the images a checkpoint's or data set's `meta` describes (image_size: a side,
    or [height, width]; 28 when absent)."""
    size = meta.get("image_size", 28)
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def is_gray_image(image: Image.Image) -> bool:
    """Whether an image has one channel of content: a gray mode, or a palette of grays only."""
    palette = image.getpalette() if image.mode == "P" else None
    return is_gray(image.mode) or bool(palette) and palette[0::3] == palette[1::3] == palette[2::3]


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is no data: hidden (.thumbnails, ._photo.jpg) or NOT_DATA."""
    return name.startswith(".") or name in NOT_DATA


def image_files(folder: str) -> list[str]:
    """The image files (by IMAGE_SUFFIXES) in `folder` and its subfolders, sorted: regular files only
    (a named pipe would block), hidden files and folders left out."""
    found = []
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if not is_hidden(name)]
        found += [os.path.join(root, name) for name in names if name.lower().endswith(IMAGE_SUFFIXES)
                  and not is_hidden(name) and os.path.isfile(os.path.join(root, name))]
    return sorted(found)


def open_image(source: str | bytes, name: str = "") -> Image.Image:
    """The image in the file `source` (or in the bytes `source`, called `name` in messages), fully
    decoded; DataError naming it when it is not a readable image (truncated, another format, larger
    than MAX_IMAGE_PIXELS, not a regular file)."""
    name = name or (source if isinstance(source, str) else "the upload")
    if isinstance(source, str) and not os.path.isfile(source):
        raise DataError(f"cannot read image {name!r}: not a regular file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is below
            image = Image.open(source if isinstance(source, str) else io.BytesIO(source))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(f"image {name!r} is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                                "pixels this project reads: scale it down first")
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # a phone photo stands as it was taken
            return image
    except DataError:
        raise
    except Image.DecompressionBombError as error:
        raise DataError(f"image {name!r} has more than the {MAX_IMAGE_PIXELS:,} pixels this project reads "
                        "(Pillow refuses it as a possible decompression bomb): scale it down first") from error
    except UnidentifiedImageError as error:  # its message names a Python object, not the file
        raise DataError(f"cannot read image {name!r}: not an image file Pillow can read (PNG, JPEG, GIF, BMP, "
                        "TIFF, WebP, ...)") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # Pillow's decoders raise all of these
        message = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"cannot read image {name!r}: {message[:200]}") from error


def class_files(folder: str) -> dict[str, list[str]]:
    """The image files of each class folder of `folder`: class name -> sorted paths."""
    classes = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not is_hidden(name):
            classes[name] = image_files(path)
    return classes


def split_layout(root: str) -> dict[str, str]:
    """The split folders of `root` when it has a training one: split ("train", "val", "test") -> folder
    name ({} for a folder of class folders). Two folders of one split are a DataError."""
    layout: dict[str, str] = {}
    for name in sorted(os.listdir(root)):
        split = SPLIT_FOLDERS.get(name.lower())
        if split and os.path.isdir(os.path.join(root, name)):
            if split in layout:
                raise DataError(f"--dataset {root}: both {layout[split]}/ and {name}/ look like the {split} split; "
                                "keep one")
            layout[split] = name
    return {split: layout[split] for split in ("train", "val", "test") if split in layout} if "train" in layout else {}


def find_image_folder(root: str) -> tuple[dict[str, list[tuple[str, int]]], list[str]]:
    """The labelled image files of each split ("train", and "val"/"test" where the folder has them) of
    an image folder, and the class names (the training split's folder names, sorted)."""
    if not os.path.isdir(root):
        raise DataError(f"--dataset {root}: no such folder")
    layout = split_layout(root)
    splits = ({split: class_files(os.path.join(root, name)) for split, name in layout.items()} if layout
              else {"train": class_files(root)})
    class_names = [name for name, files in splits["train"].items() if files]
    if not class_names:
        raise DataError(f"--dataset {root}: no images in class folders (expected {root}/<class>/*.png, or "
                        f"{root}/train/<class>/*; formats: {', '.join(IMAGE_SUFFIXES)})")
    if len(class_names) < 2:
        raise DataError(f"--dataset {root}: only one class ({class_names[0]!r}); a classifier needs two or more")
    index = {name: i for i, name in enumerate(class_names)}
    labelled = {}
    for split, classes in splits.items():
        unknown = sorted(name for name, files in classes.items() if files and name not in index)
        if unknown:
            raise DataError(f"--dataset {root}: the {split} split has classes the training split lacks: "
                            f"{', '.join(unknown[:5])}")
        labelled[split] = [(path, index[name]) for name, files in classes.items() if name in index for path in files]
    return {split: files for split, files in labelled.items() if files}, class_names


def image_header(content: bytes) -> tuple[bool, tuple[int, int]] | None:
    """Whether the image file `content` is gray, and its (width, height) as it stands (EXIF orientation
    applied), from its header (and palette) only; None for an unreadable one (left to decoding)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content)) as image:
                width, height = image.size
                turned = image.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)  # stands rotated a quarter turn
                return is_gray_image(image), (height, width) if turned else (width, height)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def scan_images(paths: list[str], headers: bool = True) -> tuple[list[str], list[tuple[bool, tuple[int, int]]]]:
    """One read of each file: a hash of its bytes (BLAKE2b: an image edited in place is another image
    whatever its modification time says) and, with `headers`, the image_header of each readable one."""
    digests, found = [], []
    for path in paths:
        with open(path, "rb") as file:
            content = file.read()
        digests.append(hashlib.blake2b(content, digest_size=16).hexdigest())
        header = image_header(content) if headers else None
        if header is not None:
            found.append(header)
    return digests, found
