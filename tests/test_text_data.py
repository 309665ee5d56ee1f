"""TREC parsing, vocabulary, encoding and bucketed batches."""
from __future__ import annotations

import os

import pytest
import torch

import train_rnn
from conftest import text_args
from data import DataError
from data.bundle import Batching, Order, TextSpec
from data.examples import Holdout
from data.builtin import trec_bundle
from data.text import PAD, UNK, TextBatches, build_vocabulary, tokenize
from data.tokenization import tokenizer_from_meta
from data.trec import load_trec_files, parse_line, questions_from_hub_rows, read_label_file
from utils.config import parse_config
from utils.data_setup import text_data
from utils.runtime import Runtime
from utils.storage.checkpoint import load_checkpoint

CPU = Runtime(torch.device("cpu"), "fp32")


def test_parse_line_keeps_coarse_and_fine():
    question = parse_line("DESC:manner How did serfdom develop in and then leave Russia ?\n", "f", 1)
    assert (question.coarse, question.fine) == ("DESC", "DESC:manner")
    assert question.text == "How did serfdom develop in and then leave Russia ?"


@pytest.mark.parametrize("line,problem", [("no label here", "expected 'COARSE:fine"),
                                          ("XYZ:abc What ?", "unknown coarse label 'XYZ'"),
                                          ("LOC:city   ", "the question is empty")])
def test_malformed_lines_name_file_and_line(line, problem):
    with pytest.raises(DataError, match=f"f.label, line 7: {problem}"):
        parse_line(line, "f.label", 7)


def test_latin1_byte_is_read(trec_dir):
    splits = load_trec_files(trec_dir, allow_download=False)
    assert splits["train"][1].text == "Which city is a sister\u00f0city of Paris ?"
    assert len(splits["train"]) == 240 and len(splits["test"]) == 60


def test_malformed_file_reports_line_number(trec_dir):
    path = os.path.join(trec_dir, "TREC", "TREC_10.label")
    with open(path, "a", encoding="latin-1") as f:
        f.write("garbage\n")
    with pytest.raises(DataError, match=r"TREC_10.label, line 61"):
        read_label_file(path)


def test_missing_files_say_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_trec_files(str(tmp_path), allow_download=False)


def test_vocabulary_from_training_only_and_unknown_words():
    vocabulary = build_vocabulary([tokenize("What is a cat ?"), tokenize("what IS it ?")], min_freq=2)
    assert vocabulary.tokens[:2] == [PAD, UNK]
    assert set(vocabulary.tokens[2:]) == {"what", "is", "?"}
    assert vocabulary.encode(["what", "zebra"]) == [vocabulary.index["what"], 1]


def test_hub_rows_become_questions():
    rows = [{"text": "Where is Paris ?", "coarse_label": 4, "fine_label": 1}]
    questions = questions_from_hub_rows(rows, ["ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"], ["ABBR:abb", "LOC:city"])
    assert questions[0].coarse == "LOC" and questions[0].fine == "LOC:city"


def test_bucketed_batches_cover_everything_with_little_padding():
    torch.manual_seed(0)
    sequences = [[2] * int(n) for n in torch.randint(1, 30, (500,))]
    labels = list(range(500))
    bucketed = TextBatches(sequences, labels, 20, Order(shuffle=True, seed=0), bucket=True)
    plain = TextBatches(sequences, labels, 20, Order(shuffle=True, seed=0), bucket=False)
    def padded_cells(batches):
        return sum(ids.numel() for (ids, _), _ in batches)
    assert sorted(t for _, targets in bucketed for t in targets.tolist()) == labels
    assert padded_cells(bucketed) < 0.7 * padded_cells(plain)
    for (ids, lengths), _ in bucketed:
        assert ids.shape[1] == lengths.max() and (ids[torch.arange(len(ids)), lengths - 1] == 2).all()


def test_example_order_maps_batches_back():
    sequences = [[3] * n for n in (5, 1, 3, 2)]
    batches = TextBatches(sequences, [0, 1, 2, 3], 2)
    assert batches.example_order().tolist() == [1, 3, 2, 0]


def test_bundle_labels_and_vocabulary(trec_dir):
    batching, spec = Batching(16, 64), TextSpec(min_freq=1)
    coarse = trec_bundle(trec_dir, batching, spec, Holdout(val_size=40), labels="coarse")
    assert coarse.class_names == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert coarse.train.num_examples == 200 and coarse.val.num_examples == 40
    fine = trec_bundle(trec_dir, batching, spec, Holdout(val_size=40), labels="fine")
    assert "LOC:city" in fine.class_names and fine.model_kwargs["num_classes"] == len(fine.class_names)
    again = trec_bundle(trec_dir, batching, TextSpec(tokenizer=tokenizer_from_meta(coarse.meta)),
                        Holdout(val_size=40))
    assert again.meta["tokenizer"] == coarse.meta["tokenizer"]


def test_split_seed_fixes_the_validation_questions_whatever_the_seed(trec_dir):
    spec = TextSpec(min_freq=1)

    def questions(bundle, split: str) -> set[tuple[int, ...]]:
        return {tuple(ids[:length].tolist()) for (ids, lengths), _ in getattr(bundle, split)
                for ids, length in zip(ids, lengths.tolist())}

    seed0 = trec_bundle(trec_dir, Batching(16, 64, seed=0), spec, Holdout(seed=0, val_size=40))
    seed1 = trec_bundle(trec_dir, Batching(16, 64, seed=1), spec, Holdout(seed=1, val_size=40))
    assert questions(seed1, "val") != questions(seed0, "val")  # the seed draws it
    held_out = trec_bundle(trec_dir, Batching(16, 64, seed=1), spec, Holdout(seed=1, split_seed=0, val_size=40))
    assert questions(held_out, "val") == questions(seed0, "val") and len(questions(seed0, "val")) > 30
    assert questions(held_out, "train") == questions(seed0, "train")
    assert held_out.meta["tokenizer"] == seed0.meta["tokenizer"]  # built from the same training questions


def test_a_recurrent_model_reads_subword_ids_with_tokenizer(trec_dir, tiny_pretrained, tmp_path, capsys):
    import train_rnn
    from utils.storage.checkpoint import load_checkpoint
    from utils.serve.predictor import load_for_inference
    common = ["--data-dir", trec_dir, "--epochs", "1", "--val-size", "40", "--no-progress", "--no-tensorboard"]
    train_rnn.main([*common, "--out-dir", str(tmp_path / "run"), "--tokenizer", tiny_pretrained])
    checkpoint = load_checkpoint(str(tmp_path / "run" / "best.pt"))
    tokenizer = tokenizer_from_meta(checkpoint["meta"])
    assert checkpoint["meta"]["tokenizer"]["kind"] == "subword"
    assert checkpoint["model"]["embedding.weight"].shape[0] == tokenizer.vocab_size  # one row per subword id
    model, _ = load_for_inference(str(tmp_path / "run" / "best.pt"))  # a predictor rebuilds the same tokenizer
    assert model.embedding.num_embeddings == tokenizer.vocab_size


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
