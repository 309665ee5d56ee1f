"""What every training script does: set up, train with checkpoints, test the best model, report.

Scripts call `run_experiment(config, script_name, model_name, make_data)`. A run folder holds
config.json, metrics.jsonl, last.pt, best.pt, summary.json and the test report.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import time
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from data.bundle import DataBundle
from models import build_model, count_parameters
from utils.checkpoint import atomic_write, load_checkpoint, save_checkpoint, save_json, write_jsonl
from utils.config import ConfigError, TrainConfig
from utils.engine import Interrupted, Trainer, evaluate, fit
from utils.optim import build_optimizer, lr_schedule
from utils.report import write_test_report
from utils.runtime import Runtime, init_runtime, seed_everything, shutdown

COMMAND_LINE_ONLY = {"data_dir", "device", "precision", "eval_batch_size", "out_dir", "eval_only", "checkpoint",
                     "resume", "progress", "source"}
MakeData = Callable[[TrainConfig, Runtime, "dict | None"], DataBundle]


def default_run_dir(script_name: str) -> str:
    """A new folder runs/<script>-<timestamp> (with a suffix if that name is taken)."""
    base = os.path.join("runs", f"{script_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    path, suffix = base, 1
    while os.path.exists(path):
        suffix += 1
        path = f"{base}-{suffix}"
    return path


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """While active, SIGINT and SIGTERM only raise a flag, checked by the engine after each step."""
    requested = []
    previous = {}

    def handler(signum, frame):
        requested.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield lambda: bool(requested)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                     progress: dict[str, Any], config: TrainConfig, model_name: str,
                     model_kwargs: dict[str, Any], data: DataBundle) -> dict[str, Any]:
    """A checkpoint of plain types: weights, optimizer, progress and all a predictor needs."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            **progress, "config": vars(config).copy(), "model_name": model_name, "model_kwargs": model_kwargs,
            "task": data.task, "class_names": data.class_names, "meta": data.meta}


