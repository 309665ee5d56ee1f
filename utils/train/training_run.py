"""One training run in a locked run folder, in named steps: set up, train with a commit per epoch, test.

    run = set_up(config, script, make_data, runtime, folder, resumed)
    outcome, wall_seconds = train_epochs(run)
    summary = test_and_report(run, outcome, wall_seconds)

The run folder (layout, lock, commit step, repair) is utils.storage.run_folder's, the checkpoint's
contents utils.storage.checkpoint's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from data.bundle import DataBundle, kind_of
from data.text import TextBatches
from models import build_model, count_parameters, parameter_groups
from models.timm_net import known_architecture, load_backbone_weights
from models.transformer import load_pretrained_weights
from utils.config import TrainConfig
from utils.errors import ConfigError, Interrupted, NonFiniteLoss, PretrainedError
from utils.pretrained import PretrainedEncoder, load_pretrained_encoder
from utils.pretrained_images import PretrainedImageNet, load_pretrained_image_net
from utils.messages import MESSAGES
from utils.report.runs import write_test_report
from utils.runtime import Runtime, cpu_bf16_native, machine_description, stop_on_signals
from utils.storage.checkpoint import (RunIdentity, TrainingState, commit_record, new_progress,
                                      restore_training_state)
from utils.storage.files import save_json
from utils.storage.run_folder import SUMMARY, RunFolder
from utils.train.distill import attach_teacher
from utils.train.engine import FitPlan, Trainer, fit, steps_per_epoch
from utils.train.graphed_step import GraphedStep, records_whole_steps
from utils.train.evaluation import evaluate
from utils.train.logger import ConsoleLine, History, RunLog
from utils.train.losses import balanced_class_weights
from utils.train.optim import build_optimizer, schedule_of
from utils.train.resume import (WORLD_SIZE, same_data_or_error, same_model_or_error, same_settings_or_error,
                                 schedule_change)
from utils.train.tensorboard import TensorBoardLog

MakeData = Callable[[TrainConfig, Runtime, "dict | None"], DataBundle]


@dataclass
class TrainingRun:
    """Everything a set-up run trains with; `commit_epoch` is called after each epoch."""

    config: TrainConfig
    runtime: Runtime
    folder: RunFolder
    data: DataBundle
    identity: RunIdentity
    state: TrainingState

    @property
    def eval_model(self) -> nn.Module:
        """What is validated, tested and saved as best: the weight average with --ema, else the model."""
        return self.state.ema.module if self.state.ema else self.state.model

    def commit_epoch(self, metrics: dict[str, Any], outcome: dict[str, Any], step: int) -> None:
        """Record the state after an epoch (its metrics are already in the history) in the run folder."""
        if outcome["is_best"]:
            self.state.best_weights = {name: value.detach().clone()
                                       for name, value in self.eval_model.state_dict().items()}
        self.state.progress.update(epoch=metrics["epoch"], step=step, best_val_acc=outcome["best_val_acc"],
                                   best_epoch=outcome["best_epoch"], stopped_early=outcome["stopped_early"])
        self.folder.commit(commit_record(self.state, self.identity))

    def describe_stop(self) -> str:
        """What is kept after a stop now, and the command that resumes."""
        return self.folder.describe(self.state.progress["epoch"], self.identity.script)


PRETRAINED_ARGUMENTS = ("encoder_config", "architecture", "model_args")  # what a pretrained model is built from


def model_arguments(config: TrainConfig, data: DataBundle, resumed: dict[str, Any] | None
                    ) -> tuple[dict[str, Any], PretrainedEncoder | PretrainedImageNet | None]:
    """The model's arguments from the flags and the data, and the pretrained network a new run starts
    from (None: random). A resumed run takes a pretrained network's architecture from its checkpoint."""
    kwargs = {**config.model_kwargs(), **data.model_kwargs}
    if not config.pretrained_source():
        return kwargs, None
    if resumed:
        return {**kwargs, **{key: value for key, value in resumed["model_kwargs"].items()
                             if key in PRETRAINED_ARGUMENTS}}, None
    if kind_of(data.task) == "image":
        network = load_pretrained_image_net(config.pretrained_source())
        if not known_architecture(network.architecture):
            raise PretrainedError(f"--pretrained {config.pretrained_source()}: the installed timm has no "
                                  f"architecture {network.architecture!r} (a newer timm may)")
        return {**kwargs, "architecture": network.architecture, "model_args": network.model_args}, network
    encoder = load_pretrained_encoder(config.pretrained_source())
    positions, max_length = encoder.config.get("max_position_embeddings"), data.meta.get("max_length")
    if positions and max_length and max_length > positions:
        raise ConfigError(f"--max-length {max_length} is more tokens than the encoder of {config.pretrained_source()} "
                          f"has positions ({positions}): give --max-length {positions} or less")
    return {**kwargs, "encoder_config": encoder.config}, encoder


