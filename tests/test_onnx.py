"""ONNX export of every model family, verified by onnxruntime against PyTorch, and served by predict.py."""
from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image

import export
import predict
from conftest import assert_one_error_line
from tiny_data import write_trec
from tiny_models import tiny_bert_config
from utils.pretrained import load_subword_tokenizer
from data.tokenization import WordTokenizer
from data.text import build_vocabulary
from models import build_model
from utils.storage.checkpoint import save_checkpoint
from utils.serve.onnx_export import BATCH_SIZES

WORDS = ["who", "wrote", "hamlet", "?", "where", "is", "paris", "what", "a", "tiger"]
IMAGE_META = {"mean": 0.286, "std": 0.353, "image_size": 28}
IMAGE_MODELS = ("cnn", "dnn", "resnet")
FAMILIES = [
    ("cnn", {"batch_norm": True}), ("dnn", {}), ("resnet", {"width": 4, "depth": 8, "flip_average": True}),
    ("rnn", {"cell": "lstm", "bidirectional": True, "pooling": "max", "num_layers": 2}),
    ("rnn", {"cell": "gru", "bidirectional": True, "pooling": "last"}),
    ("rnn", {"cell": "rnn", "pooling": "attention"}),
    ("transformer", {"pooling": "cls", "embed_dim": 16, "ff_dim": 32}),
    ("transformer", {"pooling": "mean", "embed_dim": 16, "ff_dim": 32}),
    ("pretrained", {}),
]


def checkpoint_of(name: str, kwargs: dict, folder, tiny_pretrained: str) -> str:
    """A checkpoint file of a freshly initialised tiny model of this family."""
    torch.manual_seed(0)
    if name in IMAGE_MODELS:
        task, names, meta, model_kwargs = "fashion_mnist", [str(i) for i in range(10)], IMAGE_META, dict(kwargs)
    else:
        tokenizer = (load_subword_tokenizer(tiny_pretrained) if name == "pretrained"
                     else WordTokenizer(build_vocabulary([WORDS])))
        task, names, meta = "trec", ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"], {
            "tokenizer": tokenizer.state(), "max_length": 32}
        model_kwargs = {**kwargs, "vocab_size": tokenizer.vocab_size, "padding_idx": tokenizer.pad_id}
        if name == "pretrained":
            model_kwargs["encoder_config"] = tiny_bert_config()
    model_kwargs["num_classes"] = len(names)
    model = build_model(name, **model_kwargs).eval()
    path = str(folder / f"{name}.pt")
    save_checkpoint(path, {"model": model.state_dict(), "model_name": name, "model_kwargs": model_kwargs,
                           "task": task, "class_names": names, "meta": meta})
    return path


@pytest.mark.parametrize("name,kwargs", FAMILIES, ids=lambda v: str(v))
def test_export_is_verified_and_predicts_like_pytorch(name, kwargs, tiny_pretrained, tmp_path, capsys):
    checkpoint = checkpoint_of(name, kwargs, tmp_path, tiny_pretrained)
    data_dir = str(tmp_path / "no-data") if name in IMAGE_MODELS else write_trec(str(tmp_path / "data"))
    assert export.main([checkpoint, "--data-dir", data_dir, "--examples", "64"]) == 0
    printed = capsys.readouterr().out
    assert "largest |logit difference|" in printed and "same prediction 100.0%" in printed, printed
    onnx_path = checkpoint[:-3] + ".onnx"
    if name in IMAGE_MODELS:
        image = str(tmp_path / "shoe.png")
        Image.new("RGB", (40, 30), (250, 250, 250)).save(image)
        inputs = [image]
    else:
        inputs = ["Who wrote Hamlet ?", "Where is paris ?", "What is a tiger ?"]
    outputs = []
    for path in (checkpoint, onnx_path):
        assert predict.main([path, "--json", *inputs]) == 0
        outputs.append([json.loads(line) for line in capsys.readouterr().out.splitlines()])
    for torch_row, onnx_row in zip(*outputs):
        assert onnx_row["label"] == torch_row["label"]
        assert onnx_row["probabilities"] == pytest.approx(torch_row["probabilities"], abs=1e-5)


def test_text_export_is_checked_at_several_batch_sizes_and_lengths(tiny_pretrained, tmp_path, capsys):
    checkpoint = checkpoint_of("rnn", {"cell": "lstm", "bidirectional": True}, tmp_path, tiny_pretrained)
    assert export.main([checkpoint, "--data-dir", str(tmp_path / "none"), "--examples", "64"]) == 0
    shapes = capsys.readouterr().out.split("batch shapes ")[1]
    assert all(f"({size}, " in shapes for size in BATCH_SIZES)


