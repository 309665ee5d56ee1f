"""The whole training step as one CUDA graph (--compile on one CUDA GPU, for image batches with Adam
or AdamW, one batch per step, no teacher, weight average or fp16 scaler): forward, loss, backward,
gradient clipping and the optimizer's update are recorded once and then replayed, so the host no
longer launches a step's many small kernels one by one. The first GRAPH_AFTER_STEPS steps run
eagerly (cuDNN chooses its algorithms and the optimizer creates its state); batches of another shape
than the recorded one (an epoch's last, smaller one) take the eager step. The learning rate lives
in a tensor on the device that each step fills, and the optimizer is made `capturable`; its saved
state is saved as a plain one (utils.storage.checkpoint), so that a checkpoint resumes anywhere.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from data.image_batches import ImageBatches
from utils.runtime import Runtime, autocast
from utils.train.losses import distillation_loss

GRAPH_AFTER_STEPS = 3


def records_whole_steps(config: Any, runtime: Runtime, data: Any) -> bool:
    """Whether --compile records each training step as one CUDA graph (utils.train.graphed_step): one
    CUDA process training on image batches with Adam or AdamW, one batch per step, without a teacher,
    weight average or fp16 scaler. Otherwise --compile is torch.compile of the model."""
    return (config.compile and runtime.device.type == "cuda" and not runtime.distributed
            and isinstance(data.train, ImageBatches) and config.optimizer in ("adam", "adamw")
            and config.grad_accum_steps == 1 and not config.teacher and not config.ema and runtime.precision != "fp16")


class GraphedStep:
    """Replays the recorded step for batches of its shape; `None` for the others (take the eager step)."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs = self.targets = self.loss = self.predicted = None
        for group in trainer.optimizer.param_groups:  # the update reads its rate and step count on the device
            group["capturable"] = True
            group["lr"] = torch.tensor(float(group["lr"]), device=trainer.runtime.device)
        warnings.filterwarnings("ignore", message=".*capturable=True.*running without.*graph capture")

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.graph is None:
            if self.trainer.step < GRAPH_AFTER_STEPS:
                return None
            self.record(inputs, targets)
        if inputs.shape != self.inputs.shape or inputs.stride() != self.inputs.stride():
            return None
        self.inputs.copy_(inputs, non_blocking=True)
        self.targets.copy_(targets, non_blocking=True)
        self.graph.replay()
        return self.loss.clone(), self.predicted.clone()  # the next replay overwrites them

    def record(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Record one step on static copies of this batch (recording runs nothing: __call__ replays it),
        on a side stream warmed up by one forward and backward pass whose effects are undone."""
        trainer = self.trainer
        self.inputs, self.targets = inputs.clone(), targets.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        buffers = {name: value.clone() for name, value in trainer.model.named_buffers()}  # batch-norm statistics
        with torch.cuda.stream(stream):  # the stream's first kernels (library handles, workspaces) run here
            self.forward_backward(cache=True)
        trainer.model.load_state_dict(buffers, strict=False)
        torch.cuda.current_stream().wait_stream(stream)
        trainer.optimizer.zero_grad(set_to_none=True)  # the graph's backward makes the gradients it updates with
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream):
            loss, logits = self.forward_backward(cache=False)  # a cache of cast weights would outlive the recording
            if trainer.grad_clip > 0:
                nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.grad_clip)
            trainer.optimizer.step()
            self.loss, self.predicted = loss.detach(), logits.detach().argmax(dim=1)

    def forward_backward(self, cache: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and logits of the static batch, its gradients computed."""
        trainer = self.trainer
        with autocast(trainer.runtime, cache=cache):
            logits = trainer.model(self.inputs)
            loss = distillation_loss(logits.float(), self.targets, None, 0.0, trainer.temperature,
                                     trainer.label_smoothing, trainer.class_weights)
        loss.backward()
        return loss, logits
