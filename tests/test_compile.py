"""--compile: the model is traced by torch.compile (here with the aot_eager backend, which traces like
inductor but generates no code, so the test takes seconds), trains as the plain model does, resumes
exactly, and text batches come in a few repeating shapes."""
from __future__ import annotations

import os

import pytest
import torch

import train_dnn
import train_rnn
from conftest import image_args, interrupt_after_commit, same_weights, text_args
from data.text import TextBatches, padded_width
from models import build_model
from utils.storage.checkpoint import load_checkpoint


@pytest.fixture
def traced_without_codegen(monkeypatch) -> list[dict]:
    """torch.compile with the aot_eager backend; returns the keyword arguments of each call."""
    calls, real = [], torch.compile

    def compile_eagerly(model, **kwargs):
        calls.append(kwargs)
        return real(model, backend="aot_eager")
    monkeypatch.setattr(torch, "compile", compile_eagerly)
    yield calls
    torch._dynamo.reset()


def test_a_compiled_run_trains_as_the_plain_one_and_resumes_exactly(runs, tmp_path, traced_without_codegen,
                                                                    monkeypatch):
    flags = ("--hidden1-size", "16", "--hidden2-size", "8", "--val-size", "20", "--device", "cpu")
    plain, straight, resumed = (str(tmp_path / name) for name in ("plain", "straight", "resumed"))
    train_dnn.main(image_args(runs["fashion"], plain, *flags))
    train_dnn.main(image_args(runs["fashion"], straight, *flags, "--compile"))
    assert traced_without_codegen == [{"mode": None}]  # on a CPU: no CUDA graphs
    with pytest.MonkeyPatch.context() as interruption:
        interrupt_after_commit(interruption, epoch=1)
        with pytest.raises(SystemExit):
            train_dnn.main(image_args(runs["fashion"], resumed, *flags, "--compile"))
    train_dnn.main(["--resume", resumed, "--no-progress"])
    last = {name: load_checkpoint(os.path.join(path, "last.pt")) for name, path in
            (("plain", plain), ("straight", straight), ("resumed", resumed))}
    assert same_weights(last["straight"]["model"], last["resumed"]["model"])
    for name, value in last["plain"]["model"].items():
        assert torch.allclose(value, last["straight"]["model"][name], atol=1e-5), name


def test_compiled_text_batches_repeat_few_shapes(runs, tmp_path, traced_without_codegen, monkeypatch):
    widths = set()
    real_forward = build_model("rnn", vocab_size=10, num_classes=2).__class__.forward

    def recording_forward(model, inputs):
        if model.training:  # evaluation runs the plain model on plain batches
            widths.add(inputs[0].size(1))
        return real_forward(model, inputs)
    monkeypatch.setattr("models.rnn.RecurrentClassifier.forward", recording_forward)
    train_rnn.main(text_args(runs["trec"], str(tmp_path / "run"), "--embed-dim", "8", "--hidden-size", "8",
                             "--epochs", "1", "--compile"))
    assert widths and widths <= {8, 16, 32, 64, max(widths)}  # powers of two, or all that the split's longest needs


def test_padding_to_repeating_shapes_leaves_predictions_as_they_were():
    torch.manual_seed(0)
    assert [padded_width(n, 64) for n in (1, 8, 9, 17, 33, 64)] == [8, 8, 16, 32, 64, 64]
    assert padded_width(40, 40) == 40  # never past what the split holds
    sequences = [torch.randint(2, 50, (int(n),)).tolist() for n in torch.randint(1, 12, (40,))]
    batches = TextBatches(sequences, [0] * 40, 8)
    model = build_model("transformer", vocab_size=50, num_classes=3, embed_dim=8, num_heads=2, ff_dim=16).eval()
    plain = [model(inputs) for inputs, _ in batches]
    batches.repeat_shapes = True
    padded = [(inputs[0].size(1), model(inputs)) for inputs, _ in batches]
    assert {width for width, _ in padded} <= {8, batches.token_ids.size(1)} and len(padded) == len(plain)
    assert all(torch.allclose(a, b, atol=1e-5) for a, (_, b) in zip(plain, padded))
