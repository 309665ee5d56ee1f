"""Distillation (--teacher): the loss, what a run records of its teacher, and the recipes a teacher implies."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import train_cnn
import train_rnn
from conftest import image_args, interrupt_after_commit, said_lines, same_weights, text_args
from utils.config import parse_config
from utils.data_setup import text_data
from utils.runtime import Runtime
from utils.storage.checkpoint import load_checkpoint
from utils.storage.files import read_json, read_jsonl
from utils.train.distill import attach_teacher
from utils.train.engine import Trainer, train_one_epoch
from utils.train.losses import distillation_loss
from utils.train.optim import build_optimizer, lr_schedule

CPU = Runtime(torch.device("cpu"), "fp32")


def test_distillation_term_is_zero_when_the_student_matches_the_teacher():
    torch.manual_seed(0)
    logits, targets = torch.randn(8, 5), torch.randint(0, 5, (8,))
    hard = nn.functional.cross_entropy(logits, targets)
    for temperature in (1.0, 4.0):
        assert distillation_loss(logits, targets, logits.clone(), 1.0, temperature).abs() < 1e-6
        assert torch.allclose(distillation_loss(logits, targets, logits.clone(), 0.3, temperature), 0.7 * hard)
    other = torch.randn(8, 5)
    assert distillation_loss(logits, targets, other, 1.0, 2.0) > 0.01  # and positive when they differ
    assert torch.equal(distillation_loss(logits, targets, other, 0.0, 2.0), hard)


def linear_steps(teacher_weight: torch.Tensor, distill_weight: float, seed: int, steps: int = 15) -> float:
    """Train a linear student with the engine on labels of a linear rule (and, with a weight, on the
    perfect teacher's logits); returns its accuracy on fresh examples of the rule."""
    generator = torch.Generator().manual_seed(seed)
    student = nn.Linear(20, 5)
    nn.init.zeros_(student.weight), nn.init.zeros_(student.bias)
    batches = []
    for _ in range(steps):
        inputs = torch.randn(16, 20, generator=generator)
        batches.append((inputs, (inputs @ teacher_weight.T).argmax(1), inputs @ teacher_weight.T))
    trainer = Trainer(student, build_optimizer("sgd", student.parameters(), 0.5, momentum=0.0), CPU,
                      lr_schedule("none", 0.5, steps), torch.amp.GradScaler("cpu", enabled=False),
                      distill_weight=distill_weight, temperature=2.0)
    train_one_epoch(trainer, batches, 1)
    test = torch.randn(2000, 20, generator=generator)
    return (student(test).argmax(1) == (test @ teacher_weight.T).argmax(1)).float().mean().item()


def test_a_perfect_teacher_makes_the_student_learn_faster():
    teacher_weight = torch.randn(5, 20, generator=torch.Generator().manual_seed(1))
    for seed in range(3):
        taught, alone = linear_steps(teacher_weight, 0.9, seed), linear_steps(teacher_weight, 0.0, seed)
        assert taught > alone + 0.05, (seed, taught, alone)


@pytest.mark.parametrize("extra, mode", [((), "live"),  # 18 views of a 1-pixel crop: more than 2 epochs
                                         (("--crop-padding", "0", "--epochs", "3"), "views")])  # 2 views
def test_weight_zero_trains_exactly_like_no_teacher(image_teacher, tmp_path, extra, mode):
    data_dir, teacher = image_teacher
    plain = train_cnn.main(image_args(data_dir, str(tmp_path / "plain"), *extra))
    taught = train_cnn.main(image_args(data_dir, str(tmp_path / "taught"), *extra, "--teacher", teacher,
                                       "--distill-weight", "0"))
    a, b = (load_checkpoint(str(tmp_path / run / "last.pt")) for run in ("plain", "taught"))
    assert same_weights(a["model"], b["model"]) and plain["test_acc"] == taught["test_acc"]
    assert b["teacher"]["mode"] == mode and a["teacher"] is None  # augmented images: the teacher sees each batch


def test_the_run_folder_records_the_teacher_and_resumes_exactly(image_teacher, tmp_path, monkeypatch, capsys):
    data_dir, teacher = image_teacher
    extra = ("--teacher", teacher, "--epochs", "3", "--ema", "0.9", "--random-erasing", "0.5", "--temperature", "4")
    straight = train_cnn.main(image_args(data_dir, str(tmp_path / "straight"), *extra))
    assert "trained with label smoothing 0.1" in capsys.readouterr().out  # the image recipes' default
    record = straight["teacher"]
    saved = load_checkpoint(teacher)
    assert record["path"] == os.path.abspath(teacher) and record["model_name"] == "resnet"
    assert len(record["weights_sha256"]) == 64
    teachers_own = read_json(os.path.join(os.path.dirname(teacher), "summary.json"))
    assert record["test_acc"] == teachers_own["test_acc"]  # the same weights on the same test images
    assert load_checkpoint(str(tmp_path / "straight" / "best.pt"))["teacher"] == record

    stopped = str(tmp_path / "stopped")
    interrupt_after_commit(monkeypatch, epoch=1)
    with pytest.raises(SystemExit):
        train_cnn.main(image_args(data_dir, stopped, *extra))
    monkeypatch.undo()
    train_cnn.main(["--resume", stopped, "--no-progress"])
    a, b = (load_checkpoint(os.path.join(run, "last.pt")) for run in (str(tmp_path / "straight"), stopped))
    assert same_weights(a["model"], b["model"]) and same_weights(a["ema"], b["ema"])
    assert same_weights(a["best_model"], b["best_model"]) and b["teacher"] == record

    torch.save({**saved, "model": {k: v + 1 for k, v in saved["model"].items()}}, teacher + ".changed")
    refusals = {"other weights than the teacher this run began with": ("--teacher", teacher + ".changed"),
                "--ema 0.9 -> 0.0": ("--ema", "0"),  # dropping the average would lose its state
                "without --teacher": ("--teacher", "")}
    for message, flags in refusals.items():
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            train_cnn.main(["--resume", stopped, "--epochs", "4", *flags, "--no-progress"])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    plain = str(tmp_path / "plain")
    train_cnn.main(image_args(data_dir, plain, "--epochs", "1"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # adding an average has no state to resume from
        train_cnn.main(["--resume", plain, "--epochs", "2", "--ema", "0.9", "--no-progress"])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and "cannot resume" in error and "--ema 0.0 -> 0.9" in error


def test_a_text_student_learns_from_a_teacher_with_another_tokenizer(text_teacher, tmp_path):
    data_dir, teacher = text_teacher
    config = parse_config(train_rnn.RNNConfig, text_args(data_dir, str(tmp_path / "x"), "--teacher", teacher,
                                                         "--preset", "none"), "")
    data = text_data(config, CPU)
    record = attach_teacher(config, data, CPU, text_data, None)
    assert record["mode"] == "cached"  # fixed inputs: the teacher classified each question once
    agree = seen = 0
    for inputs, targets, teacher_logits in data.train:
        agree += (teacher_logits.argmax(1) == targets).sum().item()
        seen += len(targets)
    # the cached rows line up with the student's examples: the well-trained teacher agrees with their labels
    assert seen == data.train.num_examples and agree / seen > 0.8, agree / seen

    summary = train_rnn.main(text_args(data_dir, str(tmp_path / "student"), "--teacher", teacher, "--preset", "none"))
    assert summary["teacher"]["weights_sha256"] == record["weights_sha256"]
    checkpoint = load_checkpoint(str(tmp_path / "student" / "best.pt"))
    assert checkpoint["meta"]["tokenizer"]["kind"] == "words"  # the student keeps its own tokenizer
    assert len(read_jsonl(str(tmp_path / "student" / "metrics.jsonl"))) == 2


def test_a_teacher_that_trained_on_the_students_validation_is_noted(text_teacher, tmp_path):
    data_dir, teacher = text_teacher  # trained with --seed 0

    def notes(*flags: str) -> list[str]:
        config = parse_config(train_rnn.RNNConfig, text_args(data_dir, str(tmp_path / "x"), "--teacher", teacher,
                                                             "--preset", "none", *flags), "")
        with said_lines() as said:
            attach_teacher(config, text_data(config, CPU), CPU, text_data, None)
        return [line for line in said if "validation overstates the student" in line]

    assert len(notes("--seed", "1")) == 1 and "--split-seed 0 --val-size 40" in notes("--seed", "1")[0]
    assert notes("--seed", "1", "--split-seed", "0") == []
    assert notes() == [] and notes("--split-seed", "0") == []


@pytest.mark.parametrize("student", ["rnn", "cnn"])
def test_a_teacher_of_another_task_is_one_line(student, image_teacher, text_teacher, tmp_path, capsys):
    image_dir, image_ckpt = image_teacher
    text_dir, text_ckpt = text_teacher
    main, argv = ((train_rnn.main, text_args(text_dir, str(tmp_path / "s"), "--teacher", image_ckpt))
                  if student == "rnn" else
                  (train_cnn.main, image_args(image_dir, str(tmp_path / "s"), "--teacher", text_ckpt)))
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "student needs a" in err[0] and "Traceback" not in err[0]


def test_a_teacher_file_that_is_no_model_checkpoint_is_one_line(image_teacher, tmp_path, capsys):
    data_dir, teacher = image_teacher
    weights_only = str(tmp_path / "weights.pt")
    torch.save(load_checkpoint(teacher)["model"], weights_only)  # a bare state dict, as many repositories save
    with pytest.raises(SystemExit) as stop:
        train_cnn.main(image_args(data_dir, str(tmp_path / "s"), "--teacher", weights_only))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and "is not a checkpoint of this repository" in err[0]


def test_a_teacher_implies_the_measured_text_recipe_and_the_student_reads_the_teachers_tokens(text_teacher, tmp_path):
    data_dir, teacher = text_teacher
    implied = parse_config(train_rnn.RNNConfig, ["--teacher", teacher], "", train_rnn.PRESETS)
    assert implied.preset == "distill" and vars(implied) == {**vars(implied), **train_rnn.PRESETS["distill"]}
    assert parse_config(train_rnn.RNNConfig, [], "", train_rnn.PRESETS).preset == ""  # no teacher: no preset
    plain = parse_config(train_rnn.RNNConfig, ["--teacher", teacher, "--preset", "none"], "", train_rnn.PRESETS)
    assert plain.tokenizer == "" and plain.perturbed_copies == 0 and plain.distill_weight == 0.5
    summary = train_rnn.main(text_args(data_dir, str(tmp_path / "student"), "--teacher", teacher,
                                       "--perturbed-copies", "1", "--epochs", "1"))
    student, taught_by = (load_checkpoint(path)["meta"]["tokenizer"]
                          for path in (str(tmp_path / "student" / "best.pt"), teacher))
    assert student == taught_by and summary["teacher"]["distill_weight"] == 0.9
