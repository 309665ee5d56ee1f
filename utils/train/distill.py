"""Knowledge distillation: a trained teacher's outputs for each training batch of a student.

The loss (utils.train.losses.distillation_loss) mixes the labels' cross-entropy with the
KL divergence from the teacher's softened outputs. This module loads the teacher, checks that it
fits the student, and serves `(inputs, targets, teacher_logits)` batches:

- images cut from a small set of views (crop and flip without erasing: 18 views of each image
  with a 1-pixel crop), when that costs the teacher fewer passes than the run's epochs: the
  teacher classifies every view of every training image once, and each batch looks up its
  examples' views (`views`).
  The table is kept on disk (utils.train.teacher_tables), so other runs with the same teacher and
  training images, and a resumed run, reuse it;
- other inputs that change every epoch (random erasing): the teacher runs on exactly the
  student's batch, on the same device (`live`);
- fixed inputs (text, or images without augmentation), or a teacher that reads images otherwise than
  the student (a pretrained network at its own size, crop and normalisation): the teacher classifies
  every training example once, through its own data pipeline (so a Transformer teacher reads a question
  with its own subword tokenizer while an LSTM student reads words, and a fine-tuned EfficientNet sees
  224-pixel crops while the seed CNN trains on 28-pixel images), and each batch looks its
  examples up (`cached`). This table is kept on disk too, so a resumed run, or another run over the
  same examples (the same seed's perturbed copies), skips the teacher. Measured on TREC with the
  MiniLM teacher: see the README.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterator

import torch
from torch import nn

from data.bundle import DataBundle
from models import count_parameters
from utils.messages import MESSAGES
from utils.config import TrainConfig
from utils.errors import ConfigError
from utils.runtime import Runtime, autocast, main_process_first
from utils.storage.checkpoint import load_checkpoint_of_task, model_from_checkpoint
from utils.train.evaluation import evaluate
from utils.train.resume import same_data_or_error
from utils.train.teacher_tables import (averages_flips, load_or_make_example_table, load_or_make_view_table,
                                        teacher_sha256, weights_sha256)


def validation_split(config: dict[str, Any]) -> tuple[int, int]:
    """(seed of the split, validation size) of a config or a checkpoint's saved one: which training
    examples it held out for validation."""
    split_seed = config.get("split_seed", -1)
    return (config.get("seed", 0) if split_seed is None or split_seed < 0 else split_seed), config.get("val_size", 0)


def load_teacher_checkpoint(path: str, config: TrainConfig, class_names: list[str]) -> dict[str, Any]:
    """The teacher checkpoint at `path`, checked against the student: same task and classes.

    Raises ConfigError (wrong task or classes) or CheckpointError (not a usable checkpoint)."""
    checkpoint = load_checkpoint_of_task(path, config.task, "--teacher")
    if list(checkpoint["class_names"]) != list(class_names):
        raise ConfigError(f"--teacher {path} predicts {len(checkpoint['class_names'])} other classes than this "
                          f"run's {len(class_names)} (e.g. --labels fine against coarse)")
    return checkpoint


TeacherLogits = Callable[[torch.Tensor, torch.Tensor | None, Any], torch.Tensor]  # (indices, views, inputs)


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
                   recorded: dict[str, Any] | None) -> dict[str, Any]:
    """Load --teacher, make `data.train` serve its logits (per view, live or cached, see above) and return the
    record the run folder keeps: path, weights hash, size, mode and the teacher's test accuracy.

    `recorded` is the record of the run being resumed: its teacher must be the same weights, and
    its test accuracy is not measured again."""
    checkpoint = load_teacher_checkpoint(config.teacher, config, data.class_names)
    teacher = model_from_checkpoint(checkpoint, runtime.device, config.teacher)
    digest = weights_sha256(checkpoint["model"])
    teacher_digest = teacher_sha256(checkpoint, digest)  # names its tables in the cache
    if recorded and recorded.get("weights_sha256") != digest:
        raise ConfigError(f"--teacher {config.teacher} holds other weights than the teacher this run began with "
                          f"({recorded.get('path')}): resume with that teacher, or start a new run")
    same_data_or_error(checkpoint.get("meta", {}), data.meta, f"--teacher {config.teacher} was trained")
    reading = ("mean", "std", "channels", "image_size", "crop_pct", "interpolation")
    # a teacher that reads images otherwise (another size, normalisation or crop) labels each training
    # image once, as it was evaluated, through its own pipeline; the student sees its own augmented views
    same_reading = all(checkpoint.get("meta", {}).get(key) == data.meta.get(key) for key in reading)
    live = data.train.changes_every_epoch and same_reading
    if recorded:  # a resumed run goes on as it began
        by_view = recorded["mode"] == "views"
        live = recorded["mode"] in ("views", "live")
    else:
        by_view = live and views_pay_off(data.train, teacher, config.epochs, len(data.class_names))
    mode = "views" if by_view else "live" if live else "cached"
    alone = dataclasses.replace(runtime, rank=0, world_size=1)  # every process sees all the teacher's data
    if not (live and recorded):  # the teacher's own data: for its cached logits, or its test accuracy
        unaugmented = {} if same_reading else {"augment": False, "random_erasing": 0.0}
        seen_by_teacher = main_process_first(runtime, lambda: make_data(  # one process decodes, the others read
            dataclasses.replace(config, batch_size=config.eval_batch_size, **unaugmented), alone, checkpoint["meta"]))
    if by_view:
        table = load_or_make_view_table(teacher, data.train, runtime, config.eval_batch_size, teacher_digest,
                                        len(data.class_names), config.progress)
        data.train = TeacherBatches(data.train, cached_teacher(table.to(runtime.device)), by_view=True)
    elif live:
        data.train = TeacherBatches(data.train, live_teacher(teacher, runtime))
    else:
        table = load_or_make_example_table(teacher, seen_by_teacher.train, runtime, teacher_digest,
                                           len(data.class_names))
        data.train = TeacherBatches(data.train, cached_teacher(table.to(runtime.device)))
    if recorded:
        return recorded
    test_acc = evaluate(teacher, seen_by_teacher.test, alone)["acc"]
    record = {"path": os.path.abspath(config.teacher), "weights_sha256": digest,
              "model_name": checkpoint["model_name"], "num_params": count_parameters(teacher),
              "test_acc": test_acc, "mode": mode,
              "distill_weight": config.distill_weight, "temperature": config.temperature}
    MESSAGES.info(f"teacher {config.teacher}: {checkpoint['model_name']} with {record['num_params']:,} parameters, "
                  f"test accuracy {test_acc:.4f}; its outputs are {MODE_WORDS[mode]}")
    teacher_config = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else {}
    teacher_split = validation_split(teacher_config)
    if teacher_config and teacher_split != validation_split(dataclasses.asdict(config)):
        MESSAGES.info(f"note: the teacher held out other validation examples (split seed {teacher_split[0]}, "
                      f"{teacher_split[1]} examples), so it trained on some of this run's: validation overstates "
                      f"the student; --split-seed {teacher_split[0]} --val-size {teacher_split[1]} gives the "
                      "teacher's split")
    smoothing = teacher_config.get("label_smoothing", 0)
    if smoothing and config.temperature > 1:
        MESSAGES.info(f"note: the teacher was trained with label smoothing {smoothing}, which flattens its outputs "
                      f"at --temperature {config.temperature:g}; --temperature 1 worked best for such a teacher "
                      "(see README)")
    return record
