"""Evaluation over a whole split: loss, accuracy and macro-F1, exact across processes, and on
request every prediction in the split's own order. Sums and counts stay on the device; the host
reads them once per split."""
from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from utils.runtime import Runtime, all_reduce_sum, autocast


def to_device(inputs: Any, device: torch.device) -> Any:
    """Move a batch's inputs to `device` (non-blocking): a tensor, or of a text batch's (token_ids,
    lengths) the token ids. Lengths stay on the host, where a recurrent model packs its sequences
    (a copy back from the device would make the step wait) and from where masks copy them."""
    if isinstance(inputs, (tuple, list)):
        token_ids, *rest = inputs
        return type(inputs)([token_ids.to(device, non_blocking=True), *rest])
    return inputs.to(device, non_blocking=True)


def batch_size_of(targets: torch.Tensor) -> int:
    """Number of examples in a batch."""
    return int(targets.shape[0])


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Iterable, runtime: Runtime, collect: bool = False) -> dict[str, Any]:
    """Mean loss and accuracy over all batches, summed across processes (exact for the whole split).

    With `collect`, also returns `predictions`, `targets`, `probabilities` and `logits` of the
    whole split, in the split's own order (gathered from every process).
    """
    model.eval()
    device = runtime.device
    totals = torch.zeros(2, device=device, dtype=torch.float64)  # summed loss, right predictions
    seen = 0
    predictions, targets_seen, logits_seen = [], [], []
    tally = None  # (3, classes) on the device: each class's right predictions, predictions and labels
    for inputs, targets in batches:
        inputs, targets = to_device(inputs, device), targets.to(device, non_blocking=True)
        with autocast(runtime):
            logits = model(inputs).float()
        predicted = logits.argmax(dim=1)
        totals += torch.stack([F.cross_entropy(logits, targets, reduction="sum").double(),
                               (predicted == targets).sum().double()])
        seen += batch_size_of(targets)
        counts = class_counts(predicted, targets, logits.size(1))
        tally = counts if tally is None else tally + counts
        if collect:  # kept on the device, read once below
            predictions.append(predicted)
            targets_seen.append(targets)
            logits_seen.append(logits)
    read = totals if tally is None else torch.cat([totals, tally.flatten().double()])
    loss_sum, correct, *tallies = read.tolist()  # the split's one host read
    loss_sum, correct, seen, *tallies = all_reduce_sum([loss_sum, correct, seen, *tallies], runtime)
    result: dict[str, Any] = {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1), "count": int(seen),
                              "macro_f1": macro_f1(tallies)}
    if collect:
        served = (batches.example_order(),
                  *(torch.cat(parts).cpu() for parts in (predictions, targets_seen, logits_seen)))
        order, predicted, targets, all_logits = gather_from_processes(served, runtime)
        inverse = order.argsort()
        result.update(predictions=predicted[inverse], targets=targets[inverse], logits=all_logits[inverse],
                      probabilities=torch.softmax(all_logits[inverse], dim=1))
    return result


def class_counts(predicted: torch.Tensor, targets: torch.Tensor, classes: int) -> torch.Tensor:
    """(3, classes): each class's right predictions, predictions and labels in a batch, counted where
    the tensors are (scatter-adds: no data-dependent shape, so the device never waits for the host)."""
    ones = torch.ones_like(targets)
    counts = torch.zeros(3, classes, dtype=torch.long, device=targets.device)
    counts[0].scatter_add_(0, targets, (predicted == targets).long())
    counts[1].scatter_add_(0, predicted, ones)
    counts[2].scatter_add_(0, targets, ones)
    return counts


def macro_f1(tallies: list[float]) -> float:
    """The mean F1 over classes that occur as a label or a prediction, from per-class counts laid out as
    [right predictions..., predictions..., labels...]."""
    classes = len(tallies) // 3
    hits, guesses, truths = tallies[:classes], tallies[classes:2 * classes], tallies[2 * classes:]
    scores = [2 * hit / (guess + truth) for hit, guess, truth in zip(hits, guesses, truths) if guess + truth]
    return sum(scores) / len(scores) if scores else 0.0


def gather_from_processes(tensors: tuple[torch.Tensor, ...], runtime: Runtime) -> tuple[torch.Tensor, ...]:
    """Concatenate each of `tensors` over all processes (CPU tensors; unchanged when alone)."""
    if not runtime.distributed:
        return tensors
    gathered: list = [None] * runtime.world_size
    dist.all_gather_object(gathered, tensors)
    return tuple(torch.cat([part[i] for part in gathered]) for i in range(len(tensors)))
