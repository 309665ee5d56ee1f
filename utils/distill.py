"""Knowledge distillation: a trained teacher's outputs for each training batch of a student.

The engine's loss (utils.engine.distillation_loss) mixes the labels' cross-entropy with the
KL divergence from the teacher's softened outputs. This module loads the teacher, checks that it
fits the student, and serves `(inputs, targets, teacher_logits)` batches:

- images cut from a small set of views (crop and flip without erasing: 18 views of each image
  with a 1-pixel crop), when that costs the teacher fewer passes than the run's epochs: the
  teacher classifies every view of every training image once, and each batch looks up its
  examples' views (`views`).
  The table is kept on disk (`TEACHER_CACHE_DIR`), so other runs with the same teacher and
  training images, and a resumed run, reuse it;
- other inputs that change every epoch (random erasing): the teacher runs on exactly the
  student's batch, on the same device (`live`);
- fixed inputs (text, or images without augmentation): the teacher classifies every training
  example once, through its own data pipeline (so a Transformer teacher reads a question
  with its own subword tokenizer while an LSTM student reads words), and each batch looks its
  examples up (`cached`). This table is kept on disk too, so a resumed run, or another run over the
  same examples (the same seed's perturbed copies), skips the teacher. Measured on TREC with the
  MiniLM teacher: see the README.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from data.bundle import DataBundle
from data.image_batches import ImageBatches, mirror_view
from models import count_parameters
from utils.checkpoint import WriteError, atomic_write, load_checkpoint, model_from_checkpoint
from utils.config import ConfigError, TrainConfig, validation_split
from utils.engine import evaluate
from utils.inference import check_predictor_checkpoint
from utils.runtime import Runtime, all_reduce_sum, autocast


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


def load_teacher_checkpoint(path: str, config: TrainConfig, class_names: list[str]) -> dict[str, Any]:
    """The teacher checkpoint at `path`, checked against the student: same task and classes.

    Raises ConfigError (wrong task or classes) or CheckpointError (not a usable checkpoint)."""
    checkpoint = load_checkpoint(path)
    check_predictor_checkpoint(checkpoint, f"--teacher {path}")
    if checkpoint["task"] != config.task:
        raise ConfigError(f"--teacher {path} is a {checkpoint['task']} model: a {config.task} student "
                          f"needs a {config.task} teacher")
    if list(checkpoint["class_names"]) != list(class_names):
        raise ConfigError(f"--teacher {path} predicts {len(checkpoint['class_names'])} other classes than this "
                          f"run's {len(class_names)} (e.g. --labels fine against coarse)")
    return checkpoint


TeacherLogits = Callable[[torch.Tensor, torch.Tensor | None, Any], torch.Tensor]  # (indices, views, inputs)
CACHE_DIR_ENV = "TEACHER_CACHE_DIR"


class TeacherBatches:
    """A student's training batches with the teacher's logits: yields `(inputs, targets, teacher_logits)`.

    `teacher_logits(indices, views, inputs)` gives the logits for the batch's examples (their
    indices in the training split), their views (with `by_view`; else None) and inputs.
    Everything else (set_epoch, len, ...) is the wrapped batches'.
    """

    def __init__(self, batches: Any, teacher_logits: TeacherLogits, by_view: bool = False) -> None:
        self.batches = batches
        self.teacher_logits = teacher_logits
        self.by_view = by_view

    def __getattr__(self, name: str) -> Any:
        return getattr(self.batches, name)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor]]:
        if self.by_view:
            for indices, views, (inputs, targets) in self.batches.batches_with_views():
                yield inputs, targets, self.teacher_logits(indices, views, inputs)
        else:
            for indices, (inputs, targets) in self.batches.batches_with_indices():
                yield inputs, targets, self.teacher_logits(indices, None, inputs)


def live_teacher(teacher: nn.Module, runtime: Runtime) -> TeacherLogits:
    """Logits of `teacher` (eval mode, no gradient) on the student's own batch, in float32."""
    def logits(indices: torch.Tensor, views: torch.Tensor | None, inputs: Any) -> torch.Tensor:
        with torch.no_grad(), autocast(runtime):
            return teacher(inputs).float()
    return logits


def cached_teacher(table: torch.Tensor) -> TeacherLogits:
    """Rows of `table` for a batch: (N, C) logits of every training example, looked up by index,
    or (N, V, C) logits of every view of every example, looked up by index and view."""
    def logits(indices: torch.Tensor, views: torch.Tensor | None, inputs: Any) -> torch.Tensor:
        indices = indices.to(table.device)
        return table[indices] if views is None else table[indices, views.to(table.device)]
    return logits


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
        for view in tqdm(range(runtime.rank, batches.view_count, runtime.world_size), desc="teacher views",
                         unit="view", leave=False, dynamic_ncols=True, disable=not (progress and runtime.is_main)):
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
    default = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                           "cnn-rnn-dnn-classification", "teacher-views")
    return os.environ.get(CACHE_DIR_ENV) or default


