"""What every training script does: set up, train with checkpoints, test the best model, report.

Scripts call `run_experiment(config, script_name, model_name, make_data)`. The run folder (its
layout, lock, commit step and repair) is utils.run_folder's; this module trains into it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import time
from typing import Any, Callable, Iterator, Union

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from data.bundle import DataBundle
from models import build_model, count_parameters, parameter_groups
from utils.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, one_line, save_json
from utils.config import ConfigError, TrainConfig
from utils.distill import attach_teacher
from utils.engine import Interrupted, NonFiniteLoss, Trainer, evaluate, fit
from utils.inference import check_predictor_checkpoint
from utils.optim import build_optimizer, lr_schedule
from utils.report import write_test_report
from utils.run_folder import SUMMARY, RunFolder
from utils.tensorboard_log import TensorBoardLog
from utils.runtime import Runtime, cpu_bf16_native, init_runtime, seed_everything, shutdown

COMMAND_LINE_ONLY = {"data_dir", "device", "precision", "eval_batch_size", "out_dir", "eval_only", "checkpoint",
                     "resume", "progress", "source", "tensorboard"}
MakeData = Callable[[TrainConfig, Runtime, "dict | None"], DataBundle]
ModelName = Union[str, Callable[[TrainConfig], str]]  # a fixed model, or one the flags choose


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
                     progress: dict[str, Any], best_weights: dict[str, torch.Tensor] | None, config: TrainConfig,
                     script_name: str, model_name: str, model_kwargs: dict[str, Any], data: DataBundle,
                     ema: AveragedModel | None = None, teacher: dict[str, Any] | None = None) -> dict[str, Any]:
    """The commit record of an epoch, in plain types: weights, optimizer, progress, best weights,
    the weight average (--ema), the teacher's record (--teacher) and all a predictor needs."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
            **progress, "best_model": best_weights, "ema": ema.state_dict() if ema else None, "teacher": teacher,
            "config": vars(config).copy(), "script": script_name, "model_name": model_name,
            "model_kwargs": model_kwargs, "task": data.task, "class_names": data.class_names, "meta": data.meta}


def same_model_or_error(saved: dict[str, Any], model_kwargs: dict[str, Any], run_dir: str) -> None:
    """Raise ConfigError when a resume would build another model than the run's (e.g. --cell changed)."""
    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    changed = [f"{key} {plain(saved.get(key))!r} -> {plain(model_kwargs.get(key))!r}"
               for key in sorted(set(saved) | set(model_kwargs)) if plain(saved.get(key)) != plain(model_kwargs.get(key))]
    refuse_changes("another model", changed, run_dir)


def refuse_changes(what: str, changed: list[str], run_dir: str) -> None:
    """Raise ConfigError naming `changed` when a resume of `run_dir` would change `what`."""
    if changed:
        raise ConfigError(f"cannot resume {run_dir} with {what} ({'; '.join(changed)}): drop the flags that change "
                          "it, or start a new run")


def same_data_or_error(saved_config: dict[str, Any], config: TrainConfig, run_dir: str) -> None:
    """Raise ConfigError when a resume would train or validate on other examples than the run's
    (e.g. --val-size or --seed changed). A flag its saved config lacks (an older run) passes."""
    changed = [f"--{name.replace('_', '-')} {saved_config[name]!r} -> {getattr(config, name)!r}"
               for name in config.data_flags if name in saved_config and saved_config[name] != getattr(config, name)]
    refuse_changes("other data", changed, run_dir)


def same_switch_or_error(flag: str, trained_with: bool, resumed_with: bool, run_dir: str) -> None:
    """Raise ConfigError when a resume turns `flag` on or off (its state would be missing or lost)."""
    if trained_with != resumed_with:
        raise ConfigError(f"cannot resume {run_dir} with{'' if resumed_with else 'out'} {flag}: it was trained "
                          f"with{'' if trained_with else 'out'} it; keep its {flag} setting or start a new run")


def build_optimization(config: TrainConfig, model: nn.Module, steps_per_epoch: int, runtime: Runtime
                       ) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler, Callable[[int], float]]:
    """The optimizer, the gradient scaler (active for fp16 only) and the lr at each step."""
    optimizer = build_optimizer(config.optimizer, parameter_groups(model, config.encoder_lr_fraction()), config.lr,
                                config.momentum, config.nesterov, config.weight_decay)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "fp16")
    schedule = lr_schedule(config.scheduler, config.lr, config.epochs * steps_per_epoch,
                           warmup_steps=int(config.warmup_epochs * steps_per_epoch),
                           step_size=config.step_epochs * steps_per_epoch)
    return optimizer, scaler, schedule


