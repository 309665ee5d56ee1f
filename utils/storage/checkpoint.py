"""The checkpoint schema in one place: what a run's commit record holds, its views, and how each is
made, checked, loaded and turned back into a model.

A commit record (`last.pt`) holds plain types and tensors only, so `torch.load(weights_only=True)`
reads it: the weights, the optimizer and gradient-scaler state, the weight average (--ema), the
progress (epoch, step, history, best epoch and accuracy, early stop), the best weights, and what
identifies the run (its config, script, model name and arguments, the data's task, class names
and meta, and the teacher's record). `best.pt` is the view a predictor reads: the best weights and
the run's identity, without the training-only parts.
"""
from __future__ import annotations

import math
import os
import pickle
import zipfile
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from data import DataError
from data.bundle import kind_of
from data.tokenization import tokenizer_from_meta
from models import build_model
from utils.errors import CheckpointError, ConfigError, one_line
from utils.storage.files import atomic_write

FORMAT = 2  # version of the commit record's layout
TRAINING_ONLY_KEYS = ("optimizer", "scaler", "best_model", "ema", "history", "step", "stopped_early")
PREDICTOR_KEYS = {"model": dict, "model_name": str, "model_kwargs": dict, "task": str, "class_names": list,
                  "meta": dict}
TASK_META = {"fashion_mnist": ("mean", "std"), "trec": (), "image": ("mean", "std", "channels", "image_size"),
             "text": ()}  # what each task's inputs need from `meta`
RETIRED_MODEL_KWARGS = ("word_dropout",)  # options the models no longer take (inactive at inference)
PROGRESS_KEYS = ("epoch", "step", "best_val_acc", "best_epoch", "stopped_early", "history")


@dataclass
class RunIdentity:
    """What a run is, as every checkpoint of it records: settings, model and data description."""

    config: dict[str, Any]
    script: str
    model_name: str
    model_kwargs: dict[str, Any]
    task: str
    class_names: list[str]
    meta: dict[str, Any]
    teacher: dict[str, Any] | None = None
    pretrained: dict[str, Any] | None = None  # where the weights started: {"source", "file_dtype"}


@dataclass
class TrainingState:
    """What changes while a run trains: the weights and their optimizer, the progress, the best weights."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    progress: dict[str, Any]  # PROGRESS_KEYS
    best_weights: dict[str, torch.Tensor] | None = None
    ema: AveragedModel | None = None


def new_progress() -> dict[str, Any]:
    """The progress of a run that has not trained yet."""
    return {"epoch": 0, "step": 0, "best_val_acc": -math.inf, "best_epoch": 0, "stopped_early": False, "history": []}


def plain_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict as an optimizer never recorded in a CUDA graph (utils.train.graphed_step)
    has it: float learning rates, `capturable` off, so that the checkpoint loads on a CPU as on a GPU."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        if "capturable" in group:
            group["capturable"] = False
    return state


def commit_record(state: TrainingState, identity: RunIdentity) -> dict[str, Any]:
    """The commit record of the state after an epoch, in plain types."""
    return {"model": state.model.state_dict(), "optimizer": plain_optimizer_state(state.optimizer),
            "scaler": state.scaler.state_dict(), **state.progress, "best_model": state.best_weights,
            "ema": state.ema.state_dict() if state.ema else None, "teacher": identity.teacher,
            "config": dict(identity.config), "script": identity.script, "model_name": identity.model_name,
            "model_kwargs": identity.model_kwargs, "task": identity.task, "class_names": identity.class_names,
            "meta": identity.meta, "pretrained": identity.pretrained, "format": FORMAT}


def best_view(record: dict[str, Any]) -> dict[str, Any]:
    """best.pt's content: the best weights and what a predictor needs, from a commit record."""
    view = {key: value for key, value in record.items() if key not in TRAINING_ONLY_KEYS}
    view.update(model=record["best_model"], epoch=record["best_epoch"], val_acc=record["best_val_acc"])
    return view


def restore_training_state(state: TrainingState, record: dict[str, Any], path: str) -> None:
    """Load a commit record's weights, optimizer, scaler, weight average and progress into `state`."""
    try:
        state.model.load_state_dict(record["model"])
        state.optimizer.load_state_dict(record["optimizer"])
        state.scaler.load_state_dict(record["scaler"])
        if state.ema:
            state.ema.load_state_dict(record["ema"])
        state.progress = {key: record[key] for key in PROGRESS_KEYS}
    except (KeyError, TypeError, AttributeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path} does not fit this run's model or optimizer ({one_line(error)[:200]}): "
                              "start a new run") from error
    state.best_weights = record["best_model"]


