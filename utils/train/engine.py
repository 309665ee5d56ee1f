"""The one training engine: a single step path for every model, device and precision.

`train_one_epoch` and `evaluate` (utils.train.evaluation) take plain values; `fit` loops over epochs
and calls back after each one so the caller can save checkpoints. Batches are `(inputs, targets)`,
where inputs is a tensor or a tuple of tensors (token ids and lengths); an optimizer step adds up the
gradients of `Trainer.accumulate` of them, and every epoch ends on a step. Metrics go to one sink (utils.train.logger.
RunLog), reported once per LOG_EVERY steps and once per epoch.

The step never waits for the device: losses, counts and whether a loss was not finite stay on the
device, and the host reads them at declared points only, every LOG_EVERY steps (the running loss,
the non-finite check and, under torchrun, whether any process was asked to stop) and at the end of
an epoch. A non-finite loss therefore stops the run at the next such point, naming the steps it
happened between; nothing after the last commit is kept, so a resume stays exact.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn

from utils.errors import Interrupted, NonFiniteLoss
from utils.runtime import Runtime, all_reduce_sum, autocast, epoch_seed, seed_everything
from utils.train.evaluation import batch_size_of, evaluate, to_device
from utils.train.logger import RunLog
from utils.train.losses import distillation_loss
from utils.train.optim import set_lr


LOG_EVERY = 20  # optimizer steps between two host reads: the running loss, the non-finite check, a stop


@dataclass
class Trainer:
    """What one optimizer step needs, and the count of steps taken so far."""

    model: nn.Module  # the module to call: possibly wrapped by DDP or torch.compile
    optimizer: torch.optim.Optimizer
    runtime: Runtime
    lr_at_step: Callable[[int], float]
    scaler: torch.amp.GradScaler
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    step: int = 0
    should_stop: Callable[[], bool] = field(default=lambda: False)
    after_step: Callable[[], None] | None = None  # runs after each optimizer step (e.g. a weight average)
    distill_weight: float = 0.0  # weight of the teacher's term, for batches that carry teacher logits
    temperature: float = 1.0
    class_weights: torch.Tensor | None = None  # of each class in the cross-entropy (None: equal)
    accumulate: int = 1  # micro-batches whose gradients add up to one optimizer step
    graphed: Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None] | None = None  # a recorded step


def gradient_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """A context in which a backward pass all-reduces the gradients across processes (`sync`), or only
    adds them up locally (DDP's no_sync; a model that is not DDP always just adds them up)."""
    no_sync = getattr(model, "no_sync", None)
    return contextlib.nullcontext() if sync or no_sync is None else no_sync()


def train_step(trainer: Trainer, micro_batches: list[tuple[Any, torch.Tensor, torch.Tensor | None]]
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One optimizer step on the gradients of `micro_batches` `(inputs, targets, teacher_logits or None)`;
    returns each one's (detached) mean loss and predicted classes (new tensors: the logits of a model
    compiled with CUDA graphs are overwritten by its next call). Each micro-batch's mean loss is weighted by its
    share of the step's examples, so K micro-batches of B make the same step as one batch of K*B;
    gradients are all-reduced across processes once, on the last. With teacher logits the loss is the
    distillation loss with the trainer's weight and temperature."""
    set_lr(trainer.optimizer, trainer.lr_at_step(trainer.step))
    if trainer.graphed is not None and len(micro_batches) == 1:  # utils.train.graphed_step
        replayed = trainer.graphed(*micro_batches[0][:2])
        if replayed is not None:
            trainer.step += 1
            return [replayed]
    trainer.optimizer.zero_grad(set_to_none=True)
    examples = sum(batch_size_of(targets) for _, targets, _ in micro_batches)
    results = []
    for index, (inputs, targets, teacher_logits) in enumerate(micro_batches):
        with gradient_sync(trainer.model, sync=index == len(micro_batches) - 1):
            with autocast(trainer.runtime):
                logits = trainer.model(inputs)
                loss = distillation_loss(logits.float(), targets, teacher_logits, trainer.distill_weight,
                                         trainer.temperature, trainer.label_smoothing, trainer.class_weights)
            trainer.scaler.scale(loss * (batch_size_of(targets) / examples)).backward()
        results.append((loss.detach(), logits.detach().argmax(dim=1)))
    if trainer.grad_clip > 0:
        trainer.scaler.unscale_(trainer.optimizer)
        nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.grad_clip)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.step += 1
    if trainer.after_step is not None:
        trainer.after_step()
    return results


