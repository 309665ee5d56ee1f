"""The teacher's outputs as tables kept on disk: one row per training example (fixed inputs) or one
cell per view of each image (crops and flips). Each table is named by a key, a hash of all that
decides it (the teacher's weights, architecture and preprocessing, the examples, the views and the
arithmetic), so another run with the same teacher and examples, or a resumed run, reads it instead
of asking the teacher again. The file holds its key and a checksum of its values: a table that is
damaged, altered, of another shape or dtype, or not finite is noted and computed again."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from data.augment import mirror_view
from data.image_batches import ImageBatches
from utils.messages import MESSAGES, progress_bar
from utils.errors import WriteError
from utils.runtime import Runtime, all_reduce_sum, autocast
from utils.storage.files import atomic_write, cache_dir, remove_stale_temp_files
from utils.train.evaluation import evaluate

CACHE_DIR_ENV = "TEACHER_CACHE_DIR"


def hash_tensor(digest: Any, tensor: torch.Tensor, prefix: str = "") -> None:
    """Add `prefix`, the tensor's dtype and shape, and its values to the hashlib `digest`."""
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{prefix}{tensor.dtype}:{tuple(tensor.shape)};".encode())
    digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """A hash of a state dict's names, dtypes, shapes and values (identifies a teacher's weights)."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        hash_tensor(digest, tensor, f"{name}:")
    return digest.hexdigest()


def teacher_sha256(checkpoint: dict[str, Any], weights_digest: str) -> str:
    """A hash of all in a teacher checkpoint that decides its outputs: its weights (their
    `weights_digest`, see weights_sha256), architecture and its arguments (e.g. pooling), and how it
    reads its inputs (normalisation, tokenizer, max length)."""
    described = json.dumps([checkpoint.get("model_name"), checkpoint.get("model_kwargs"), checkpoint.get("meta")],
                           sort_keys=True, default=str)
    return hashlib.sha256(f"{weights_digest}:{described}".encode()).hexdigest()


def averages_flips(teacher: nn.Module) -> bool:
    """Whether the teacher evaluates each image as the mean of it and its mirror image (a ResNet with --tta)."""
    return bool(getattr(teacher, "flip_average", False))


@torch.inference_mode()
def teacher_view_table(teacher: nn.Module, batches: ImageBatches, runtime: Runtime,
                       batch_size: int, progress: bool = False) -> torch.Tensor:
    """The teacher's float32 logits for every view (see ImageBatches.view_count) of every image
    of `batches`' split: (N, V, C), on the CPU. A flip-averaging teacher's output for a view is the
    mean of its plain outputs for that view and for its mirror image, which is another view: each
    plain output is computed once. Several processes split the views among them and share their
    columns, so each view is classified by one process only."""
    mirrored = averages_flips(teacher)
    if mirrored:
        teacher.flip_average = False
    try:
        columns = {}
        for view in progress_bar(range(runtime.rank, batches.view_count, runtime.world_size), what="teacher views",
                                 unit="view", shown=progress):
            with autocast(runtime):
                logits = [teacher(inputs).float() for inputs in batches.view_batches(view, batch_size)]
            columns[view] = torch.cat(logits).cpu()
    finally:
        if mirrored:
            teacher.flip_average = True
    table = torch.stack(columns_of_every_process(columns, runtime), dim=1)
    if mirrored:
        mirrors = [mirror_view(view, batches.crop_padding) for view in range(batches.view_count)]
        table = (table + table[:, mirrors]) / 2
    return table


def columns_of_every_process(columns: dict[int, torch.Tensor], runtime: Runtime) -> list[torch.Tensor]:
    """The columns (view -> CPU tensor) that all processes computed, in view order."""
    if runtime.distributed:
        gathered: list = [None] * runtime.world_size
        dist.all_gather_object(gathered, columns)
        columns = {view: column for part in gathered for view, column in part.items()}
    return [columns[view] for view in sorted(columns)]


def teacher_cache_dir() -> str:
    """Where the teacher's tables are kept: $TEACHER_CACHE_DIR, else the user's cache folder."""
    return cache_dir(CACHE_DIR_ENV, "teacher-views")


def view_table_key(teacher_digest: str, batches: ImageBatches, runtime: Runtime, flip_average: bool) -> str:
    """A name for a view table: a hash of all that decides it (teacher, images, views, arithmetic)."""
    digest = hashlib.sha256(f"views:{teacher_digest}".encode())
    digest.update(batches.images.detach().cpu().contiguous().numpy().tobytes())
    digest.update(f"{batches.crop_padding}:{batches.mean}:{batches.std}:{flip_average}:"
                  f"{runtime.device.type}:{runtime.precision}".encode())
    return digest.hexdigest()[:32]


def example_table_key(teacher_digest: str, batches: Any, runtime: Runtime) -> str:
    """A name for the teacher's table of one row per training example: a hash of the teacher, every
    input tensor its own pipeline serves (in order, with that order) and the arithmetic."""
    digest = hashlib.sha256(f"examples:{teacher_digest}:{runtime.device.type}:{runtime.precision}".encode())
    digest.update(batches.example_order().cpu().numpy().tobytes())
    for inputs, _ in batches:
        for tensor in inputs if isinstance(inputs, (tuple, list)) else (inputs,):
            hash_tensor(digest, tensor)
    return digest.hexdigest()[:32]


def table_sha256(table: torch.Tensor) -> str:
    """The checksum kept beside a table: a hash of its dtype, shape and values."""
    digest = hashlib.sha256()
    hash_tensor(digest, table)
    return digest.hexdigest()


def read_table(path: str, key: str, shape: tuple[int, ...]) -> tuple[torch.Tensor | None, str]:
    """The table kept at `path` and why it cannot be used ('' when it can): it must hold `key`, a float32
    tensor of `shape` with finite values, and the checksum of those values."""
    if not os.path.exists(path):
        return None, ""
    try:
        kept = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # any damage to the file: computed again
        return None, "it cannot be read"
    table = kept.get("table") if isinstance(kept, dict) else None
    if not isinstance(table, torch.Tensor) or kept.get("key") != key:
        return None, "it is not a table of this repository's cache"
    if table.dtype != torch.float32 or tuple(table.shape) != shape:
        return None, f"it holds a {table.dtype} table of shape {tuple(table.shape)}, not float32 {shape}"
    if kept.get("sha256") != table_sha256(table):
        return None, "its values do not match their checksum"
    if not torch.isfinite(table).all():
        return None, "it holds values that are not finite"
    return table, ""


def load_or_make_table(key: str, shape: tuple[int, ...], make: Callable[[], torch.Tensor], runtime: Runtime,
                       read_words: str, make_words: str) -> torch.Tensor:
    """The teacher's table `key` of `shape` from the disk cache when every process can use it, else
    `make()` (then saved by the main process). `read_words` and `make_words` tell the user which it was."""
    folder = teacher_cache_dir()
    path = os.path.join(folder, f"{key}.pt")
    table, unusable = read_table(path, key, shape)
    if all_reduce_sum([float(table is not None)], runtime)[0] == runtime.world_size:  # every process has it
        MESSAGES.info(f"teacher: {read_words} read from {path}")
        return table
    if unusable:
        MESSAGES.info(f"note: the teacher's kept outputs {path} are not used ({unusable}): computing them again")
    MESSAGES.info(f"teacher: {make_words} (kept in {folder} for later runs)")
    start = time.perf_counter()
    table = make()
    MESSAGES.info(f"teacher: done in {time.perf_counter() - start:.0f} s")
    if runtime.is_main:
        try:
            remove_stale_temp_files(folder)
            kept = {"key": key, "table": table, "sha256": table_sha256(table)}
            atomic_write(path, lambda tmp: torch.save(kept, tmp))
        except WriteError as error:
            MESSAGES.info(f"note: the teacher's outputs are not kept for later runs: {error}")
    return table


def load_or_make_view_table(teacher: nn.Module, batches: ImageBatches, runtime: Runtime, batch_size: int,
                            teacher_digest: str, num_classes: int, progress: bool) -> torch.Tensor:
    """The teacher's view table (see teacher_view_table), from the disk cache or computed."""
    images, views = len(batches.labels), batches.view_count
    shared = f", split among {runtime.world_size} processes" if runtime.distributed else ""
    def classify_views() -> torch.Tensor:
        return teacher_view_table(teacher, batches, runtime, batch_size, progress)

    return load_or_make_table(view_table_key(teacher_digest, batches, runtime, averages_flips(teacher)),
                              (images, views, num_classes), classify_views, runtime,
                              f"its outputs for the {views} views of each image",
                              f"classifying {views} views of each of {images:,} training images once{shared}")


def load_or_make_example_table(teacher: nn.Module, batches: Any, runtime: Runtime, teacher_digest: str,
                               num_classes: int) -> torch.Tensor:
    """The teacher's float32 logits of every example of `batches` (its own pipeline's view of the
    training split), in the split's order, from the disk cache or computed. Every process computes
    all of them (`runtime` has one process), but all must agree on reading the cache."""
    alone = dataclasses.replace(runtime, rank=0, world_size=1)
    examples = len(batches.labels)

    def classify_all() -> torch.Tensor:
        return evaluate(teacher, batches, alone, collect=True)["logits"].cpu().clone()

    return load_or_make_table(example_table_key(teacher_digest, batches, runtime), (examples, num_classes),
                              classify_all, runtime, f"its outputs for the {examples:,} training examples",
                              f"classifying each of {examples:,} training examples once")