def build_training_state(config: TrainConfig, model: nn.Module, steps_per_epoch: int, runtime: Runtime
                         ) -> tuple[TrainingState, Callable[[int], float]]:
    """The optimizer, gradient scaler (active for fp16 only) and weight average around `model`, and the
    learning rate at each step."""
    groups = parameter_groups(model, getattr(config, "encoder_lr_scale", 1.0))
    optimizer = build_optimizer(config.optimizer, groups, config.lr, config.momentum, config.nesterov,
                                config.weight_decay)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "fp16")
    schedule = schedule_of(config, steps_per_epoch, config.epochs)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True) if config.ema else None
    return TrainingState(model, optimizer, scaler, new_progress(), ema=ema), schedule


def set_up(config: TrainConfig, script_name: str, model_name: str, make_data: MakeData, runtime: Runtime,
           folder: RunFolder, resumed: dict[str, Any] | None) -> tuple[TrainingRun, Callable[[int], float]]:
    """Data, model, teacher and optimizer of a run, new or continued from the commit record `resumed`."""
    saved_config = (resumed or {}).get("config") or {}
    if resumed:
        same_settings_or_error(saved_config, config, runtime.world_size, folder.path)
    data = make_data(config, runtime, resumed["meta"] if resumed else None)
    if resumed:
        same_data_or_error(resumed["meta"], data.meta, f"{folder.path} was trained")
    for note in data.notes:
        MESSAGES.info(note)
    if config.compile and isinstance(data.train, TextBatches):
        data.train.repeat_shapes = True  # a compiled model meets few shapes
    model_kwargs, pretrained = model_arguments(config, data, resumed)
    if resumed:
        same_model_or_error(resumed["model_kwargs"], model_kwargs, folder.path)
    model = build_model(model_name, **model_kwargs)
    if pretrained is not None:
        try:
            load = load_backbone_weights if isinstance(pretrained, PretrainedImageNet) else load_pretrained_weights
            load(model, pretrained.weights)
        except ValueError as error:  # a folder whose weights are not of the architecture its config names
            raise PretrainedError(f"--pretrained {config.pretrained_source()}: {error}") from error
    if getattr(config, "gradient_checkpointing", False):
        model.enable_gradient_checkpointing()
    model = model.to(runtime.device)
    if getattr(config, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    teacher = attach_teacher(config, data, runtime, make_data, resumed and resumed.get("teacher")) \
        if config.teacher else None
    epoch_steps = steps_per_epoch(len(data.train), config.grad_accum_steps)
    state, schedule = build_training_state(config, model, epoch_steps, runtime)
    if resumed:
        restore_training_state(state, resumed, folder.file("last.pt"))
        MESSAGES.info(f"resuming {folder.path} after epoch {state.progress['epoch']} (step {state.progress['step']})")
        if saved_config.get("epochs", config.epochs) != config.epochs and config.scheduler != "none":
            MESSAGES.info(schedule_change(config, epoch_steps, saved_config["epochs"], state.progress["step"]))
    started_from = ({"source": config.pretrained_source(), "file_dtype": pretrained.file_dtype} if pretrained
                    else (resumed or {}).get("pretrained"))
    identity = RunIdentity({**vars(config), WORLD_SIZE: runtime.world_size}, script_name, model_name, model_kwargs,
                           data.task, data.class_names, data.meta, teacher, started_from)
    return TrainingRun(config, runtime, folder, data, identity, state), schedule


def class_weights_of(run: TrainingRun) -> torch.Tensor | None:
    """With --class-weights balanced, the inverse class frequencies of the training split (all processes')."""
    if run.config.class_weights != "balanced":
        return None
    return balanced_class_weights(run.data.train.labels, len(run.data.class_names)).to(run.runtime.device)


def wrap_for_training(model: nn.Module, runtime: Runtime, compile_model: bool) -> nn.Module:
    """The module to train through: DDP across processes, compiled on request (on one CUDA GPU with
    CUDA graphs, "reduce-overhead": a step's kernels launched at once). Checkpoints and evaluation use
    the plain `model` underneath."""
    if runtime.distributed:
        model = DistributedDataParallel(model, device_ids=[runtime.device.index]
                                        if runtime.device.type == "cuda" else None)
    if not compile_model:
        return model
    graphs = runtime.device.type == "cuda" and not runtime.distributed
    return torch.compile(model, mode="reduce-overhead" if graphs else None)


def run_log(run: TrainingRun) -> RunLog:
    """The run's one metrics sink: the printed line, the history (-> last.pt, metrics.jsonl), TensorBoard."""
    if not run.runtime.is_main:
        return RunLog([History(run.state.progress["history"])])
    subscribers: list[Any] = [ConsoleLine(run.config.epochs, run.config.progress),
                              History(run.state.progress["history"])]
    if run.config.tensorboard:  # on disk before each commit: see utils.train.tensorboard
        subscribers.append(TensorBoardLog(run.folder.path, run.state.progress["step"]))
    return RunLog(subscribers)


def train_epochs(run: TrainingRun, schedule: Callable[[int], float], log: RunLog) -> tuple[dict[str, Any], float]:
    """Train the remaining epochs, committing each; returns fit's outcome and the wall-clock seconds."""
    config, state, progress = run.config, run.state, run.state.progress
    if progress["epoch"] < config.epochs and not progress["stopped_early"]:
        run.folder.forget_results()
    graphs = records_whole_steps(config, run.runtime, run.data)
    module = wrap_for_training(state.model, run.runtime, config.compile and not graphs)
    MESSAGES.info(f"run folder {run.folder.path}: {run.identity.model_name} with "
                  f"{count_parameters(state.model):,} parameters on {run.runtime.device} ({run.runtime.precision}, "
                  f"{run.runtime.world_size} process{'es' if run.runtime.distributed else ''}), "
                  f"{run.data.train.num_examples * run.runtime.world_size:,} training examples")
    with stop_on_signals() as should_stop:
        trainer = Trainer(module, state.optimizer, run.runtime, schedule, state.scaler, config.label_smoothing,
                          config.grad_clip, step=progress["step"], should_stop=should_stop,
                          after_step=(lambda: state.ema.update_parameters(state.model)) if state.ema else None,
                          distill_weight=config.distill_weight if run.identity.teacher else 0.0,
                          temperature=config.temperature, class_weights=class_weights_of(run),
                          accumulate=config.grad_accum_steps)
        if graphs:
            trainer.graphed = GraphedStep(trainer)
        start = time.perf_counter()
        try:
            outcome = fit(trainer, run.data.train, run.data.val, run.eval_model,
                          FitPlan(config.epochs, config.seed, config.patience, config.select_by), progress, log,
                          on_epoch_end=lambda metrics, outcome: run.commit_epoch(metrics, outcome, trainer.step))
        except (Interrupted, NonFiniteLoss) as stop:
            log.close()
            raise type(stop)(f"{stop}; {run.describe_stop()}") from None
    return outcome, time.perf_counter() - start


def test_and_report(run: TrainingRun, outcome: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
    """Test the best-on-validation weights once, write the reports, then summary.json; returns the summary."""
    model, progress, runtime = run.eval_model, run.state.progress, run.runtime
    if run.state.best_weights is not None:
        model.load_state_dict(run.state.best_weights)
    test = evaluate(model, run.data.test, runtime, collect=True)
    best = next((row for row in progress["history"] if row["epoch"] == outcome["best_epoch"]), {})
    summary = {"best_epoch": outcome["best_epoch"], "best_val_acc": best.get("val_acc", outcome["best_val_acc"]),
               "best_val_macro_f1": best.get("val_macro_f1"),
               "test_loss": test["loss"], "test_acc": test["acc"], "test_macro_f1": test["macro_f1"],
               "select_by": run.config.select_by, "num_params": count_parameters(model),
               "train_seconds": sum(m["seconds"] for m in progress["history"]), "wall_seconds": wall_seconds,
               "epochs_run": progress["epoch"], "stopped_early": outcome["stopped_early"],
               "device": str(runtime.device), "precision": runtime.precision, "world_size": runtime.world_size,
               "cpu_bf16_native": cpu_bf16_native(), "machine": machine_description(), "run_dir": run.folder.path}
    if run.identity.teacher:
        summary["teacher"] = run.identity.teacher
    if runtime.is_main:
        MESSAGES.info(write_test_report(run.folder.path, test, run.data))
        save_json(run.folder.file(SUMMARY), summary)  # last: its presence marks a finished run
        MESSAGES.info(f"test accuracy {test['acc']:.4f} (loss {test['loss']:.4f}) with the best-on-validation "
                      f"weights of epoch {outcome['best_epoch']}; {summary['train_seconds']:.0f}s of training; "
                      f"results in {run.folder.path}")
    return summary
