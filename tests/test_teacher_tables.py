"""The teacher's tables: every view of every image, or one row per training example, made once and kept on disk."""
from __future__ import annotations

import os

import pytest
import torch

import train_cnn
import train_rnn
from conftest import image_args, interrupt_after_commit, same_weights, text_args
from data.image_batches import ImageBatches
from models import build_model
from utils.runtime import Runtime
from utils.storage.checkpoint import load_checkpoint
from utils.train.distill import cached_teacher, views_pay_off
from utils.train.teacher_tables import teacher_view_table

CPU = Runtime(torch.device("cpu"), "fp32")


@pytest.mark.parametrize("padding, flip_average", [(0, False), (0, True), (1, True)])
def test_the_view_table_holds_the_teachers_outputs_for_every_training_batch(padding, flip_average):
    torch.manual_seed(0)
    teacher = build_model("resnet", width=4, depth=8, flip_average=flip_average).eval()
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8)
    batches = ImageBatches(images, torch.arange(40) % 10, 16, mean=0.3, std=0.4, shuffle=True, augment=True,
                           crop_padding=padding, seed=5)
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
    batches = ImageBatches(images, torch.zeros(55_000, dtype=torch.long), 64, mean=0.3, std=0.4, augment=True,
                           crop_padding=1)
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
