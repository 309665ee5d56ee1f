"""A user's images as a DataBundle: a folder of class folders (the files found, channels and size decided,
every image decoded by the `decode` the caller gives, e.g. through a disk cache) or a Hugging Face
dataset with an image column; then split and normalised. Plain values in (ImageSource: where the images
are and how to read them); what it found and did is in the bundle's notes."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch

from data import DataError
from data.builders import image_bundle
from data.bundle import Batching, DataBundle, ImageSpec
from data.disk_images import DiskImages, in_memory, size_in_bytes
from data.examples import (Examples, Holdout, LabelledData, data_fingerprint, labelled, split, summary,
                           with_test_set)
from data.framing import Framing, choose_shape, frame_image, framings_of
from data.hf_datasets import find_columns, load_splits
from data.locations import HUB, LOCAL, location
from data.images import find_image_folder, image_shape, is_gray_image, scan_images, split_layout

# decode(files as (path, label), their content hashes, framing, skip bad files)
#   -> (uint8 images, in memory or on disk; labels; content hashes of the files kept)
Decode = Callable[[list[tuple[str, int]], list[str], Framing, bool],
                  tuple[torch.Tensor | DiskImages, torch.Tensor, list[str]]]


@dataclass(frozen=True)
class ImageSource:
    """A user's images: the data set (a folder of class folders, a save_to_disk folder or a hub id) and
    an optional separate test set; the channels (0: 1 when every image is gray, else 3) and side
    (0: the images' own size when they share it, else DEFAULT_SIZE) they become; the most memory
    their pixels may take; and whether unreadable files are left out."""

    dataset: str
    test_dataset: str = ""
    channels: int = 0
    image_size: int = 0
    max_image_memory_gb: float = 8.0
    skip_bad_files: bool = False


STATISTICS_CHUNK = 4096  # images summed at a time: no float copy of the whole split


def channel_statistics(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) std of uint8 (N, C, H, W) images scaled to [0, 1], rounded to 4
    digits; exact sums in float64, a chunk of images at a time."""
    sums = torch.zeros(images.size(1), dtype=torch.float64)
    squares = torch.zeros_like(sums)
    for start in range(0, len(images), STATISTICS_CHUNK):
        chunk = images[start:start + STATISTICS_CHUNK].double()
        sums += chunk.sum((0, 2, 3))
        squares += chunk.square().sum((0, 2, 3))
    count = len(images) * images.size(2) * images.size(3)
    mean = sums / count
    variance = (squares - count * mean.square()) / max(count - 1, 1)
    return ([round(v / 255.0, 4) for v in mean.tolist()],
            [round(max(v ** 0.5 / 255.0, 1e-3), 4) for v in variance.clamp(min=0).tolist()])


def read_images(source: ImageSource, decode: Decode, meta: dict[str, Any] | None
                ) -> tuple[LabelledData, tuple[int, int, int]]:
    """The images of `source` (and of its separate test set) decoded, and their (C, H, W) shape; `meta`
    (a checkpoint's) fixes channels and size."""
    read = read_hub_images if is_hub_dataset(source.dataset) else read_folder_images
    data, shape = read(source, source.dataset, meta, decode)

    def read_test(spec: str) -> LabelledData:  # at the training images' shape, framed for evaluation
        read = read_hub_images if is_hub_dataset(spec) else read_folder_images
        return read(source, spec, {**(meta or {}), **shape_meta(shape)}, decode, for_test=True)[0]
    return with_test_set(data, source.test_dataset, read_test), shape


def image_folder_bundle(source: ImageSource, holdout: Holdout, batching: Batching, spec: ImageSpec, decode: Decode,
                        meta: dict[str, Any] | None = None) -> DataBundle:
    """The images of `source` as batches, split as `holdout` says, augmented as `spec` says and normalised
    by the training split's statistics; `meta` (a checkpoint's) fixes channels, size and normalisation."""
    data, shape = read_images(source, decode, meta)
    fingerprint = data_fingerprint(data)
    splits = split(data, holdout, "images")
    train, class_names = splits["train"], data.class_names
    missing = sorted(set(range(len(class_names))) - set(train.labels.tolist()))
    if missing or not len(splits["val"]) or not len(splits["test"]):
        raise DataError(f"--dataset {source.dataset}: too few images to train, validate and test on every class "
                        f"({len(train)} for training; classes without any: "
                        f"{', '.join(class_names[i] for i in missing) or 'none'})")
    mean, std = (meta["mean"], meta["std"]) if meta else channel_statistics(train.inputs)
    data.notes.append(summary(source.dataset, class_names, splits, "images", f" of {shape[0]}x{shape[1]}x{shape[2]}"))
    placed(splits, source.max_image_memory_gb, data.notes)
    cropping = {key: meta[key] for key in ("crop_pct", "interpolation") if key in (meta or {})}
    bundle = image_bundle("image", splits, class_names, batching,
                          replace(spec, mean=mean, std=std, input_size=shape[1] if cropping else 0),
                          {"in_channels": shape[0], "image_size": shape_meta(shape)["image_size"]},
                          {**shape_meta(shape), **cropping, "dataset": source.dataset, "data_sha256": fingerprint})
    bundle.notes = data.notes
    return bundle


def shape_meta(shape: tuple[int, int, int]) -> dict[str, Any]:
    """The channels and image size a checkpoint records for images of (C, H, W) `shape`."""
    return {"channels": shape[0], "image_size": shape[1] if shape[1] == shape[2] else [shape[1], shape[2]]}


def shape_decided(meta: dict[str, Any] | None, source: ImageSource) -> bool:
    """Whether the images' shape is known without their headers: a checkpoint's, or both set by the source."""
    return bool(meta and "channels" in meta) or bool(source.channels and source.image_size)


def shape_of(meta: dict[str, Any] | None, source: ImageSource, found: list[tuple[bool, tuple[int, int]]]
             ) -> tuple[int, int, int]:
    """(C, H, W): a checkpoint's, else chosen from the source's and the image headers `found` (choose_shape)."""
    if meta and "channels" in meta:
        return int(meta["channels"]), *image_shape(meta)
    return choose_shape(found, source.channels, source.image_size)


def check_memory(source: ImageSource, spec: str, count: int, shape: tuple[int, int, int]) -> None:
    """Raise DataError when `count` images of `shape` exceed --max-image-memory-gb (a Hugging Face
    dataset's images are decoded into memory)."""
    needed = count * int(np.prod(shape))
    if needed > source.max_image_memory_gb * 2 ** 30:
        raise DataError(f"--dataset {spec}: {count:,} images of {shape[0]}x{shape[1]}x{shape[2]} need "
                        f"{needed / 2 ** 30:.1f} GiB, more than --max-image-memory-gb {source.max_image_memory_gb:g}:"
                        " give a smaller --image-size (or --channels 1), write them as an image folder, or raise it")


def read_folder_images(source: ImageSource, spec: str, meta: dict[str, Any] | None, decode: Decode,
                       for_test: bool = False) -> tuple[LabelledData, tuple[int, int, int]]:
    """The decoded splits of a folder of class folders (with their files' hashes) and the images' shape;
    `for_test`: every split is framed for evaluation."""
    splits, class_names = find_image_folder(spec)
    layout = split_layout(spec)
    note = f"note: {spec}: " + (", ".join(f"{name}/ as the {split} split" for split, name in layout.items())
                                if layout else "class folders, no split folders (train/, val/, test/)")
    paths = [path for files in splits.values() for path, _ in files]
    digests, found = scan_images(paths, headers=not shape_decided(meta, source))  # each file read once
    shape = shape_of(meta, source, found)
    training, evaluation = framings_of(shape, meta)
    digest_of = dict(zip(paths, digests))
    framing = {split: training if split == "train" and not for_test else evaluation for split in splits}
    decoded = {split: Examples(*decode(files, [digest_of[path] for path, _ in files], framing[split],
                                       source.skip_bad_files)) for split, files in splits.items()}
    return LabelledData(decoded, class_names, [note]), shape


def is_hub_dataset(spec: str) -> bool:
    """Whether --dataset names a Hugging Face dataset (a hub id, or a folder written by save_to_disk)
    rather than a folder of images (data.locations decides local or hub)."""
    saved = ("dataset_dict.json", "dataset_info.json", "state.json")
    if location(spec) != LOCAL:
        return location(spec) == HUB
    return any(os.path.isfile(os.path.join(spec, name)) for name in saved)


def read_hub_images(source: ImageSource, spec: str, meta: dict[str, Any] | None, decode: Decode,
                    for_test: bool = False) -> tuple[LabelledData, tuple[int, int, int]]:
    """The decoded splits of a Hugging Face dataset with an image column and the images' shape (`decode`,
    for files, is unused); `for_test`: every split is framed for evaluation."""
    splits = load_splits(spec, "")
    image_column, label_column, names = find_columns(splits["train"], spec, "image", "", "")
    labels = {name: part[label_column] for name, part in splits.items()}
    if meta and "channels" in meta:
        shape = shape_of(meta, source, [])
    else:  # decided on the first thousand training images
        sample = splits["train"].select(range(min(1000, len(splits["train"]))))[image_column]
        shape = choose_shape([(is_gray_image(image), image.size) for image in sample if image is not None],
                             source.channels, source.image_size)
    check_memory(source, spec, sum(len(part) for part in splits.values()), shape)
    found, notes, (training, evaluation) = {}, [], framings_of(shape, meta)
    for name, part in splits.items():
        kept = [i for i, label in enumerate(labels[name]) if label is not None and not (names and label < 0)]
        if len(kept) < len(part):
            notes.append(f"note: skipped {len(part) - len(kept)} unlabelled {name} image(s) of {spec}")
        images = part.select(kept)[image_column]
        present = [(image, i) for image, i in zip(images, kept) if image is not None]
        if len(present) < len(kept):
            notes.append(f"note: skipped {len(kept) - len(present)} {name} example(s) of {spec} without an image")
        framing = training if name == "train" and not for_test else evaluation
        arrays = [frame_image(image, framing) for image, _ in present]
        found[name] = (torch.from_numpy(np.stack(arrays)),
                       [names[labels[name][i]] if names else str(labels[name][i]) for _, i in present])
    return labelled(f"--dataset {spec}", found, names, notes), shape


def placed(splits: dict[str, Examples], budget_gb: float, notes: list[str]) -> None:
    """The splits' images read into memory when they fit in `budget_gb` GiB together, else left on
    disk (memory-mapped, with a note)."""
    total = sum(size_in_bytes(part.inputs) for part in splits.values())
    if total > budget_gb * 2 ** 30:
        notes.append(f"note: the {total / 2 ** 30:.1f} GiB of decoded images are read from the memory-mapped "
                     f"cache on disk (more than --max-image-memory-gb {budget_gb:g})")
        return
    for part in splits.values():
        part.inputs = in_memory(part.inputs)
