"""The training engine, schedules, checkpoints and atomic writes."""
from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from conftest import ROOT
from tiny_data import separable_images
from data.bundle import ImageSpec, Order
from data.image_batches import ImageBatches
from models import build_model
from utils.errors import CheckpointError
from utils.storage.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import NonFiniteLoss
from utils.train.engine import FitPlan, Trainer, fit, steps_per_epoch, train_one_epoch, train_step
from utils.train.evaluation import evaluate
from utils.train.optim import build_optimizer, lr_schedule
from utils.runtime import Runtime

CPU = Runtime(torch.device("cpu"), "fp32")


def make_trainer(model: nn.Module, lr: float = 1e-2, total_steps: int = 100) -> Trainer:
    optimizer = build_optimizer("adam", model.parameters(), lr)
    return Trainer(model, optimizer, CPU, lr_schedule("none", lr, total_steps), torch.amp.GradScaler("cpu", enabled=False))


def separable_batches(count: int = 200, batch_size: int = 32, shuffle: bool = True) -> ImageBatches:
    images, labels = separable_images(count, seed=0)
    return ImageBatches(torch.from_numpy(images), torch.from_numpy(labels).long(), batch_size,
                        ImageSpec(0.3, 0.3), Order(shuffle=shuffle))


def test_loss_falls_on_separable_data():
    torch.manual_seed(0)
    model = build_model("dnn", hidden_sizes=(32, 32))
    trainer = make_trainer(model)
    batches = separable_batches()
    first = train_one_epoch(trainer, batches, 1)
    for epoch in range(2, 6):
        batches.set_epoch(epoch)
        last = train_one_epoch(trainer, batches, epoch)
    assert last["train_loss"] < 0.5 * first["train_loss"]
    assert evaluate(model, separable_batches(shuffle=False), CPU)["acc"] > 0.9


def test_optimizer_steps_once_per_batch():
    model = build_model("dnn", hidden_sizes=(8, 8))
    trainer = make_trainer(model)
    calls = []
    trainer.optimizer.register_step_post_hook(lambda optimizer, args, kwargs: calls.append(1))
    batches = separable_batches(count=100, batch_size=32)
    train_one_epoch(trainer, batches, 1)
    assert len(calls) == len(batches) == trainer.step == 4


def test_a_non_finite_loss_stops_at_the_next_read_naming_the_steps_between():
    class Exploding(nn.Module):
        """Finite until step 25, NaN from then on."""

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1))
            self.calls = 0

        def forward(self, inputs):
            self.calls += 1
            return self.weight * torch.full((len(inputs), 10), float("nan") if self.calls >= 25 else 0.0)

    trainer = make_trainer(Exploding())
    batches = separable_batches(count=8 * 30, batch_size=8)  # 30 steps: reads after step 20 and at the end
    with pytest.raises(NonFiniteLoss, match="at epoch 3, between steps 20 and 30"):
        train_one_epoch(trainer, batches, 3)
    assert trainer.step == 30


def test_fit_stops_early_with_patience():
    torch.manual_seed(0)
    model = build_model("dnn", hidden_sizes=(8, 8))
    trainer = make_trainer(model, lr=0.0)  # nothing improves after epoch 1
    outcome = fit(trainer, separable_batches(), separable_batches(shuffle=False), model, FitPlan(10, patience=2))
    assert outcome["stopped_early"] and outcome["best_epoch"] == 1 and trainer.step == 3 * 7


def test_evaluate_returns_predictions_in_split_order():
    model = build_model("dnn", hidden_sizes=(8, 8))
    result = evaluate(model, separable_batches(count=50, batch_size=16, shuffle=False), CPU, collect=True)
    _, labels = separable_images(50, seed=0)
    assert result["targets"].tolist() == labels.tolist() and result["probabilities"].shape == (50, 10)


@pytest.mark.parametrize("name", ["none", "step", "cosine", "onecycle"])
def test_schedules(name):
    schedule = lr_schedule(name, 1.0, total_steps=100, warmup_steps=10, step_size=40)
    values = [schedule(step) for step in range(100)]
    assert max(values) <= 1.0 + 1e-9 and min(values) >= 0
    if name == "cosine":
        assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0) and values[-1] < 0.01
    if name == "onecycle":
        assert values[0] < 0.05 and max(values) == pytest.approx(1.0, abs=0.01) and values[-1] < 0.01
    if name == "step":
        assert values[50] == pytest.approx(0.1) and values[90] == pytest.approx(0.01)


