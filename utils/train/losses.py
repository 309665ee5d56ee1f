"""The training loss: cross-entropy, mixed with a teacher's softened outputs when distilling."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None,
                      weight: float, temperature: float, label_smoothing: float = 0.0,
                      class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """(1 - weight) * cross-entropy(labels) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T)),
    the mean over the batch (Hinton et al. 2015); plain cross-entropy without teacher logits or weight.
    `class_weights` weights each example's cross-entropy by its class (see balanced_class_weights)."""
    hard = F.cross_entropy(logits, targets, weight=class_weights, label_smoothing=label_smoothing)
    if teacher_logits is None or weight == 0:
        return hard
    soft = temperature ** 2 * F.kl_div(F.log_softmax(logits / temperature, dim=1),
                                       F.log_softmax(teacher_logits / temperature, dim=1),
                                       reduction="batchmean", log_target=True)
    return (1 - weight) * hard + weight * soft


def balanced_class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights inversely proportional to each class's count among `labels` (N / (C * count); a class
    without examples gets weight 0): every class then weighs as much in the loss."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    weights = torch.where(counts > 0, len(labels) / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()
