"""train_transformer.py from scratch and fine-tuned from a tiny pretrained BERT saved with
save_pretrained (no network, no ../shared/models): loading, runs, checkpoints, predict, errors."""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

import predict
import train_transformer
from conftest import ROOT, SHARED_MODELS, shared_data_or_skip
from utils.errors import PretrainedError
from utils.pretrained import load_subword_tokenizer
from data.tokenization import WordTokenizer, tokenizer_from_meta
from utils.storage.checkpoint import load_checkpoint
from utils.train.optim import lr_schedule


def args(data_dir: str, out_dir: str, *extra: str) -> list[str]:
    return ["--data-dir", data_dir, "--out-dir", out_dir, "--epochs", "1", "--val-size", "40", "--batch-size", "16",
            "--no-progress", *extra]


def test_from_scratch_learns_the_synthetic_questions(trec_dir, tmp_path):
    summary = train_transformer.main(args(trec_dir, str(tmp_path / "run"), "--epochs", "10", "--embed-dim", "32",
                                          "--ff-dim", "64", "--lr", "3e-3", "--warmup-epochs", "1"))
    assert summary["test_acc"] > 0.9
    checkpoint = load_checkpoint(os.path.join(tmp_path, "run", "best.pt"))
    assert checkpoint["model_name"] == "transformer" and checkpoint["meta"]["tokenizer"]["kind"] == "words"
    assert json.load(open(os.path.join(tmp_path, "run", "config.json")))["preset"] == "scratch"


def test_subword_tokenizer_round_trips_through_plain_types(tiny_pretrained):
    tokenizer = load_subword_tokenizer(tiny_pretrained)
    ids, cut = tokenizer.encode("Who wrote Hamlet ?", max_length=64)
    assert ids[0] != ids[-1] and len(ids) == 6 and not cut  # [CLS] who wrote hamlet ? [SEP]
    short, cut = tokenizer.encode("Who wrote Hamlet ?", max_length=4)
    assert len(short) == 4 and cut and short[-1] == ids[-1]  # still ends in [SEP]
    state = json.loads(json.dumps(tokenizer.state()))  # plain types only
    again = tokenizer_from_meta({"tokenizer": state})
    assert again.encode("Who wrote Hamlet ?", 64) == (ids, False) and again.pad_id == tokenizer.pad_id
    assert isinstance(tokenizer_from_meta({"vocabulary": ["<pad>", "<unk>", "a"]}), WordTokenizer)  # older checkpoints


