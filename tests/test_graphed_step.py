"""--compile on one CUDA GPU records the whole training step as a CUDA graph (utils.train.graphed_step):
what it needs from the optimizer works and is saved plainly on any machine; on a GPU (skipped without
one) the recorded steps train as the eager ones do."""
from __future__ import annotations

import os

import pytest
import torch

import train_cnn
from conftest import image_args
from models import build_model
from utils.storage.checkpoint import load_checkpoint, plain_optimizer_state
from utils.train.optim import build_optimizer, set_lr


def test_a_learning_rate_on_the_device_is_filled_in_place_and_saved_as_a_number():
    model = build_model("dnn", hidden_sizes=(8, 8))
    optimizer = build_optimizer("adamw", model.parameters(), 1e-3)
    rate = torch.tensor(1e-3)
    optimizer.param_groups[0].update(lr=rate, capturable=True)
    set_lr(optimizer, 5e-4)
    assert optimizer.param_groups[0]["lr"] is rate and float(rate) == pytest.approx(5e-4)
    saved = plain_optimizer_state(optimizer)
    assert saved["param_groups"][0]["lr"] == pytest.approx(5e-4) and saved["param_groups"][0]["capturable"] is False
    fresh = build_optimizer("adamw", build_model("dnn", hidden_sizes=(8, 8)).parameters(), 1e-3)
    fresh.load_state_dict(saved)  # what a resume on a CPU does with a GPU run's checkpoint
    assert fresh.param_groups[0]["lr"] == pytest.approx(5e-4) and not fresh.param_groups[0]["capturable"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_recorded_steps_train_as_eager_steps_on_a_gpu(runs, tmp_path, monkeypatch):
    from utils.train.graphed_step import GraphedStep

    recorded, real_record = [], GraphedStep.record
    monkeypatch.setattr(GraphedStep, "record", lambda step, *batch: (recorded.append(1), real_record(step, *batch)))
    flags = ("--val-size", "20", "--epochs", "3", "--batch-size", "16", "--precision", "fp32", "--device", "cuda")
    summaries = {name: train_cnn.main(image_args(runs["fashion"], str(tmp_path / name), *flags, *extra))
                 for name, extra in (("eager", ()), ("graphed", ("--compile",)))}
    runs_kept = {name: load_checkpoint(os.path.join(tmp_path, name, "last.pt")) for name in summaries}
    eager, graphed = (runs_kept[name]["history"] for name in ("eager", "graphed"))
    assert [row["train_loss"] for row in graphed] == pytest.approx([row["train_loss"] for row in eager], rel=1e-2)
    assert runs_kept["graphed"]["optimizer"]["param_groups"][0]["capturable"] is False
    assert recorded == [1]  # one recording, replayed for every full batch after the first steps
