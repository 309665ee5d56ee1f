"""export.py --format hf: a fine-tuned encoder as a save_pretrained folder that transformers' own
classes and pipeline() load, agreeing with predict.py; gradient checkpointing of pretrained encoders."""
from __future__ import annotations

import json
import os

import pytest
import torch

import export
import predict
import train_transformer
from conftest import assert_one_error_line
from tiny_data import write_trec
from test_transformer import args
from utils.storage.checkpoint import load_checkpoint
from utils.storage.files import read_json


@pytest.fixture(scope="module")
def fine_tuned(tiny_pretrained, tmp_path_factory):
    """A finished fine-tuning run of the tiny BERT on the tiny TREC files."""
    root = tmp_path_factory.mktemp("hf")
    data_dir, out = write_trec(str(root / "data")), str(root / "run")
    train_transformer.main(args(data_dir, out, "--pretrained", tiny_pretrained, "--epochs", "8",
                                "--lr", "1e-2", "--encoder-lr-scale", "1", "--warmup-epochs", "0", "--no-tensorboard"))
    assert read_json(os.path.join(out, "summary.json"))["test_acc"] > 0.25  # it learned (chance: 1/6)
    return data_dir, out


def test_the_exported_folder_is_a_transformers_model_that_agrees_with_predict(fine_tuned, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification, pipeline

    data_dir, run = fine_tuned
    folder = str(tmp_path / "model")
    result = export.run(export.parse_args([os.path.join(run, "best.pt"), "--format", "hf", "--out", folder,
                                           "--data-dir", data_dir, "--examples", "64"]))
    assert result["same_top1"] == 1.0 and result["max_prob_diff"] <= 1e-5
    assert "model.safetensors" in os.listdir(folder) and not any(name.endswith(".bin") for name in os.listdir(folder))
    checkpoint = load_checkpoint(os.path.join(run, "best.pt"))
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    assert model.config.id2label == dict(enumerate(checkpoint["class_names"]))
    capsys.readouterr()
    questions = ["Who wrote Hamlet ?", "Where is Paris ?", "How far is the moon ?", "What is NASA ?"]
    predict.main([os.path.join(run, "best.pt"), *questions, "--json", "--top", "6"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    answers = pipeline("text-classification", model=folder, top_k=None, device="cpu")(questions)  # as predict.py
    for row, answer in zip(rows, answers):
        assert answer[0]["label"] == row["label"]
        scores = {item["label"]: item["score"] for item in answer}
        assert all(abs(scores[name] - p) <= 1e-5 for name, p in row["probabilities"].items())
    card = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    assert "python train_transformer.py " in card and "--pretrained" in card and "test accuracy" in card
    assert all(name in card for name in checkpoint["class_names"])
    umask = os.umask(0)
    os.umask(umask)
    assert {name: os.stat(os.path.join(folder, name)).st_mode & 0o777 for name in os.listdir(folder)} == \
        {name: 0o666 & ~umask for name in os.listdir(folder)}  # as any new file: readable by whom the umask allows
    # a second export replaces only the files this command wrote; the user's own files there stay
    (tmp_path / "model" / "NOTES.md").write_text("my notes")
    (tmp_path / "model" / ".git").mkdir()
    (tmp_path / "model" / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (tmp_path / "model" / "README.md").write_text("an edited card")
    export.run(export.parse_args([os.path.join(run, "best.pt"), "--format", "hf", "--out", folder, "--examples", "64"]))
    assert (tmp_path / "model" / "NOTES.md").read_text() == "my notes"
    assert (tmp_path / "model" / ".git" / "HEAD").read_text() == "ref: refs/heads/main"
    assert "python train_transformer.py " in (tmp_path / "model" / "README.md").read_text()
    # a folder of other files is refused, untouched
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert_one_error_line(export.main, [os.path.join(run, "best.pt"), "--format", "hf", "--out", str(other)],
                          capsys, "holds files that export.py did not write")
    assert os.listdir(other) == ["notes.txt"]


def test_only_fine_tuned_encoders_export_to_hf(runs, tmp_path, capsys):
    assert_one_error_line(export.main, [os.path.join(runs["rnn"], "best.pt"), "--format", "hf", "--out",
                                        str(tmp_path / "m")], capsys, "is for fine-tuned pretrained models")
    assert not os.path.exists(tmp_path / "m")


def test_gradient_checkpointing_gives_the_plain_gradients():
    from tiny_models import tiny_bert_config
    from models import build_model

    torch.manual_seed(0)
    plain = build_model("pretrained", encoder_config=tiny_bert_config(), num_classes=3).train()
    checkpointed = build_model("pretrained", encoder_config=tiny_bert_config(), num_classes=3).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.enable_gradient_checkpointing()
    inputs = (torch.randint(5, 20, (3, 7)), torch.tensor([7, 5, 2]))
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same dropout masks; checkpointing replays them in its recomputation
        model(inputs).logsumexp(dim=1).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        assert a.grad is not None and torch.allclose(a.grad, b.grad, atol=1e-6), name


@pytest.mark.parametrize("checkpointed", [False, True])
def test_gradient_checkpointing_recomputes_each_layer_in_the_backward_pass(checkpointed):
    from tiny_models import tiny_bert_config
    from models import build_model

    model = build_model("pretrained", encoder_config=tiny_bert_config(), num_classes=3).train()
    if checkpointed:
        model.enable_gradient_checkpointing()
    calls = []
    model.encoder.encoder.layer[0].attention.register_forward_hook(lambda *_: calls.append(1))
    model((torch.randint(5, 20, (2, 6)), torch.tensor([6, 4]))).sum().backward()
    assert len(calls) == (2 if checkpointed else 1)