def test_fine_tune_then_predict_without_the_model_folder_or_network(trec_dir, tiny_pretrained, tmp_path, monkeypatch,
                                                                   capsys):
    folder = shutil.copytree(tiny_pretrained, str(tmp_path / "model"))
    out = str(tmp_path / "run")
    summary = train_transformer.main(args(trec_dir, out, "--pretrained", folder, "--epochs", "2"))
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["preset"] == "finetune" and config["encoder_lr_scale"] == 0.1 and config["scheduler"] == "linear"
    best = load_checkpoint(os.path.join(out, "best.pt"))  # weights_only: plain types only
    assert best["model_name"] == "pretrained" and best["meta"]["tokenizer"]["kind"] == "subword"
    assert best["model_kwargs"]["encoder_config"]["hidden_size"] == 16

    shutil.rmtree(folder)  # the checkpoint alone must do now
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    assert predict.main([os.path.join(out, "best.pt"), "--json", "Who wrote Hamlet ?", "Where is paris ?"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-4) for row in rows)
    printed = subprocess.run([sys.executable, "predict.py", os.path.join(out, "best.pt"), "Who wrote Hamlet ?",
                              "--top", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert printed.returncode == 0 and printed.stdout.startswith("Who wrote Hamlet ?: ")
    assert printed.stderr == ""  # no library's warnings: only the answers
    evaluated = train_transformer.main(["--data-dir", trec_dir, "--eval-only", "--checkpoint",
                                        os.path.join(out, "best.pt"), "--out-dir", str(tmp_path / "eval")])
    assert evaluated["test_acc"] == summary["test_acc"]
    resumed = train_transformer.main(["--resume", out, "--epochs", "3", "--no-progress"])  # nor does a resume
    assert resumed["epochs_run"] == 3


def test_fine_tuning_starts_from_the_pretrained_weights(trec_dir, tiny_pretrained, tmp_path):
    from transformers import AutoModel

    out = str(tmp_path / "run")
    train_transformer.main(args(trec_dir, out, "--pretrained", tiny_pretrained, "--freeze-encoder"))
    trained = load_checkpoint(os.path.join(out, "last.pt"))["model"]
    pretrained = AutoModel.from_pretrained(tiny_pretrained).state_dict()
    assert any(name.startswith("pooler.") for name in pretrained)  # BERT's pooler starts the head too
    for name, value in pretrained.items():
        assert torch.equal(trained[f"model.bert.{name}"], value), name  # frozen: untouched


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_weights_train_as_float32_master_weights(half, trec_dir, tiny_pretrained, tmp_path):
    """A model saved in float16 or bfloat16 fine-tunes exactly as the float32 copy of the same values does,
    and the checkpoint is float32 and records the file's dtype."""
    from transformers import AutoModel

    for name, dtype in (("half", half), ("full", torch.float32)):
        folder = shutil.copytree(tiny_pretrained, tmp_path / name, ignore=shutil.ignore_patterns("model.safetensors"))
        AutoModel.from_pretrained(tiny_pretrained).to(half).to(dtype).save_pretrained(folder)
        train_transformer.main(args(trec_dir, str(tmp_path / f"run-{name}"), "--pretrained", str(folder),
                                    "--precision", "fp32", "--no-tensorboard"))
    half_run, full_run = (load_checkpoint(str(tmp_path / f"run-{name}" / "last.pt")) for name in ("half", "full"))
    assert {value.dtype for value in half_run["model"].values() if value.is_floating_point()} == {torch.float32}
    assert half_run["pretrained"]["file_dtype"] == str(half).removeprefix("torch.")
    assert full_run["pretrained"]["file_dtype"] == "float32"
    learned = [[row[key] for key in ("train_loss", "val_loss", "val_acc")] for row in half_run["history"]]
    assert learned == [[row[key] for key in ("train_loss", "val_loss", "val_acc")] for row in full_run["history"]]
    assert all(torch.equal(half_run["model"][name], full_run["model"][name]) for name in full_run["model"])


def test_encoder_learns_at_its_fraction_of_the_rate(trec_dir, tiny_pretrained, tmp_path, monkeypatch):
    rates = []
    real_step = torch.optim.AdamW.step

    def record(optimizer, *a, **k):
        rates.append([group["lr"] for group in optimizer.param_groups])
        return real_step(optimizer, *a, **k)
    monkeypatch.setattr(torch.optim.AdamW, "step", record)
    train_transformer.main(args(trec_dir, str(tmp_path / "run"), "--pretrained", tiny_pretrained,
                                "--encoder-lr-scale", "0.25"))
    assert all(encoder == pytest.approx(0.25 * head) for encoder, head in rates)


def test_linear_schedule_warms_up_then_decays_to_zero():
    schedule = lr_schedule("linear", 1.0, total_steps=100, warmup_steps=10)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)
    assert schedule(55) == pytest.approx(0.5) and schedule(100) == 0.0


@pytest.mark.parametrize("pretrained,message", [
    ("{tmp}/no-such-folder", "no such folder"),
    ("models/no-such-model/", "no such folder"),  # a relative path is no hub id either
    ("{tmp}/empty", "the folder holds no tokenizer saved with save_pretrained"),
    ("someone/no-such-model-anywhere", "HF_HUB_OFFLINE is set"),
])
def test_unusable_pretrained_model_is_one_line(pretrained, message, trec_dir, tmp_path, monkeypatch, capsys):
    os.makedirs(tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as stop:
        train_transformer.main(args(trec_dir, str(tmp_path / "run"), "--pretrained", pretrained.format(tmp=tmp_path)))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and message in err[0], err


def without_tokenizer_files(folder):
    for name in os.listdir(folder):
        if name.startswith(("tokenizer", "vocab", "special_tokens")):
            os.remove(os.path.join(folder, name))


def truncated_weights(folder):
    path = os.path.join(folder, "model.safetensors")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])


