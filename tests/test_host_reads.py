"""The training step and the evaluation loop never wait for the device. While an epoch trains and a
split is evaluated (on the CPU), every way the host can read a tensor's value is recorded: the
operations that do (`aten._local_scalar_dense`, behind `.item()`, `bool(tensor)` and `int(tensor)`;
those whose output size depends on the values, which make a GPU wait too) and the Tensor methods
`.tolist()`, `.cpu()` and `.numpy()`. Only the declared reads may happen."""
from __future__ import annotations

import contextlib
from typing import Iterator

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from data.bundle import ImageSpec, Order
from data.image_batches import ImageBatches
from data.text import TextBatches
from models import build_model
from tiny_data import separable_images
from utils.runtime import Runtime
from utils.train.engine import LOG_EVERY, Trainer, train_one_epoch
from utils.train.evaluation import evaluate, to_device
from utils.train.optim import build_optimizer, lr_schedule

CPU = Runtime(torch.device("cpu"), "fp32")
METHODS = ("tolist", "cpu", "numpy")  # Tensor methods that hand values to the host without an operation
aten = torch.ops.aten
WAITING = {aten._local_scalar_dense.default: "scalar", aten.nonzero.default: "data-dependent size",
           aten.masked_select.default: "data-dependent size", aten.bincount.default: "data-dependent size",
           aten.unique_dim.default: "data-dependent size", aten._unique2.default: "data-dependent size"}


class HostReads(TorchDispatchMode):
    """Counts the operations of WAITING, and indexing with a boolean mask (a data-dependent size)."""

    def __init__(self, counts: dict[str, int]) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kind = WAITING.get(func)
        if func is aten.index.Tensor and any(index is not None and index.dtype == torch.bool for index in args[1]):
            kind = "data-dependent size"
        if kind:
            self.counts[kind] += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def recorded_reads(monkeypatch) -> Iterator[dict[str, int]]:
    """Counts of each kind of host read made inside the block (outside inference mode, which hides
    operations from dispatch modes)."""
    counts = dict.fromkeys((*METHODS, "scalar", "data-dependent size"), 0)
    for name in METHODS:
        real = getattr(torch.Tensor, name)

        def counted(tensor, *args, _name=name, _real=real, **kwargs):
            counts[_name] += 1
            return _real(tensor, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    with HostReads(counts):
        yield counts
    monkeypatch.undo()


def reads(**declared: int) -> dict[str, int]:
    """The counts a block may show: the `declared` ones (keyword names as in recorded_reads), else none."""
    return {**dict.fromkeys((*METHODS, "scalar", "data-dependent size"), 0),
            **{name.replace("_", " ").replace("data dependent", "data-dependent"): count
               for name, count in declared.items()}}


def image_batches(count: int, shuffle: bool = True) -> ImageBatches:
    images, labels = separable_images(count, seed=0)
    return ImageBatches(torch.from_numpy(images), torch.from_numpy(labels).long(), 8,
                        ImageSpec(0.3, 0.3, augment=shuffle, crop_padding=1), Order(shuffle=shuffle))


@pytest.mark.parametrize("model_name", ["cnn", "dnn"])
def test_an_epoch_reads_the_host_only_every_log_every_steps_and_at_its_end(model_name, monkeypatch):
    torch.manual_seed(0)
    model = build_model(model_name, num_classes=10, **({"hidden_sizes": (16, 8)} if model_name == "dnn" else
                                                        {"channels": (4, 8), "hidden_size": 16}))
    # SGD: Adam's step counter is a CPU tensor whose .item() is no device read, but would count here
    optimizer = build_optimizer("sgd", model.parameters(), 0.01, momentum=0.9, weight_decay=5e-4)
    trainer = Trainer(model, optimizer, CPU, lr_schedule("cosine", 0.01, 100), torch.amp.GradScaler("cpu", enabled=False),
                      label_smoothing=0.1, grad_clip=1.0)
    batches = image_batches(8 * (2 * LOG_EVERY + 5))  # 45 steps: reads after steps 20 and 40, and at the end
    batches.set_epoch(1)
    with recorded_reads(monkeypatch) as counts:
        metrics = train_one_epoch(trainer, batches, 1)
    assert trainer.step == 45 and metrics["train_loss"] > 0
    assert counts == reads(tolist=3)


def test_evaluation_reads_the_host_once_per_split(monkeypatch):
    torch.manual_seed(0)
    model = build_model("cnn", num_classes=10, channels=(4, 8), hidden_size=16)
    batches = image_batches(100, shuffle=False)
    with recorded_reads(monkeypatch) as counts, torch.no_grad():
        result = evaluate.__wrapped__(model, batches, CPU)  # evaluate without its inference mode (see above)
    assert result["count"] == 100 and counts == reads(tolist=1)
    assert result == evaluate(model, batches, CPU)


@pytest.mark.parametrize("model_name,host_reads_per_batch", [
    ("transformer", {"scalar": 1}),  # the batches' longest length, read on the host to cut the padding
    ("rnn", {"scalar": 4, "cpu": 1}),  # and packing: the model's lengths.cpu() (no copy), pack_padded_sequence's
])
def test_text_lengths_stay_on_the_host_where_only_host_tensors_are_read(model_name, host_reads_per_batch, monkeypatch):
    torch.manual_seed(0)
    sequences = [torch.randint(2, 50, (int(length),)).tolist() for length in torch.randint(1, 12, (60,))]
    batches = TextBatches(sequences, torch.randint(0, 6, (60,)).tolist(), 16)
    model = build_model(model_name, vocab_size=50, num_classes=6, embed_dim=8,
                        **({"hidden_size": 8} if model_name == "rnn" else {"num_heads": 2, "ff_dim": 16}))
    token_ids, lengths = next(iter(batches))[0]
    assert to_device((token_ids, lengths), torch.device("meta"))[1] is lengths  # lengths are not sent to the device
    with recorded_reads(monkeypatch) as counts, torch.no_grad():
        evaluate.__wrapped__(model, batches, CPU)
    assert counts == reads(tolist=1, **{kind: count * len(batches) for kind, count in host_reads_per_batch.items()})