def model_from_checkpoint(checkpoint: dict[str, Any], device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint was saved from, with its weights, in eval mode."""
    model = build_model(checkpoint["model_name"], **checkpoint["model_kwargs"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


def build_optimization(config: TrainConfig, model: nn.Module, steps_per_epoch: int, runtime: Runtime
                       ) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler, Callable[[int], float]]:
    """The optimizer, the gradient scaler (active for fp16 only) and the lr at each step."""
    optimizer = build_optimizer(config.optimizer, model.parameters(), config.lr, config.momentum,
                                config.nesterov, config.weight_decay)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "fp16")
    schedule = lr_schedule(config.scheduler, config.lr, config.epochs * steps_per_epoch,
                           warmup_steps=int(config.warmup_epochs * steps_per_epoch),
                           step_size=config.step_epochs * steps_per_epoch)
    return optimizer, scaler, schedule


def wrap_for_training(model: nn.Module, runtime: Runtime, compile_model: bool) -> nn.Module:
    """The module to train through: DDP across processes, compiled on request. Checkpoints
    and evaluation use the plain `model` underneath."""
    if runtime.distributed:
        model = DistributedDataParallel(model, device_ids=[runtime.device.index]
                                        if runtime.device.type == "cuda" else None)
    return torch.compile(model) if compile_model else model


def run_experiment(config: TrainConfig, script_name: str, model_name: str, make_data: MakeData,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or with --eval-only, evaluate) as `config` says; returns the run summary."""
    runtime = init_runtime(config.device, config.precision)
    say = log if runtime.is_main else (lambda message: None)
    try:
        seed_everything(config.seed)
        if config.eval_only:
            return evaluate_checkpoint(config, make_data, runtime, say)
        return train(config, script_name, model_name, make_data, runtime, say)
    finally:
        shutdown(runtime)


def evaluate_checkpoint(config: TrainConfig, make_data: MakeData, runtime: Runtime,
                        say: Callable[[str], None]) -> dict[str, Any]:
    """Evaluate --checkpoint on the test set and write the report beside it (or to --out-dir)."""
    checkpoint = load_checkpoint(config.checkpoint)
    # data settings (label set, split) come from the run that made the checkpoint; where to look
    # and how to compute come from this command line
    saved = {key: value for key, value in checkpoint["config"].items()
             if key in vars(config) and key not in COMMAND_LINE_ONLY}
    data = make_data(dataclasses.replace(config, **saved), runtime, checkpoint["meta"])
    if checkpoint["task"] != data.task:
        raise ValueError(f"{config.checkpoint} is a {checkpoint['task']} checkpoint, not {data.task}")
    model = model_from_checkpoint(checkpoint, runtime.device)
    out_dir = config.out_dir or os.path.dirname(os.path.abspath(config.checkpoint))
    test = evaluate(model, data.test, runtime, collect=True)
    summary = {"checkpoint": config.checkpoint, "test_loss": test["loss"], "test_acc": test["acc"],
               "num_params": count_parameters(model), "device": str(runtime.device)}
    if runtime.is_main:
        save_json(os.path.join(out_dir, "eval.json"), summary)
        say(write_test_report(out_dir, test, data))
        say(f"test accuracy {test['acc']:.4f} (loss {test['loss']:.4f}) of {config.checkpoint}")
    return summary


def train(config: TrainConfig, script_name: str, model_name: str, make_data: MakeData, runtime: Runtime,
          say: Callable[[str], None]) -> dict[str, Any]:
    """The training run proper; see run_experiment."""
    run_dir = config.resume or config.out_dir or default_run_dir(script_name)
    if not config.resume and os.path.exists(os.path.join(run_dir, "last.pt")):
        raise ConfigError(f"{run_dir} already holds a run: continue it with --resume {run_dir}, "
                          "or choose another --out-dir")
    resumed = load_checkpoint(os.path.join(run_dir, "last.pt")) if config.resume else None
    data = make_data(config, runtime, resumed["meta"] if resumed else None)
    model_kwargs = {**config.model_kwargs(), **data.model_kwargs}
    model = build_model(model_name, **model_kwargs).to(runtime.device)
    if getattr(config, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    optimizer, scaler, schedule = build_optimization(config, model, len(data.train), runtime)
    progress = {"epoch": 0, "step": 0, "best_val_acc": -math.inf, "best_epoch": 0, "history": []}
    best_weights = None
    if resumed:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scaler.load_state_dict(resumed["scaler"])
        progress = {key: resumed[key] for key in progress}
        if progress["best_epoch"]:
            best_weights = load_checkpoint(os.path.join(run_dir, "best.pt"))["model"]
        say(f"resuming {run_dir} after epoch {progress['epoch']} (step {progress['step']})")
    train_module = wrap_for_training(model, runtime, config.compile)

    if runtime.is_main:
        save_json(os.path.join(run_dir, "config.json"), vars(config))
        say(f"run folder {run_dir}: {model_name} with {count_parameters(model):,} parameters on {runtime.device} "
            f"({runtime.precision}, {runtime.world_size} process{'es' if runtime.distributed else ''}), "
            f"{data.train.num_examples * runtime.world_size:,} training examples")

    def on_epoch_end(metrics: dict[str, float], is_best: bool) -> None:
        nonlocal best_weights
        progress["history"].append(metrics)
        progress.update(epoch=metrics["epoch"], step=trainer.step)
        if is_best:
            progress.update(best_val_acc=metrics["val_acc"], best_epoch=metrics["epoch"])
            best_weights = {name: value.detach().clone() for name, value in model.state_dict().items()}
        if runtime.is_main:
            last_path = os.path.join(run_dir, "last.pt")
            save_checkpoint(last_path, checkpoint_state(model, optimizer, scaler, progress, config, model_name,
                                                        model_kwargs, data))
            if is_best:
                atomic_write(os.path.join(run_dir, "best.pt"), lambda tmp: shutil.copyfile(last_path, tmp))
            write_jsonl(os.path.join(run_dir, "metrics.jsonl"), progress["history"])

    with stop_on_signals() as should_stop:
        trainer = Trainer(train_module, optimizer, runtime, schedule, scaler, config.label_smoothing,
                          config.grad_clip, step=progress["step"], should_stop=should_stop)
        start = time.perf_counter()
        try:
            outcome = fit(trainer, data.train, data.val, model, epochs=config.epochs, seed=config.seed,
                          start_epoch=progress["epoch"] + 1, best_val_acc=progress["best_val_acc"],
                          best_epoch=progress["best_epoch"], patience=config.patience,
                          progress=config.progress, on_epoch_end=on_epoch_end, log=say)
        except Interrupted as stop:
            raise Interrupted(f"{stop}; {run_dir}/last.pt holds epoch {progress['epoch']}. "
                              f"Resume with: python train_{script_name}.py --resume {run_dir}") from None
        wall_seconds = time.perf_counter() - start

    if best_weights is not None:
        model.load_state_dict(best_weights)
    test = evaluate(model, data.test, runtime, collect=True)
    summary = {"best_epoch": outcome["best_epoch"], "best_val_acc": outcome["best_val_acc"],
               "test_loss": test["loss"], "test_acc": test["acc"], "num_params": count_parameters(model),
               "train_seconds": sum(m["seconds"] for m in progress["history"]), "wall_seconds": wall_seconds,
               "epochs_run": progress["epoch"], "stopped_early": outcome["stopped_early"],
               "device": str(runtime.device), "precision": runtime.precision, "world_size": runtime.world_size,
               "run_dir": run_dir}
    if runtime.is_main:
        save_json(os.path.join(run_dir, "summary.json"), summary)
        say(write_test_report(run_dir, test, data))
        say(f"test accuracy {test['acc']:.4f} (loss {test['loss']:.4f}) with the best-on-validation weights "
            f"of epoch {outcome['best_epoch']}; {summary['train_seconds']:.0f}s of training; results in {run_dir}")
    return summary