def teacher_for_run(config: TrainConfig, data: DataBundle, runtime: Runtime, make_data: MakeData,
                    resumed: dict[str, Any] | None, say: Callable[[str], None]) -> dict[str, Any] | None:
    """With --teacher, attach its outputs to `data.train` and return its record (None without)."""
    recorded = resumed.get("teacher") if resumed else None
    if resumed:
        same_switch_or_error("--teacher", bool(recorded), bool(config.teacher), config.resume)
    return attach_teacher(config, data, runtime, make_data, recorded, say) if config.teacher else None


def wrap_for_training(model: nn.Module, runtime: Runtime, compile_model: bool) -> nn.Module:
    """The module to train through: DDP across processes, compiled on request. Checkpoints
    and evaluation use the plain `model` underneath."""
    if runtime.distributed:
        model = DistributedDataParallel(model, device_ids=[runtime.device.index]
                                        if runtime.device.type == "cuda" else None)
    return torch.compile(model) if compile_model else model


def run_experiment(config: TrainConfig, script_name: str, model_name: ModelName, make_data: MakeData,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or with --eval-only, evaluate) as `config` says; returns the run summary."""
    model_name = model_name(config) if callable(model_name) else model_name
    runtime = init_runtime(config.device, config.precision, config.cpu_bf16_helps())
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
    check_predictor_checkpoint(checkpoint, config.checkpoint)
    if not isinstance(checkpoint.get("config"), dict):
        raise CheckpointError(f"{config.checkpoint} is not a checkpoint of this repository: it has no config")
    if checkpoint["task"] != config.task:
        raise ConfigError(f"{config.checkpoint} is a {checkpoint['task']} checkpoint, not {config.task}")
    # data settings (label set, split) come from the run that made the checkpoint; where to look
    # and how to compute come from this command line
    saved = {key: value for key, value in checkpoint["config"].items()
             if key in vars(config) and key not in COMMAND_LINE_ONLY}
    data = make_data(dataclasses.replace(config, **saved), runtime, checkpoint["meta"])
    model = model_from_checkpoint(checkpoint, runtime.device, config.checkpoint)
    out_dir = config.out_dir or os.path.dirname(os.path.abspath(config.checkpoint))
    with RunFolder(out_dir, writer=runtime.is_main):  # not while a run writes its reports there
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
    """The training run proper, in a locked run folder; see run_experiment and utils.run_folder."""
    run_dir = config.resume or config.out_dir or default_run_dir(script_name)
    with RunFolder(run_dir, writer=runtime.is_main) as folder:
        saved_script = folder.saved_config().get("script", script_name) if config.resume else script_name
        if saved_script != script_name:
            raise ConfigError(f"{run_dir} is a run of train_{saved_script}.py: resume it with "
                              f"python train_{saved_script}.py --resume {run_dir}")
        resumed = folder.open(resume=bool(config.resume))
        for note in folder.notes:
            say(note)
        return train_in_folder(config, script_name, model_name, make_data, runtime, say, folder, resumed)


def train_in_folder(config: TrainConfig, script_name: str, model_name: str, make_data: MakeData, runtime: Runtime,
                    say: Callable[[str], None], folder: RunFolder, resumed: dict[str, Any] | None) -> dict[str, Any]:
    """Train from `resumed` (or from scratch), committing each epoch to `folder`; then test and report."""
    if resumed:
        same_data_or_error(resumed.get("config") or {}, config, folder.path)
    data = make_data(config, runtime, resumed["meta"] if resumed else None)
    for note in data.notes:
        say(note)
    model_kwargs = {**config.model_kwargs(), **data.model_kwargs}
    if resumed:
        same_model_or_error(resumed["model_kwargs"], model_kwargs, folder.path)
        same_switch_or_error("--ema", bool(resumed.get("ema")), bool(config.ema), folder.path)
    model = build_model(model_name, **model_kwargs)
    if not resumed:
        config.initialise(model)
    model = model.to(runtime.device)
    if getattr(config, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    teacher = teacher_for_run(config, data, runtime, make_data, resumed, say)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True) if config.ema else None
    eval_model = ema.module if ema else model  # what is validated, tested and saved as best
    optimizer, scaler, schedule = build_optimization(config, model, len(data.train), runtime)
    progress = {"epoch": 0, "step": 0, "best_val_acc": -math.inf, "best_epoch": 0, "stopped_early": False,
                "history": []}
    best_weights = None
    if resumed:
        try:
            model.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            scaler.load_state_dict(resumed["scaler"])
            if ema:
                ema.load_state_dict(resumed["ema"])
        except (KeyError, TypeError, AttributeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{folder.file('last.pt')} does not fit this run's model or optimizer "
                                  f"({one_line(error)[:200]}): start a new run") from error
        progress = {key: resumed[key] for key in progress}
        best_weights = resumed["best_model"]
        say(f"resuming {folder.path} after epoch {progress['epoch']} (step {progress['step']})")
    if progress["epoch"] < config.epochs and not progress["stopped_early"]:
        folder.forget_results()
    train_module = wrap_for_training(model, runtime, config.compile)
    folder.save_config({**vars(config), "script": script_name})
    say(f"run folder {folder.path}: {model_name} with {count_parameters(model):,} parameters on {runtime.device} "
        f"({runtime.precision}, {runtime.world_size} process{'es' if runtime.distributed else ''}), "
        f"{data.train.num_examples * runtime.world_size:,} training examples")

    board = (TensorBoardLog(folder.path, progress["step"] if config.resume else None)
             if config.tensorboard and runtime.is_main else None)

    def on_epoch_end(metrics: dict[str, float], outcome: dict[str, Any]) -> None:
        nonlocal best_weights
        if board:
            board.epoch(metrics, trainer.step)  # on disk before the commit: see utils.tensorboard_log
        if outcome["is_best"]:
            best_weights = {name: value.detach().clone() for name, value in eval_model.state_dict().items()}
        progress["history"].append(metrics)
        progress.update(epoch=metrics["epoch"], step=trainer.step, best_val_acc=outcome["best_val_acc"],
                        best_epoch=outcome["best_epoch"], stopped_early=outcome["stopped_early"])
        folder.commit(checkpoint_state(model, optimizer, scaler, progress, best_weights, config, script_name,
                                       model_name, model_kwargs, data, ema, teacher))

    with stop_on_signals() as should_stop:
        trainer = Trainer(train_module, optimizer, runtime, schedule, scaler, config.label_smoothing,
                          config.grad_clip, step=progress["step"], should_stop=should_stop,
                          on_step_loss=board.train_step if board else None,
                          after_step=(lambda: ema.update_parameters(model)) if ema else None,
                          distill_weight=config.distill_weight if teacher else 0.0,
                          temperature=config.temperature, distill_loss=config.distill_loss)
        start = time.perf_counter()
        try:
            outcome = fit(trainer, data.train, data.val, eval_model, epochs=config.epochs, seed=config.seed,
                          start_epoch=progress["epoch"] + 1, best_val_acc=progress["best_val_acc"],
                          best_epoch=progress["best_epoch"], patience=config.patience,
                          stopped_early=progress["stopped_early"], progress=config.progress,
                          on_epoch_end=on_epoch_end, log=say)
        except (Interrupted, NonFiniteLoss) as stop:
            if board:
                board.close()
            raise type(stop)(f"{stop}; {folder.describe(progress['epoch'], script_name)}") from None
        wall_seconds = time.perf_counter() - start

    try:
        summary = test_and_report(model, best_weights, data, runtime, outcome, progress, wall_seconds, folder, say,
                                  teacher)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during the final test; {folder.describe(progress['epoch'], script_name)}") from None
    if board:
        board.finish(vars(config), {"best_val_acc": summary["best_val_acc"], "test_acc": summary["test_acc"]},
                     progress["step"])
    return summary


def test_and_report(model: nn.Module, best_weights: dict[str, torch.Tensor] | None, data: DataBundle, runtime: Runtime,
                    outcome: dict[str, Any], progress: dict[str, Any], wall_seconds: float, folder: RunFolder,
                    say: Callable[[str], None], teacher: dict[str, Any] | None = None) -> dict[str, Any]:
    """Test the best-on-validation weights once, write the reports, then summary.json; returns the summary."""
    if best_weights is not None:
        model.load_state_dict(best_weights)
    test = evaluate(model, data.test, runtime, collect=True)
    summary = {"best_epoch": outcome["best_epoch"], "best_val_acc": outcome["best_val_acc"],
               "test_loss": test["loss"], "test_acc": test["acc"], "num_params": count_parameters(model),
               "train_seconds": sum(m["seconds"] for m in progress["history"]), "wall_seconds": wall_seconds,
               "epochs_run": progress["epoch"], "stopped_early": outcome["stopped_early"],
               "device": str(runtime.device), "precision": runtime.precision, "world_size": runtime.world_size,
               "cpu_bf16_native": cpu_bf16_native(), "run_dir": folder.path}
    if teacher:
        summary["teacher"] = teacher
    if runtime.is_main:
        say(write_test_report(folder.path, test, data))
        save_json(folder.file(SUMMARY), summary)  # last: its presence marks a finished run
        say(f"test accuracy {test['acc']:.4f} (loss {test['loss']:.4f}) with the best-on-validation weights "
            f"of epoch {outcome['best_epoch']}; {summary['train_seconds']:.0f}s of training; results in {folder.path}")
    return summary