def config_with(**changes):
    def change(folder):
        path = os.path.join(folder, "config.json")
        json.dump({**json.load(open(path)), **changes}, open(path, "w"))
    return change


def pickled_objects_that_are_not_tensors(folder):
    os.remove(os.path.join(folder, "model.safetensors"))
    torch.save({"x": argparse.Namespace(a=1)}, os.path.join(folder, "pytorch_model.bin"))


def pickled_weights_of_something_else(folder):
    os.remove(os.path.join(folder, "model.safetensors"))
    torch.save({"x": torch.zeros(2)}, os.path.join(folder, "pytorch_model.bin"))


@pytest.mark.parametrize("damage, flags, message", [
    (without_tokenizer_files, (), "knows only its 5 special tokens"),
    (truncated_weights, (), "the folder's files do not load"),
    (config_with(vocab_size=-3), (), "vocab_size -3"),
    (config_with(max_position_embeddings=10 ** 12), (), "max_position_embeddings 1000000000000"),
    (config_with(hidden_size=-16), (), "hidden_size -16"),
    (config_with(hidden_size=32), (), "do not have the sizes its config.json gives"),
    (pickled_weights_of_something_else, (), "lack 37 of the encoder's tensors"),
    (pickled_objects_that_are_not_tensors, (), "objects other than tensors, which are never unpickled"),
    (lambda folder: None, ("--max-length", "65"), "--max-length 65 is more tokens than the encoder"),
])
def test_a_damaged_pretrained_folder_is_one_line_before_any_training(damage, flags, message, tiny_pretrained, trec_dir,
                                                                     tmp_path, capsys):
    folder = str(tmp_path / "model")
    shutil.copytree(tiny_pretrained, folder)
    damage(folder)
    with pytest.raises(SystemExit) as stop:
        train_transformer.main(args(trec_dir, str(tmp_path / "run"), "--pretrained", folder, *flags))
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and message in err[0], err
    assert "weights_only" not in err[0] and "\x1b" not in err[0]
    assert not os.path.exists(tmp_path / "run")  # nothing was left behind


def test_a_tokenizer_must_fit_the_embeddings_of_its_model(tiny_pretrained, tmp_path):
    folder = str(tmp_path / "model")
    shutil.copytree(tiny_pretrained, folder)
    config_with(vocab_size=10)(folder)
    with pytest.raises(PretrainedError, match="it is not that model's tokenizer"):
        load_subword_tokenizer(folder)


def test_heads_must_divide_the_embedding(trec_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train_transformer.main(args(trec_dir, str(tmp_path / "run"), "--embed-dim", "30", "--num-heads", "4"))
    assert stop.value.code == 2 and "not divisible" in capsys.readouterr().err


@pytest.mark.slow
def test_short_fine_tune_on_real_data_and_model(tmp_path):
    data_dir = shared_data_or_skip("TREC", "train_5500.label")
    model_dir = os.path.join(SHARED_MODELS, "all-MiniLM-L6-v2")
    if not os.path.isdir(model_dir):
        pytest.skip(f"{model_dir} not present")
    summary = train_transformer.main(["--data-dir", data_dir, "--pretrained", model_dir, "--out-dir",
                                      str(tmp_path / "run"), "--limit-train", "256", "--val-size", "100", "--epochs", "1",
                                      "--no-progress", "--no-tensorboard"])
    # 8 steps move the new head off the uniform guess (loss ln 6) on the real test questions
    assert summary["num_params"] > 22_000_000 and summary["test_loss"] < math.log(6) - 0.01
