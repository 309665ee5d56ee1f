"""Distillation (--teacher), the weight average (--ema) and random erasing, on tiny synthetic data."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import train_cnn
import train_rnn
import train_transformer
from conftest import interrupt_after_commit
from data.image_batches import ImageBatches, random_erase
from models import build_model
from utils.checkpoint import load_checkpoint, read_jsonl
from utils.config import parse_config
from utils.distill import attach_teacher, cached_teacher, teacher_view_table, views_pay_off
from utils.engine import Trainer, distillation_loss, train_one_epoch
from utils.optim import build_optimizer, lr_schedule
from utils.runtime import Runtime
from utils.tasks import text_data

CPU = Runtime(torch.device("cpu"), "fp32")


def image_args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "2", "--val-size", "40", "--batch-size", "32",
            "--no-progress", "--no-tensorboard", *extra]


def text_args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "2", "--val-size", "40", "--batch-size", "16",
            "--no-progress", "--no-tensorboard", *extra]


@pytest.fixture(scope="module")
def image_teacher(tmp_path_factory) -> tuple[str, str]:
    """(data folder, best.pt of a tiny ResNet with flip averaging trained on it)."""
    from conftest import write_fashion_mnist
    folder = tmp_path_factory.mktemp("image_teacher")
    data_dir = write_fashion_mnist(str(folder / "data"))
    train_cnn.main(image_args(data_dir, str(folder / "teacher"), "--model", "resnet", "--width", "4", "--depth", "8",
                              "--tta", "--epochs", "3", "--lr", "3e-3"))
    return data_dir, str(folder / "teacher" / "best.pt")


@pytest.fixture(scope="module")
def text_teacher(tmp_path_factory) -> tuple[str, str]:
    """(data folder, best.pt of a small Transformer trained well on the synthetic questions)."""
    from conftest import write_trec
    folder = tmp_path_factory.mktemp("text_teacher")
    data_dir = write_trec(str(folder / "data"))
    train_transformer.main(text_args(data_dir, str(folder / "teacher"), "--epochs", "10", "--embed-dim", "32",
                                     "--ff-dim", "64", "--lr", "3e-3", "--warmup-epochs", "1"))
    return data_dir, str(folder / "teacher" / "best.pt")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


def test_mse_term_is_the_squared_logit_difference_whatever_the_temperature():
    torch.manual_seed(0)
    logits, targets, other = torch.randn(8, 5), torch.randint(0, 5, (8,)), torch.randn(8, 5)
    hard = nn.functional.cross_entropy(logits, targets)
    assert distillation_loss(logits, targets, logits.clone(), 1.0, 4.0, kind="mse") == 0
    expected = 0.25 * hard + 0.75 * ((logits - other) ** 2).mean()
    for temperature in (1.0, 4.0):
        assert torch.allclose(distillation_loss(logits, targets, other, 0.75, temperature, kind="mse"), expected)
    # a constant shift of the logits leaves the softmax (so the KL term) unchanged, but not this term
    shifted = logits + 3.0
    assert distillation_loss(logits, targets, shifted, 1.0, 1.0).abs() < 1e-5
    assert torch.allclose(distillation_loss(logits, targets, shifted, 1.0, 1.0, kind="mse"), torch.tensor(9.0))


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
    train_one_epoch(trainer, batches, 1, progress=False)
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


def test_the_run_folder_records_the_teacher_and_resumes_exactly(image_teacher, tmp_path, monkeypatch, capsys):
    data_dir, teacher = image_teacher
    extra = ("--teacher", teacher, "--epochs", "3", "--ema", "0.9", "--random-erasing", "0.5")
    straight = train_cnn.main(image_args(data_dir, str(tmp_path / "straight"), *extra))
    assert "trained with label smoothing 0.1" in capsys.readouterr().out  # the image recipes' default
    record = straight["teacher"]
    saved = load_checkpoint(teacher)
    assert record["path"] == os.path.abspath(teacher) and record["model_name"] == "resnet"
    assert len(record["weights_sha256"]) == 64 and 0 <= record["test_acc"] <= 1
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
                "without --ema": ("--ema", "0"),  # dropping the average would lose its state
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
    assert stop.value.code == 2 and "cannot resume" in error and "with --ema" in error


def test_ema_weights_are_the_ones_validated_and_saved(image_teacher, tmp_path):
    data_dir, _ = image_teacher
    summary = train_cnn.main(image_args(data_dir, str(tmp_path / "run"), "--ema", "0.8", "--epochs", "2"))
    last = load_checkpoint(str(tmp_path / "run" / "last.pt"))
    best = load_checkpoint(str(tmp_path / "run" / "best.pt"))
    averaged = {k[len("module."):]: v for k, v in last["ema"].items() if k.startswith("module.")}
    assert not same_weights(averaged, last["model"])  # the average is not the last weights
    if summary["best_epoch"] == 2:
        assert same_weights(best["model"], averaged)


def test_a_text_student_learns_from_a_teacher_with_another_tokenizer(text_teacher, tmp_path):
    data_dir, teacher = text_teacher
    config = parse_config(train_rnn.RNNConfig, text_args(data_dir, str(tmp_path / "x"), "--teacher", teacher), "")
    data = text_data(config, CPU)
    record = attach_teacher(config, data, CPU, text_data, None, print)
    assert record["mode"] == "cached"  # fixed inputs: the teacher classified each question once
    agree = seen = 0
    for inputs, targets, teacher_logits in data.train:
        agree += (teacher_logits.argmax(1) == targets).sum().item()
        seen += len(targets)
    # the cached rows line up with the student's examples: the well-trained teacher agrees with their labels
    assert seen == data.train.num_examples and agree / seen > 0.8, agree / seen

    summary = train_rnn.main(text_args(data_dir, str(tmp_path / "student"), "--teacher", teacher))
    assert summary["teacher"]["weights_sha256"] == record["weights_sha256"]
    checkpoint = load_checkpoint(str(tmp_path / "student" / "best.pt"))
    assert checkpoint["meta"]["tokenizer"]["kind"] == "words"  # the student keeps its own tokenizer
    assert len(read_jsonl(str(tmp_path / "student" / "metrics.jsonl"))) == 2


def test_the_teachers_outputs_for_fixed_inputs_are_kept_and_read_by_a_run_over_the_same_examples(
        text_teacher, tmp_path, monkeypatch, capsys):
    data_dir, teacher = text_teacher
    cache = tmp_path / "cache"
    monkeypatch.setenv("TEACHER_CACHE_DIR", str(cache))
    extra = ("--teacher", teacher, "--perturbed-copies", "1")
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


def test_a_teacher_that_trained_on_the_students_validation_is_noted(text_teacher, tmp_path):
    data_dir, teacher = text_teacher  # trained with --seed 0

    def notes(*flags: str) -> list[str]:
        said: list[str] = []
        config = parse_config(train_rnn.RNNConfig, text_args(data_dir, str(tmp_path / "x"), "--teacher", teacher,
                                                             *flags), "")
        attach_teacher(config, text_data(config, CPU), CPU, text_data, None, said.append)
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


def test_random_erasing_erases_one_rectangle_in_about_p_of_the_images():
    images = torch.zeros(2000, 28, 28, dtype=torch.uint8)
    erased = random_erase(images, 0.5, torch.Generator().manual_seed(0))
    changed = (erased != 0).flatten(1).any(1)
    assert 0.45 < changed.float().mean() < 0.55
    for image in erased[changed][:200]:
        rows, cols = (image != 0).any(1).nonzero(), (image != 0).any(0).nonzero()
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height * width <= 0.45 * 28 * 28  # one box of at most ~40% of the image
    unchanged = random_erase(images[:10], 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(unchanged, images[:10])


def test_perturbed_copies_are_ordered_subsets_and_the_same_for_every_tokenizer(text_teacher):
    import random

    from data.text import delete_words
    rng = random.Random(0)
    for text in ("What is the capital of France ?", "Who ?"):
        for _ in range(50):
            words, copy = text.split(), delete_words(text, rng).split()
            assert copy and all(word in words for word in copy)
            positions = [words.index(word) for word in copy]
            assert positions == sorted(positions)
    data_dir, teacher = text_teacher
    config = parse_config(train_rnn.RNNConfig, text_args(data_dir, "unused", "--perturbed-copies", "2"), "")
    plain = text_data(parse_config(train_rnn.RNNConfig, text_args(data_dir, "unused"), ""), CPU)
    words = [text_data(config, CPU), text_data(config, CPU)]
    teachers_view = text_data(config, CPU, load_checkpoint(teacher)["meta"])  # through the teacher's tokenizer
    assert words[0].train.num_examples == teachers_view.train.num_examples == 3 * plain.train.num_examples
    assert torch.equal(words[0].train.token_ids, words[1].train.token_ids)  # the seed fixes the copies
    assert words[0].model_kwargs["vocab_size"] == plain.model_kwargs["vocab_size"]  # vocabulary of the originals
    assert torch.equal(words[0].train.labels[:plain.train.num_examples], plain.train.labels)


def test_mask_ngram_copies_are_masked_runs_of_the_question():
    import random

    from data.text import MASK, mask_and_sample_ngram
    rng, words = random.Random(0), "What is the capital city of France ?".split()
    copies = [mask_and_sample_ngram(" ".join(words), rng).split() for _ in range(2000)]
    masked = [sum(word == MASK for word in copy) for copy in copies if len(copy) == len(words)]
    assert 0.08 < sum(masked) / (len(masked) * len(words)) < 0.12  # each word masked with probability 0.1
    assert 0.2 < sum(len(copy) < len(words) for copy in copies) / len(copies) < 0.3  # cut to an n-gram: 0.25
    for copy in copies:
        assert 1 <= len(copy) and (len(copy) == len(words) or len(copy) <= 5)
        assert any(all(c in (w, MASK) for c, w in zip(copy, words[start:]))  # a contiguous run of the question
                   for start in range(len(words) - len(copy) + 1))


def test_nearest_words_are_the_closest_other_whole_words_by_cosine():
    from data.neighbours import nearest_words
    vocab = {"[PAD]": 0, "cat": 1, "dog": 2, "car": 3, "##s": 4, "12": 5, "bus": 6}
    embeddings = torch.tensor([[9.0, 9.0], [1.0, 0.1], [2.0, 0.3], [0.1, 1.0], [1.0, 0.0], [1.0, 0.0], [0.5, 3.0]])
    found = nearest_words(embeddings, vocab, ["cat", "car", "bus", "12", "##s", "unknown"], k=2)
    assert found == {"cat": ["dog", "bus"], "car": ["bus", "dog"], "bus": ["car", "dog"]}  # no "##s", "12", self


def test_swap_words_replaces_about_the_given_share_by_neighbours_only():
    import random

    from data.text import make_perturbation, swap_words
    neighbours = {"capital": ["city", "town"], "france": ["spain"]}
    rng, words = random.Random(0), "What is the Capital of France ?".split()
    copies = [swap_words(" ".join(words), rng, neighbours).split() for _ in range(2000)]
    assert all(len(copy) == len(words) for copy in copies)
    for position, word in enumerate(words):
        changed = [copy[position] for copy in copies if copy[position] != word]
        assert set(changed) <= set(neighbours.get(word.lower(), []))  # only words with neighbours, only to those
        if word.lower() in neighbours:
            assert 0.12 < len(changed) / len(copies) < 0.18  # probability 0.15
    assert swap_words("a b", rng, {"a": ["c"]}, swap=1.0) == "c b"
    with pytest.raises(ValueError, match="needs each word's neighbours"):
        make_perturbation("delete-swap")


def test_swap_copies_change_words_only_to_words_of_the_pretrained_vocabulary(text_teacher, tiny_pretrained):
    from conftest import TINY_WORDS
    data_dir, _ = text_teacher
    extra = ("--perturbed-copies", "2", "--perturbation", "swap", "--swap-neighbours", tiny_pretrained)
    bundle = text_data(parse_config(train_rnn.RNNConfig, text_args(data_dir, "unused", *extra), ""), CPU)
    vocabulary = bundle.meta["tokenizer"]["vocabulary"]
    allowed = {i for i, word in enumerate(vocabulary) if word in TINY_WORDS or word == "<unk>"}
    ids, lengths, originals = bundle.train.token_ids, bundle.train.lengths, bundle.train.num_examples // 3
    changed = 0
    for row in range(originals, 3 * originals):
        original = row % originals
        assert lengths[row] == lengths[original]  # a swap keeps every position
        differs = (ids[row] != ids[original]).nonzero().flatten().tolist()
        assert all(int(ids[row, i]) in allowed for i in differs)
        changed += len(differs)
    assert 0.05 < changed / int(lengths[originals:].sum()) < 0.2  # about 0.15 of the words that have neighbours


@pytest.mark.parametrize("model,message", [("{tmp}/no-such-model", "no such folder"),
                                           ("{tmp}", "the folder holds no such files")])
def test_unusable_swap_neighbours_model_is_one_line(model, message, text_teacher, tmp_path, capsys):
    data_dir, _ = text_teacher
    extra = ("--perturbed-copies", "1", "--perturbation", "delete-swap", "--swap-neighbours", model.format(tmp=tmp_path))
    with pytest.raises(SystemExit) as stop:
        train_rnn.main(text_args(data_dir, str(tmp_path / "run"), *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and message in err[0], err
    assert not os.path.exists(tmp_path / "run" / "best.pt")


def test_processes_split_the_view_table_and_each_gets_all_of_it(image_teacher, tmp_path):
    import train_dnn
    from conftest import torchrun
    from utils.checkpoint import model_from_checkpoint
    from utils.tasks import image_data
    data_dir, teacher = image_teacher
    # 2 views; fp32, the arithmetic of the table computed alone below, even where auto would pick bf16
    extra = ("--teacher", teacher, "--crop-padding", "0", "--epochs", "3", "--precision", "fp32")
    cache = str(tmp_path / "cache")

    def run_in_two_processes(out: str):
        result = torchrun(["train_dnn.py", *image_args(data_dir, out, *extra)], timeout=300, TEACHER_CACHE_DIR=cache)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    assert "2 views of each of 260 training images once, split among 2 processes" in run_in_two_processes(
        str(tmp_path / "split"))
    assert load_checkpoint(str(tmp_path / "split" / "last.pt"))["teacher"]["mode"] == "views"
    (name,) = os.listdir(cache)
    table = torch.load(os.path.join(cache, name), weights_only=True)
    config = parse_config(train_dnn.DNNConfig, image_args(data_dir, "unused", *extra), "")
    alone = teacher_view_table(model_from_checkpoint(load_checkpoint(teacher)), image_data(config, CPU).train, CPU,
                               config.eval_batch_size)
    assert torch.allclose(table, alone, atol=1e-5)  # every view, each computed by one of the two processes
    assert "read from" in run_in_two_processes(str(tmp_path / "again"))  # both processes find it
