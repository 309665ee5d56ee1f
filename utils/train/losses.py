"""The training loss: cross-entropy, mixed with a teacher's softened outputs when distilling."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None,
                      weight: float, temperature: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """(1 - weight) * cross-entropy(labels) + weight * T^2 * KL(softmax(teacher/T) || softmax(student/T)),
    the mean over the batch (Hinton et al. 2015); plain cross-entropy without teacher logits or weight."""
    hard = F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if teacher_logits is None or weight == 0:
        return hard
    soft = temperature ** 2 * F.kl_div(F.log_softmax(logits / temperature, dim=1),
                                       F.log_softmax(teacher_logits / temperature, dim=1),
                                       reduction="batchmean", log_target=True)
    return (1 - weight) * hard + weight * soft
