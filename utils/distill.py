"""Knowledge distillation: a trained teacher's outputs for each training batch of a student.

The engine's loss (utils.engine.distillation_loss) mixes the labels' cross-entropy with the
KL divergence from the teacher's softened outputs. This module loads the teacher, checks that it
fits the student, and serves `(inputs, targets, teacher_logits)` batches:

- inputs that change every epoch (crop, flip, erasing): the teacher runs on exactly the
  student's batch, on the same device (`live`);
- fixed inputs (text, or images without augmentation): the teacher classifies every training
  example once, through its own data pipeline (so a Transformer teacher reads a question
  with its own subword tokenizer while an LSTM student reads words), and each batch looks its
  examples up (`cached`). Measured on TREC with the MiniLM teacher: see the README.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Any, Callable, Iterator

import torch
from torch import nn

from data.bundle import DataBundle
from models import count_parameters
from utils.checkpoint import load_checkpoint, model_from_checkpoint
from utils.config import ConfigError, TrainConfig, validation_split
from utils.engine import evaluate
from utils.inference import check_predictor_checkpoint
from utils.runtime import Runtime, autocast


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """A hash of a state dict's names, dtypes, shapes and values (identifies a teacher's weights)."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
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


class TeacherBatches:
    """A student's training batches with the teacher's logits: yields `(inputs, targets, teacher_logits)`.

    `teacher_logits(indices, inputs)` gives the logits for the batch's examples (their indices in
    the training split) and inputs. Everything else (set_epoch, len, ...) is the wrapped batches'.
    """

    def __init__(self, batches: Any, teacher_logits: Callable[[torch.Tensor, Any], torch.Tensor]) -> None:
        self.batches = batches
        self.teacher_logits = teacher_logits

    def __getattr__(self, name: str) -> Any:
        return getattr(self.batches, name)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor]]:
        for indices, (inputs, targets) in self.batches.batches_with_indices():
            yield inputs, targets, self.teacher_logits(indices, inputs)


def live_teacher(teacher: nn.Module, runtime: Runtime) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """Logits of `teacher` (eval mode, no gradient) on the student's own batch, in float32."""
    def logits(indices: torch.Tensor, inputs: Any) -> torch.Tensor:
        with torch.no_grad(), autocast(runtime):
            return teacher(inputs).float()
    return logits


def cached_teacher(table: torch.Tensor) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """Rows of `table` (the teacher's logits of every training example) for a batch's indices."""
    def logits(indices: torch.Tensor, inputs: Any) -> torch.Tensor:
        return table[indices.to(table.device)]
    return logits


def attach_teacher(config: TrainConfig, data: DataBundle, runtime: Runtime, make_data: Callable[..., DataBundle],
                   recorded: dict[str, Any] | None, say: Callable[[str], None]) -> dict[str, Any]:
    """Load --teacher, make `data.train` serve its logits (live or cached, see above) and return the
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
    alone = dataclasses.replace(runtime, rank=0, world_size=1)  # every process sees all the teacher's data
    if not (live and recorded):  # the teacher's own data: for its cached logits, or its test accuracy
        seen_by_teacher = make_data(dataclasses.replace(config, batch_size=config.eval_batch_size), alone,
                                    checkpoint["meta"])
    if live:
        data.train = TeacherBatches(data.train, live_teacher(teacher, runtime))
    else:
        table = evaluate(teacher, seen_by_teacher.train, alone, collect=True)["logits"]
        data.train = TeacherBatches(data.train, cached_teacher(table.clone().to(runtime.device)))
    if recorded:
        return recorded
    test_acc = evaluate(teacher, seen_by_teacher.test, alone)["acc"]
    record = {"path": os.path.abspath(config.teacher), "weights_sha256": digest,
              "model_name": checkpoint["model_name"], "num_params": count_parameters(teacher),
              "test_acc": test_acc, "mode": "live" if live else "cached",
              "distill_weight": config.distill_weight, "temperature": config.temperature,
              "distill_loss": config.distill_loss}
    say(f"teacher {config.teacher}: {checkpoint['model_name']} with {record['num_params']:,} parameters, "
        f"test accuracy {test_acc:.4f}; its outputs are {'computed on each batch' if live else 'computed once'}")
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