def view_table_key(weights_digest: str, batches: ImageBatches, runtime: Runtime, flip_average: bool) -> str:
    """A name for a view table: a hash of all that decides it (teacher, images, views, arithmetic)."""
    digest = hashlib.sha256(weights_digest.encode())
    digest.update(batches.images.detach().cpu().contiguous().numpy().tobytes())
    digest.update(f"{batches.crop_padding}:{batches.mean}:{batches.std}:{flip_average}:"
                  f"{runtime.device.type}:{runtime.precision}".encode())
    return digest.hexdigest()[:32]


def example_table_key(weights_digest: str, batches: Any, runtime: Runtime) -> str:
    """A name for the teacher's table of one row per training example: a hash of the teacher, every
    input tensor its own pipeline serves (in order, with that order) and the arithmetic."""
    digest = hashlib.sha256(f"examples:{weights_digest}:{runtime.device.type}:{runtime.precision}".encode())
    digest.update(batches.example_order().cpu().numpy().tobytes())
    for inputs, _ in batches:
        for tensor in inputs if isinstance(inputs, (tuple, list)) else (inputs,):
            hash_tensor(digest, tensor)
    return digest.hexdigest()[:32]


def read_table(path: str, expected: tuple[int, ...]) -> torch.Tensor | None:
    """The table kept at `path` if it is there, readable and its leading dimensions are `expected`."""
    if not os.path.exists(path):
        return None
    try:
        table = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged cache file is computed again
        return None
    return table if isinstance(table, torch.Tensor) and tuple(table.shape[:len(expected)]) == expected else None


def load_or_make_table(key: str, expected: tuple[int, ...], make: Callable[[], torch.Tensor], runtime: Runtime,
                       say: Callable[[str], None], read_words: str, make_words: str) -> torch.Tensor:
    """The teacher's table `key` from the disk cache when every process can read it, else `make()`
    (then saved by the main process). `read_words` and `make_words` tell the user which it was."""
    path = os.path.join(teacher_cache_dir(), f"{key}.pt")
    table = read_table(path, expected)
    if all_reduce_sum([float(table is not None)], runtime)[0] == runtime.world_size:  # every process has it
        say(f"teacher: {read_words} read from {path}")
        return table
    say(f"teacher: {make_words} (kept in {teacher_cache_dir()} for later runs)")
    start = time.perf_counter()
    table = make()
    say(f"teacher: done in {time.perf_counter() - start:.0f} s")
    if runtime.is_main:
        try:
            atomic_write(path, lambda tmp: torch.save(table, tmp))
        except WriteError as error:
            say(f"note: the teacher's outputs are not kept for later runs: {error}")
    return table


def load_or_make_view_table(teacher: nn.Module, batches: ImageBatches, runtime: Runtime, batch_size: int,
                            weights_digest: str, say: Callable[[str], None], progress: bool) -> torch.Tensor:
    """The teacher's view table (see teacher_view_table), from the disk cache or computed."""
    images, views = len(batches.labels), batches.view_count
    shared = f", split among {runtime.world_size} processes" if runtime.distributed else ""
    return load_or_make_table(view_table_key(weights_digest, batches, runtime, averages_flips(teacher)),
                              (images, views), lambda: teacher_view_table(teacher, batches, runtime, batch_size,
                                                                          progress), runtime, say,
                              f"its outputs for the {views} views of each image",
                              f"classifying {views} views of each of {images:,} training images once{shared}")


def load_or_make_example_table(teacher: nn.Module, batches: Any, runtime: Runtime, weights_digest: str,
                               say: Callable[[str], None]) -> torch.Tensor:
    """The teacher's float32 logits of every example of `batches` (its own pipeline's view of the
    training split), in the split's order, from the disk cache or computed. Every process computes
    all of them (`runtime` has one process), but all must agree on reading the cache."""
    alone = dataclasses.replace(runtime, rank=0, world_size=1)
    examples = len(batches.labels)

    def classify_all() -> torch.Tensor:
        return evaluate(teacher, batches, alone, collect=True)["logits"].cpu().clone()

    return load_or_make_table(example_table_key(weights_digest, batches, runtime), (examples,), classify_all,
                              runtime, say, f"its outputs for the {examples:,} training examples",
                              f"classifying each of {examples:,} training examples once")


