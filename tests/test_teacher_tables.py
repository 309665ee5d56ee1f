"""The teacher's tables: every view of every image, or one row per training example, made once and kept on disk."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import train_cnn
import train_rnn
from conftest import image_args, interrupt_after_commit, said_lines, same_weights, text_args
from data.bundle import ImageSpec, Order
from data.image_batches import ImageBatches
from models import build_model
from utils.runtime import Runtime
from utils.storage.checkpoint import load_checkpoint
from utils.train.distill import cached_teacher, views_pay_off
from utils.train.teacher_tables import load_or_make_table, teacher_sha256, teacher_view_table, weights_sha256

CPU = Runtime(torch.device("cpu"), "fp32")


@pytest.mark.parametrize("padding, flip_average", [(0, False), (0, True), (1, True)])
def test_the_view_table_holds_the_teachers_outputs_for_every_training_batch(padding, flip_average):
    torch.manual_seed(0)
    teacher = build_model("resnet", width=4, depth=8, flip_average=flip_average).eval()
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8)
    batches = ImageBatches(images, torch.arange(40) % 10, 16, ImageSpec(0.3, 0.4, augment=True, crop_padding=padding),
                           Order(shuffle=True, seed=5))
    table = teacher_view_table(teacher, batches, CPU, batch_size=7)
    assert table.shape == (40, 2 * (2 * padding + 1) ** 2, 10) and teacher.flip_average == flip_average
    lookup = cached_teacher(table)
    for epoch in range(2):
        batches.set_epoch(epoch)
        for indices, views, (inputs, _) in batches.batches_with_views():
            with torch.no_grad():
                live = teacher(inputs)
            assert torch.allclose(lookup(indices, views, inputs), live, atol=1e-5)
    mirrors_alike = padding == 0 and flip_average  # the only two views are each other's mirror image
    assert torch.allclose(table[:, 0], table[:, -1], atol=1e-3) == mirrors_alike  # else the views differ


def test_a_view_table_is_used_when_it_costs_the_teacher_fewer_passes_and_fits_in_memory():
    images = torch.zeros(55_000, 28, 28, dtype=torch.uint8)
    batches = ImageBatches(images, torch.zeros(55_000, dtype=torch.long), 64,
                           ImageSpec(0.3, 0.4, augment=True, crop_padding=1))
    averaging, plain = (build_model("resnet", width=4, depth=8, flip_average=flag) for flag in (True, False))
    assert views_pay_off(batches, averaging, 10, 10) and not views_pay_off(batches, averaging, 9, 10)  # 18 < 2 * 10
    assert views_pay_off(batches, plain, 19, 10) and not views_pay_off(batches, plain, 18, 10)
    assert not views_pay_off(batches, plain, 50, 1000)  # 55,000 x 18 x 1000 logits: 4 GB
    batches.random_erasing = 0.5  # no finite set of views
    assert not views_pay_off(batches, averaging, 50, 10)


def test_a_view_table_is_made_once_and_a_resumed_run_gives_the_same_student(image_teacher, tmp_path, monkeypatch,
                                                                            capsys):
    data_dir, teacher = image_teacher
    monkeypatch.setenv("TEACHER_CACHE_DIR", str(tmp_path / "cache"))
    extra = ("--teacher", teacher, "--crop-padding", "0", "--epochs", "3")
    straight = train_cnn.main(image_args(data_dir, str(tmp_path / "straight"), *extra))
    assert straight["teacher"]["mode"] == "views" and "classifying 2 views" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "cache")) == 1

    stopped = str(tmp_path / "stopped")
    interrupt_after_commit(monkeypatch, epoch=1)
    with pytest.raises(SystemExit):
        train_cnn.main(image_args(data_dir, stopped, *extra))
    monkeypatch.undo()
    monkeypatch.setenv("TEACHER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache" / os.listdir(tmp_path / "cache")[0]).write_bytes(b"damaged")  # computed again
    train_cnn.main(["--resume", stopped, "--no-progress"])
    assert "classifying 2 views" in capsys.readouterr().out
    a, b = (load_checkpoint(os.path.join(run, "last.pt")) for run in (str(tmp_path / "straight"), stopped))
    assert same_weights(a["model"], b["model"]) and b["teacher"] == straight["teacher"]
    train_cnn.main(image_args(data_dir, str(tmp_path / "again"), *extra))
    assert "read from" in capsys.readouterr().out
    assert same_weights(a["model"], load_checkpoint(str(tmp_path / "again" / "last.pt"))["model"])


def test_the_teachers_outputs_for_fixed_inputs_are_kept_and_read_by_a_run_over_the_same_examples(
        text_teacher, tmp_path, monkeypatch, capsys):
    data_dir, teacher = text_teacher
    cache = tmp_path / "cache"
    monkeypatch.setenv("TEACHER_CACHE_DIR", str(cache))
    extra = ("--teacher", teacher, "--preset", "none", "--perturbed-copies", "1")
    first = train_rnn.main(text_args(data_dir, str(tmp_path / "first"), *extra))
    assert first["teacher"]["mode"] == "cached" and "classifying each of" in capsys.readouterr().out
    assert len(os.listdir(cache)) == 1

    again = train_rnn.main(text_args(data_dir, str(tmp_path / "again"), *extra))
    assert "read from" in capsys.readouterr().out and again["teacher"] == first["teacher"]
    a, b = (load_checkpoint(str(tmp_path / run / "last.pt"))["model"] for run in ("first", "again"))
    assert same_weights(a, b)

    (cache / os.listdir(cache)[0]).write_bytes(b"damaged")  # computed again, and kept again
    train_rnn.main(text_args(data_dir, str(tmp_path / "damaged"), *extra))
    assert "classifying each of" in capsys.readouterr().out
    assert same_weights(a, load_checkpoint(str(tmp_path / "damaged" / "last.pt"))["model"])

    train_rnn.main(text_args(data_dir, str(tmp_path / "seed1"), *extra, "--seed", "1"))  # other perturbed copies
    assert "classifying each of" in capsys.readouterr().out and len(os.listdir(cache)) == 2


def kept_table(tmp_path, monkeypatch, make, key="k" * 32, shape=(4, 3)):
    """load_or_make_table in a temp cache; returns (table, what it said)."""
    monkeypatch.setenv("TEACHER_CACHE_DIR", str(tmp_path))
    with said_lines() as said:
        table = load_or_make_table(key, shape, make, CPU, "read", "made")
    return table, " ".join(said)


def damage_values(kept):
    kept["table"] = torch.zeros_like(kept["table"])  # the checksum now disagrees


def damage_dtype(kept):
    kept["table"] = kept["table"].double()


def damage_shape(kept):
    kept["table"] = kept["table"][:2]


def damage_finite(kept):
    kept["table"][0, 0] = float("nan")


def damage_key(kept):
    kept["key"] = "another"


@pytest.mark.parametrize("damage, reason", [(damage_values, "checksum"), (damage_dtype, "torch.float64"),
                                            (damage_shape, "shape (2, 3)"), (damage_finite, "checksum"),
                                            (damage_key, "not a table")])
def test_a_kept_table_that_is_altered_is_noted_and_computed_again(tmp_path, monkeypatch, damage, reason):
    values = torch.randn(4, 3)
    made, said = kept_table(tmp_path, monkeypatch, lambda: values.clone())
    assert "made" in said and torch.equal(made, values)
    read, said = kept_table(tmp_path, monkeypatch, lambda: pytest.fail("the kept table was good"))
    assert said.startswith("teacher: read") and torch.equal(read, values)
    path = tmp_path / f"{'k' * 32}.pt"
    kept = torch.load(path, weights_only=True)
    damage(kept)
    torch.save(kept, path)
    again, said = kept_table(tmp_path, monkeypatch, lambda: values.clone())
    assert reason in said and "computing them again" in said and torch.equal(again, values)
    assert torch.equal(torch.load(path, weights_only=True)["table"], values)  # kept good again


def test_a_nan_table_with_a_fresh_checksum_is_not_used(tmp_path, monkeypatch):
    values = torch.full((4, 3), float("nan"))
    kept_table(tmp_path, monkeypatch, lambda: values)
    _, said = kept_table(tmp_path, monkeypatch, lambda: torch.zeros(4, 3))
    assert "not finite" in said


def test_a_write_killed_midway_leaves_no_temp_file_for_good(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    leftover = tmp_path / f"{'j' * 32}.pt.{dead}.0123abcd.tmp"
    leftover.write_bytes(b"half")
    alive = tmp_path / f"{'i' * 32}.pt.{os.getpid()}.0123abcd.tmp"  # a write in progress is left alone
    alive.write_bytes(b"half")
    kept_table(tmp_path, monkeypatch, lambda: torch.zeros(4, 3))
    assert not leftover.exists() and alive.exists()


def test_the_key_covers_the_teachers_architecture_and_preprocessing_not_only_its_weights():
    model = build_model("transformer", vocab_size=20, num_classes=3, embed_dim=8, num_heads=2, num_layers=1,
                        max_length=8)
    checkpoint = {"model": model.state_dict(), "model_name": "transformer",
                  "model_kwargs": {"pooling": "mean"}, "meta": {"max_length": 8}}
    other_pooling = {**checkpoint, "model_kwargs": {"pooling": "cls"}}
    other_reading = {**checkpoint, "meta": {"max_length": 6}}
    weights = weights_sha256(checkpoint["model"])  # the same for all three
    digests = {teacher_sha256(c, weights) for c in (checkpoint, other_pooling, other_reading)}
    assert len(digests) == 3 and teacher_sha256(dict(checkpoint), weights) in digests