@pytest.mark.parametrize("content", [b"", b"not an onnx file at all", b"\x08\x07\x12\x04junk"])
def test_predict_rejects_a_corrupt_onnx_file_in_one_line(content, tmp_path, capsys):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert predict.main([str(path), "Who wrote Hamlet ?"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0]


def test_export_of_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert export.main([str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]


def test_export_never_writes_over_its_input_or_a_checkpoint_and_publishes_only_a_verified_file(
        tiny_pretrained, tmp_path, capsys, monkeypatch):
    checkpoint = checkpoint_of("dnn", {}, tmp_path, tiny_pretrained)
    data_dir = str(tmp_path / "no-data")
    assert export.main([checkpoint, "--data-dir", data_dir, "--examples", "64"]) == 0
    onnx_file = checkpoint.replace(".pt", ".onnx")
    good = open(onnx_file, "rb").read()
    refusals = {"is already an ONNX file": [onnx_file],  # an ONNX file given as the input
                "give a new .onnx file, not the checkpoint": [checkpoint, "--out", checkpoint]}
    for message, argv in refusals.items():
        capsys.readouterr()
        assert export.main([*argv, "--data-dir", data_dir]) == 2
        assert message in capsys.readouterr().err
    assert open(onnx_file, "rb").read() == good and os.path.getsize(checkpoint) > 0

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for a kill in the middle of writing the graph
    monkeypatch.setattr("onnx.save", killed)
    assert export.main([checkpoint, "--data-dir", data_dir]) == 130
    monkeypatch.undo()
    assert open(onnx_file, "rb").read() == good  # the previous file, whole
    assert [name for name in os.listdir(tmp_path) if name.endswith(".tmp")] == []


def test_export_refuses_non_finite_weights(tiny_pretrained, tmp_path, capsys):
    path = checkpoint_of("dnn", {}, tmp_path, tiny_pretrained)
    checkpoint = torch.load(path, weights_only=True)
    first = next(iter(checkpoint["model"]))
    checkpoint["model"][first][0] = float("nan")
    save_checkpoint(path, checkpoint)
    assert export.main([path, "--data-dir", str(tmp_path / "no-data")]) == 2
    assert "hold NaN or infinite values" in capsys.readouterr().err
    assert not os.path.exists(path.replace(".pt", ".onnx"))


def test_verification_fails_on_non_finite_logits(tiny_pretrained, tmp_path):
    from utils.errors import ExportError
    from utils.serve.onnx_export import export as export_graph, verify
    from utils.serve.predictor import load_for_inference
    model, checkpoint = load_for_inference(checkpoint_of("dnn", {}, tmp_path, tiny_pretrained))
    images = torch.rand(64, 1, 28, 28)
    export_graph(model, checkpoint, images[:2], str(tmp_path / "m.onnx"))
    assert verify(model, str(tmp_path / "m.onnx"), images, text=False)["same_prediction"] == 1.0
    images[3, 0, 0, 0] = float("nan")  # NaN logits on both sides would "agree" by every comparison
    with pytest.raises(ExportError, match="non-finite logits"):
        verify(model, str(tmp_path / "m.onnx"), images, text=False)


def with_metadata(source: str, target: str, **changes) -> str:
    """A copy of the ONNX file `source` whose metadata entries `changes` are replaced."""
    import onnx

    model = onnx.load(source)
    for entry in model.metadata_props:
        if entry.key in changes:
            entry.value = json.dumps(changes[entry.key])
    onnx.save(model, target)
    return target


def test_onnx_metadata_that_disagree_with_the_graph_are_one_line(tiny_pretrained, tmp_path, capsys):
    rnn = checkpoint_of("rnn", {"cell": "gru"}, tmp_path, tiny_pretrained)
    assert export.main([rnn, "--out", str(tmp_path / "rnn.onnx")]) == 0
    bert = checkpoint_of("pretrained", {}, tmp_path, tiny_pretrained)
    assert export.main([bert, "--out", str(tmp_path / "bert.onnx")]) == 0
    words = torch.load(rnn, weights_only=True)["meta"]
    subwords = torch.load(bert, weights_only=True)["meta"]
    cases = {
        "its model gives 6 scores but its metadata names 7 classes":
            ("rnn", {"class_names": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM", "EXTRA"]}),
        "cannot read inputs as its metadata describes them":  # a tokenizer with more tokens than embeddings
            ("rnn", {"meta": {**words, "tokenizer": subwords["tokenizer"]}}),
        "cannot read inputs as": ("bert", {"meta": {**subwords, "max_length": 10_000}}),  # beyond its positions
        "pad id 999 is not one of its": ("bert", {"meta": {**subwords, "tokenizer": {**subwords["tokenizer"],
                                                                                    "pad_id": 999}}}),
        "max_length 'long' is not a positive whole number": ("rnn", {"meta": {**words, "max_length": "long"}}),
        "its meta lacks mean, std": ("rnn", {"task": "fashion_mnist"}),
    }
    for message, (name, changes) in cases.items():
        path = with_metadata(str(tmp_path / f"{name}.onnx"), str(tmp_path / "changed.onnx"), **changes)
        assert_one_error_line(predict.main, [path, "Who wrote Hamlet ?"], capsys, message)