MODE_WORDS = {"live": "computed on each batch", "cached": "computed once",
              "views": "computed once for each view of each image"}
MAX_VIEW_TABLE_BYTES = 2 ** 30


def views_pay_off(batches: Any, teacher: nn.Module, epochs: int, num_classes: int) -> bool:
    """Whether classifying every view of every image once costs the teacher fewer passes than
    classifying each epoch's batches (a flip-averaging teacher makes two passes a batch), and the
    table of float32 logits fits in MAX_VIEW_TABLE_BYTES."""
    views = getattr(batches, "view_count", None)
    if not views:
        return False
    passes_a_batch = 2 if averages_flips(teacher) else 1
    table_bytes = len(batches.labels) * views * num_classes * 4
    return views < epochs * passes_a_batch and table_bytes <= MAX_VIEW_TABLE_BYTES


def attach_teacher(config: TrainConfig, data: DataBundle, runtime: Runtime, make_data: Callable[..., DataBundle],
                   recorded: dict[str, Any] | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Load --teacher, make `data.train` serve its logits (per view, live or cached, see above) and return the
    record the run folder keeps: path, weights hash, size, mode and the teacher's test accuracy.

    `recorded` is the record of the run being resumed: its teacher must be the same weights, and
    its test accuracy is not measured again."""
    checkpoint = load_teacher_checkpoint(config.teacher, config, data.class_names)
    teacher = model_from_checkpoint(checkpoint, runtime.device, config.teacher)
    digest = weights_sha256(checkpoint["model"])
    if recorded and recorded.get("weights_sha256") != digest:
        raise ConfigError(f"--teacher {config.teacher} holds other weights than the teacher this run began with "
                          f"({recorded.get('path')}): resume with that teacher, or start a new run")
    live = config.augments_inputs()
    if live and checkpoint.get("meta", {}) != data.meta:
        raise ConfigError(f"--teacher {config.teacher} reads its inputs otherwise than this student "
                          "(another normalisation), so it cannot see the augmented batches")
    if recorded:  # a resumed run goes on as it began (a run from before view tables had live teachers)
        by_view = recorded.get("mode") == "views"
    else:
        by_view = live and views_pay_off(data.train, teacher, config.epochs, len(data.class_names))
    mode = "views" if by_view else "live" if live else "cached"
    alone = dataclasses.replace(runtime, rank=0, world_size=1)  # every process sees all the teacher's data
    if not (live and recorded):  # the teacher's own data: for its cached logits, or its test accuracy
        seen_by_teacher = make_data(dataclasses.replace(config, batch_size=config.eval_batch_size), alone,
                                    checkpoint["meta"])
    if by_view:
        table = load_or_make_view_table(teacher, data.train, runtime, config.eval_batch_size, digest, say,
                                        config.progress)
        data.train = TeacherBatches(data.train, cached_teacher(table.to(runtime.device)), by_view=True)
    elif live:
        data.train = TeacherBatches(data.train, live_teacher(teacher, runtime))
    else:
        table = load_or_make_example_table(teacher, seen_by_teacher.train, runtime, digest, say)
        data.train = TeacherBatches(data.train, cached_teacher(table.to(runtime.device)))
    if recorded:
        return recorded
    test_acc = evaluate(teacher, seen_by_teacher.test, alone)["acc"]
    record = {"path": os.path.abspath(config.teacher), "weights_sha256": digest,
              "model_name": checkpoint["model_name"], "num_params": count_parameters(teacher),
              "test_acc": test_acc, "mode": mode,
              "distill_weight": config.distill_weight, "temperature": config.temperature,
              "distill_loss": config.distill_loss}
    say(f"teacher {config.teacher}: {checkpoint['model_name']} with {record['num_params']:,} parameters, "
        f"test accuracy {test_acc:.4f}; its outputs are {MODE_WORDS[mode]}")
    teacher_config = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else {}
    teacher_split = validation_split(teacher_config)
    if teacher_config and teacher_split != validation_split(dataclasses.asdict(config)):
        say(f"note: the teacher held out other validation examples (split seed {teacher_split[0]}, "
            f"{teacher_split[1]} examples), so it trained on some of this run's: validation overstates the "
            f"student; --split-seed {teacher_split[0]} --val-size {teacher_split[1]} gives the teacher's split")
    smoothing = teacher_config.get("label_smoothing", 0)
    if smoothing and config.temperature > 1 and config.distill_loss == "kl":
        say(f"note: the teacher was trained with label smoothing {smoothing}, which flattens its outputs at "
            f"--temperature {config.temperature:g}; --temperature 1 worked best for such a teacher (see README)")
    return record