def test_checkpoint_round_trip_reproduces_outputs_exactly(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn", batch_norm=True).eval()
    inputs = torch.randn(3, 1, 28, 28)
    path = str(tmp_path / "model.pt")
    save_checkpoint(path, {"model": model.state_dict(), "model_kwargs": {"batch_norm": True}, "epoch": 3})
    loaded = load_checkpoint(path)
    clone = build_model("cnn", **loaded["model_kwargs"]).eval()
    clone.load_state_dict(loaded["model"])
    assert torch.equal(model(inputs), clone(inputs)) and loaded["epoch"] == 3
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(str(path))


WRITER = """
import sys, torch
sys.path.insert(0, {root!r})
from utils.storage.checkpoint import save_checkpoint
step = 0
while True:
    step += 1
    save_checkpoint({path!r}, {{"step": step, "weights": torch.full((300_000,), float(step))}})
    print(step, flush=True)
"""


def test_kill_during_write_leaves_last_complete_checkpoint(tmp_path):
    path = str(tmp_path / "last.pt")
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=ROOT, path=path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        writer.stdout.readline()  # at least one checkpoint is complete
        for delay in (0.013, 0.029, 0.047):
            time.sleep(delay)
            loaded = load_checkpoint(path)
            assert torch.equal(loaded["weights"], torch.full((300_000,), float(loaded["step"])))
    finally:
        writer.kill()
        writer.wait()
    loaded = load_checkpoint(path)  # after kill -9, wherever the write was
    assert torch.equal(loaded["weights"], torch.full((300_000,), float(loaded["step"])))
    assert math.isfinite(loaded["step"])


def test_an_epoch_with_non_finite_validation_loss_is_never_the_best():
    class NaNWhenEvaluating(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(28 * 28, 10)

        def forward(self, images):
            logits = self.linear(images.flatten(1))
            return logits if self.training else logits * float("nan")

    model = NaNWhenEvaluating()
    outcomes = []
    result = fit(make_trainer(model), separable_batches(), separable_batches(shuffle=False), model, FitPlan(2),
                 on_epoch_end=lambda metrics, outcome: outcomes.append((metrics["val_loss"], outcome["is_best"])))
    assert all(math.isnan(loss) and not is_best for loss, is_best in outcomes)
    assert result["best_epoch"] == 0


def test_a_resumed_early_stop_trains_nothing_more():
    model = build_model("dnn", hidden_sizes=(8, 8))
    trainer = make_trainer(model)
    result = fit(trainer, separable_batches(), separable_batches(shuffle=False), model, FitPlan(5),
                 {"epoch": 2, "best_epoch": 1, "best_val_acc": 0.5, "stopped_early": True})
    assert trainer.step == 0 and result == {"best_epoch": 1, "best_val_acc": 0.5, "stopped_early": True}


class CountsNoSync(nn.Module):
    """A model that, like DDP, offers no_sync; counts the backward passes run inside it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.unsynced = model, 0

    def forward(self, inputs):
        return self.model(inputs)

    @contextlib.contextmanager
    def no_sync(self):
        self.unsynced += 1
        yield


@pytest.mark.parametrize("sizes", [(4, 4, 4), (5, 4, 3)])
def test_k_micro_batches_make_the_step_of_one_batch_of_all_their_examples(sizes):
    images, labels = separable_images(sum(sizes), seed=1)
    images = (torch.from_numpy(images).float() / 255)[:, None]
    labels = torch.from_numpy(labels).long()
    torch.manual_seed(0)
    whole, parts = build_model("dnn", hidden_sizes=(16, 16)), build_model("dnn", hidden_sizes=(16, 16))
    parts.load_state_dict(whole.state_dict())
    spy = CountsNoSync(parts)
    for model in (whole, spy):
        optimizer = build_optimizer("sgd", model.parameters(), 0.5)
        trainer = Trainer(model, optimizer, CPU, lr_schedule("none", 0.5, 10), torch.amp.GradScaler("cpu", enabled=False),
                          grad_clip=1.0)
        cuts = torch.tensor((0, *sizes)).cumsum(0).tolist() if model is spy else [0, sum(sizes)]
        losses = train_step(trainer, [(images[a:b], labels[a:b], None) for a, b in zip(cuts, cuts[1:])])
        assert trainer.step == 1 and len(losses) == len(cuts) - 1
    assert spy.unsynced == len(sizes) - 1  # gradients all-reduced once, with the last micro-batch
    moved = [not torch.equal(a, b) for a, b in zip(whole.parameters(), build_model("dnn", hidden_sizes=(16, 16)).parameters())]
    assert all(moved)
    for name, tensor in whole.state_dict().items():
        assert torch.allclose(tensor, parts.state_dict()[name], atol=1e-6), name


def test_an_epoch_of_accumulated_steps_ends_on_a_step_and_the_schedule_counts_steps():
    model = build_model("dnn", hidden_sizes=(8, 8))
    rates = []
    trainer = Trainer(model, build_optimizer("sgd", model.parameters(), 0.1), CPU, lambda step: rates.append(step) or 0.1,
                      torch.amp.GradScaler("cpu", enabled=False), accumulate=3)
    batches = separable_batches(count=100, batch_size=16)  # 7 batches: steps of 3, 3 and 1
    train_one_epoch(trainer, batches, 1)
    assert trainer.step == steps_per_epoch(len(batches), 3) == 3
    assert rates[:3] == [0, 1, 2]