def optimizer_steps(batches: Iterable, accumulate: int) -> Iterable[list[tuple[Any, torch.Tensor, Any]]]:
    """The batches `(inputs, targets[, teacher_logits])` in groups of `accumulate`, each batch as
    `(inputs, targets, teacher_logits or None)`; the last group of an epoch may be smaller, so that
    every epoch ends on an optimizer step."""
    group: list = []
    for inputs, targets, *teacher_logits in batches:  # utils.train.distill.TeacherBatches add teacher logits
        group.append((inputs, targets, teacher_logits[0] if teacher_logits else None))
        if len(group) == accumulate:
            yield group
            group = []
    if group:
        yield group


def steps_per_epoch(batches: int, accumulate: int) -> int:
    """Optimizer steps in an epoch of `batches` micro-batches taken `accumulate` at a time."""
    return math.ceil(batches / accumulate)


def stop_requested(trainer: Trainer, agree: bool = True) -> bool:
    """True when this process was asked to stop; under torchrun, with `agree`, when any process was
    (all processes agree, so none is left waiting). Without `agree` a process in a group answers
    False: the group decides together at its next agreement point."""
    stop = trainer.should_stop()
    if not trainer.runtime.distributed:
        return stop
    if not agree:
        return False
    flag = torch.tensor([float(stop)], device=trainer.runtime.device if trainer.runtime.device.type == "cuda"
                        else "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def raise_if_not_finite(flags: list[float], epoch: int, steps: tuple[int, int]) -> None:
    """Raise NonFiniteLoss when the non-finite flag read from the device (`flags[0]`) is set."""
    if flags[0]:
        raise NonFiniteLoss(f"the loss became NaN or infinite at epoch {epoch}, between steps {steps[0]} and "
                            f"{steps[1]} (try a lower --lr or --grad-clip)")


def train_one_epoch(trainer: Trainer, batches: Iterable, epoch: int, log: RunLog | None = None) -> dict[str, float]:
    """Train on every batch once; returns train_loss, train_acc, lr, seconds, samples_per_s.

    Batches are `(inputs, targets)`, or `(inputs, targets, teacher_logits)` to distil. Every LOG_EVERY
    steps the running loss, the last step's loss and the speed go to `log`."""
    log = log or RunLog()
    trainer.model.train()
    device = trainer.runtime.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    not_finite = torch.zeros((), device=device, dtype=torch.bool)  # any loss since the last read
    seen, checked_step = 0, trainer.step
    start = time.perf_counter()
    log.epoch_begins(epoch, steps_per_epoch(len(batches), trainer.accumulate), trainer.step)
    for group in optimizer_steps(batches, trainer.accumulate):
        group = [(to_device(inputs, device), targets.to(device, non_blocking=True), teacher_logits)
                 for inputs, targets, teacher_logits in group]
        for (loss, predicted), (_, targets, _) in zip(train_step(trainer, group), group):
            not_finite |= ~torch.isfinite(loss)
            count = batch_size_of(targets)
            loss_sum += loss * count
            correct += (predicted == targets).sum()
            seen += count
        if trainer.step % LOG_EVERY == 0:  # a declared host read: one transfer for all three values
            flags = torch.stack([not_finite.float(), loss_sum, loss]).tolist()
            raise_if_not_finite(flags, epoch, (checked_step, trainer.step))
            checked_step = trainer.step
            log.step(trainer.step, {"train_loss": flags[1] / seen, "step_loss": flags[2],
                                    "samples_per_s": seen / (time.perf_counter() - start)})
        if stop_requested(trainer, agree=trainer.step % LOG_EVERY == 0):
            raise Interrupted(f"stopped during epoch {epoch}")
    flags = torch.stack([not_finite.float(), loss_sum, correct.float()]).tolist()  # the epoch's one read
    raise_if_not_finite(flags, epoch, (checked_step, trainer.step))
    if stop_requested(trainer):
        raise Interrupted(f"stopped at the end of epoch {epoch}")
    seconds = time.perf_counter() - start
    loss_total, correct_total, seen_total = all_reduce_sum([flags[1], flags[2], seen], trainer.runtime)
    return {"train_loss": loss_total / max(seen_total, 1), "train_acc": correct_total / max(seen_total, 1),
            "lr": trainer.lr_at_step(max(trainer.step - 1, 0)), "seconds": seconds,
            "samples_per_s": seen_total / seconds if seconds > 0 else 0.0}


@dataclass(frozen=True)
class FitPlan:
    """What decides how long a run trains and which epoch is kept: epochs in all, the seed of each epoch's
    randomness, early stopping after `patience` epochs without a better validation `select_by` (0: never)."""

    epochs: int
    seed: int = 0
    patience: int = 0
    select_by: str = "acc"  # "acc" or "macro_f1"


def fit(trainer: Trainer, train_batches: Any, val_batches: Iterable, eval_model: nn.Module, plan: FitPlan,
        progress: dict[str, Any] | None = None, log: RunLog | None = None,
        on_epoch_end: Callable[[dict[str, float], dict[str, Any]], None] = lambda metrics, outcome: None
        ) -> dict[str, Any]:
    """Train the epochs after `progress["epoch"]` up to `plan.epochs`, validating after each; returns the
    best epoch and its value.

    `progress` (a run's: "epoch", "best_epoch", "best_val_acc", "stopped_early"; none: a new run) says
    where a resumed run stands. Each epoch reseeds the global random generators (dropout) from (seed,
    epoch, rank), so a run resumed after epoch k continues exactly as if it had never stopped.
    `eval_model` is the unwrapped module (evaluation needs no gradient sync). Each epoch's metrics
    (with `is_best`) go to `log` once; then `on_epoch_end(metrics, outcome)` runs, e.g. to commit a
    checkpoint; `outcome` holds `is_best`, `best_epoch`, `best_val_acc` and `stopped_early`, so the
    early-stop decision is committed with the epoch that made it. An epoch whose validation loss is
    not finite is never the best. A run resumed with `stopped_early` trains no further; the early stop
    is said through `log` (its `note` event). `best_val_acc` holds the best epoch's `select_by` value.
    """
    progress = {"epoch": 0, "best_epoch": 0, "best_val_acc": -math.inf, "stopped_early": False, **(progress or {})}
    epochs, seed, patience, select_by = plan.epochs, plan.seed, plan.patience, plan.select_by
    start_epoch, best_epoch, best_val_acc, stopped_early = (progress["epoch"] + 1, progress["best_epoch"],
                                                            progress["best_val_acc"], progress["stopped_early"])
    log = log or RunLog()
    outcome = {"is_best": False, "best_epoch": best_epoch, "best_val_acc": best_val_acc,
               "stopped_early": stopped_early}
    for epoch in range(start_epoch, epochs + 1):
        if outcome["stopped_early"]:
            break
        train_batches.set_epoch(epoch)
        seed_everything(epoch_seed(seed, epoch, trainer.runtime.rank))
        train_metrics = train_one_epoch(trainer, train_batches, epoch, log)
        val = evaluate(eval_model, val_batches, trainer.runtime)
        metrics = {"epoch": epoch, **train_metrics, "val_loss": val["loss"], "val_acc": val["acc"],
                   "val_macro_f1": val["macro_f1"]}
        is_best = math.isfinite(val["loss"]) and val[select_by] > outcome["best_val_acc"]
        if is_best:
            outcome.update(best_val_acc=val[select_by], best_epoch=epoch)
        outcome.update(is_best=is_best, stopped_early=bool(patience) and epoch - outcome["best_epoch"] >= patience)
        log.epoch(metrics, is_best, trainer.step)
        on_epoch_end(metrics, dict(outcome))
        if outcome["stopped_early"]:
            log.note(f"early stop: validation {select_by} has not improved for {patience} epochs")
    return {key: outcome[key] for key in ("best_epoch", "best_val_acc", "stopped_early")}