def check_predictor_checkpoint(checkpoint: dict[str, Any], path: str) -> None:
    """Raise CheckpointError unless `checkpoint` holds, with the right types, all a predictor needs."""
    for key, kind in PREDICTOR_KEYS.items():
        if not isinstance(checkpoint.get(key), kind):
            raise CheckpointError(f"{path} is not a checkpoint of this repository: its {key!r} is missing or "
                                  f"not a {kind.__name__}")
    task, names, meta = checkpoint["task"], checkpoint["class_names"], checkpoint["meta"]
    if task not in TASK_META:
        raise CheckpointError(f"{path}: unknown task {task!r} (expected one of {', '.join(TASK_META)})")
    missing = [key for key in TASK_META[task] if key not in meta]
    if missing:
        raise CheckpointError(f"{path}: its meta lacks {', '.join(missing)}, needed to read {task} inputs")
    if not names or not all(isinstance(name, str) for name in names):
        raise CheckpointError(f"{path}: class_names must be a non-empty list of strings")
    if kind_of(task) == "text":
        try:
            tokenizer = tokenizer_from_meta(meta)
        except DataError as error:
            raise CheckpointError(f"{path}: {error}") from error
        check_text_meta(checkpoint["model_kwargs"], meta, tokenizer.vocab_size, path)
    else:
        check_image_meta(meta, path)
    if checkpoint["model_kwargs"].get("num_classes", len(names)) != len(names):
        raise CheckpointError(f"{path}: the model has {checkpoint['model_kwargs']['num_classes']} outputs "
                              f"but {len(names)} class names")


def check_image_meta(meta: dict[str, Any], path: str) -> None:
    """Raise CheckpointError unless an image model's meta gives finite means and positive stds (one, or
    one per channel), and for other data than FashionMNIST 1 or 3 channels and a positive size."""
    def numbers(value: Any) -> list[Any]:
        return list(value) if isinstance(value, (list, tuple)) else [value]
    mean, std = numbers(meta["mean"]), numbers(meta["std"])
    if not (mean and len(mean) == len(std) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     and math.isfinite(v) for v in mean + std)
            and all(v > 0 for v in std)):
        raise CheckpointError(f"{path}: its image normalisation (mean, std) is not finite numbers with std > 0")
    channels, size = meta.get("channels", 1), numbers(meta.get("image_size", 28))
    if channels not in (1, 3) or len(mean) not in (1, channels) or len(size) not in (1, 2) or \
            not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 4096 for v in size):
        raise CheckpointError(f"{path}: its meta's channels {channels!r} and image size {meta.get('image_size')!r} "
                              "do not describe images")


def check_text_meta(model_kwargs: dict[str, Any], meta: dict[str, Any], tokens: int, path: str) -> None:
    """Raise CheckpointError unless a text model's meta fits it: a tokenizer of `tokens` tokens that
    the model has embeddings for, and a positive integer max_length within its positions."""
    encoder = model_kwargs.get("encoder_config") if isinstance(model_kwargs.get("encoder_config"), dict) else {}
    embeddings = model_kwargs.get("vocab_size", encoder.get("vocab_size"))
    exact = "vocab_size" in model_kwargs  # a word vocabulary is the model's embeddings, one for one
    if isinstance(embeddings, int) and (tokens != embeddings if exact else tokens > embeddings):
        raise CheckpointError(f"{path}: its tokenizer has {tokens} tokens but the model {embeddings} token embeddings")
    max_length = meta.get("max_length", 1)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise CheckpointError(f"{path}: its meta's max_length {max_length!r} is not a positive whole number")
    positions = model_kwargs.get("max_length", encoder.get("max_position_embeddings"))
    if isinstance(positions, int) and max_length > positions:
        raise CheckpointError(f"{path}: its meta's max_length {max_length} is more than the model's {positions} "
                              "positions")


def save_checkpoint(path: str, state: dict[str, Any]) -> None:
    """Save a dict of plain types and tensors with torch.save, atomically."""
    atomic_write(path, lambda tmp_path: torch.save(state, tmp_path))


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights_only=True: no arbitrary unpickling).

    A missing file, or one that is corrupt, truncated, not a checkpoint or
    holds anything but tensors and plain types, raises CheckpointError, in one line.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "unsupported global" not in str(error).lower():  # garbage rather than a forbidden class
            raise CheckpointError(f"checkpoint {path} cannot be read: it is truncated, corrupt or not a "
                                  "PyTorch file") from error
        # torch's message here suggests loading untrusted code; we never do, so it is not repeated
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain types "
                              "and is refused (only weights-only checkpoints are loaded)") from error
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError,
            MemoryError) as error:
        raise CheckpointError(f"checkpoint {path} cannot be read: it is truncated, corrupt or not a "
                              f"PyTorch file ({type(error).__name__})") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any], device: torch.device | str = "cpu",
                          path: str = "the checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint was saved from, with its weights, in eval mode.

    A checkpoint whose parts do not fit together raises CheckpointError naming `path`.
    """
    try:
        kwargs = {key: value for key, value in checkpoint["model_kwargs"].items() if key not in RETIRED_MODEL_KWARGS}
        model = build_model(checkpoint["model_name"], **kwargs)
        model.load_state_dict(checkpoint["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
        raise CheckpointError(f"{path} does not describe a model of this repository that its weights fit "
                              f"({type(error).__name__}: {one_line(error)[:200]})") from error
    return model.to(device).eval()


def load_checkpoint_of_task(path: str, task: str, flag: str) -> dict[str, Any]:
    """The predictor checkpoint at `path`, given as `flag` (e.g. --teacher), which must be of `task`:
    CheckpointError when it is no usable checkpoint, ConfigError when it is of another task."""
    checkpoint = load_checkpoint(path)
    check_predictor_checkpoint(checkpoint, f"{flag} {path}")
    if kind_of(checkpoint["task"]) != kind_of(task):
        raise ConfigError(f"{flag} {path} is a {checkpoint['task']} model: a {task} student needs a "
                          f"{kind_of(task)} teacher")
    return checkpoint
