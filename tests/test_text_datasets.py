"""--dataset for the text scripts: CSV (quoted commas and line breaks, a BOM), TSV, JSON, JSONL and
Hugging Face datasets written with save_to_disk; raw-text words; predict on such models; bad files
in one line."""
from __future__ import annotations

import csv
import json
import os

import pytest

import export
import predict
import train_rnn
import train_transformer
from conftest import assert_one_error_line, exit_code, saved_accuracy
from tiny_data import trec_lines
from data.text import tokenize_raw
from data.bundle import class_names_of
from data.text_files import read_text_file
from utils.storage.checkpoint import load_checkpoint


def examples(count: int, seed: int) -> list[tuple[str, str]]:
    """(text, label) pairs the words of which say the class, written as people write (no space before '?')."""
    return [(line.split(" ", 1)[1].replace(" ?", "?"), line.split(":")[0]) for line in trec_lines(count, seed)]


def write_csv(path, rows, delimiter=",", bom=True) -> str:
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(["id", "text", "label"])
        writer.writerows([(i, text, label) for i, (text, label) in enumerate(rows)])
    return str(path)


def write_jsonl(path, rows) -> str:
    with open(path, "w", encoding="utf-8") as file:
        file.writelines(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows)
    return str(path)


def args(dataset: str, out: str, *extra: str) -> list[str]:
    return ["--dataset", dataset, "--out-dir", out, "--epochs", "4", "--batch-size", "16", "--no-progress",
            "--no-tensorboard", "--embed-dim", "16", "--hidden-size", "16", *extra]


def test_a_csv_file_trains_and_its_model_predicts_raw_text(tmp_path, capsys):
    train = examples(300, 0) + [('A text, with "quotes",\na comma and a line break', "DESC"), ("", "HUM"),
                                ("text without a label", "")]
    dataset = write_csv(tmp_path / "train.csv", train)
    test = write_csv(tmp_path / "test.tsv", examples(60, 1), delimiter="\t", bom=False)
    summary = train_rnn.main(args(dataset, str(tmp_path / "run"), "--test-dataset", test, "--lr", "1e-2"))
    said = capsys.readouterr().out
    assert "skipped 2 row(s)" in said and "6 classes, 271 training / 30 validation / 60 test texts" in said
    assert summary["test_acc"] > 0.9
    best = load_checkpoint(str(tmp_path / "run" / "best.pt"))
    assert best["task"] == "text" and best["class_names"] == sorted({label for _, label in train if label})
    assert predict.main([str(tmp_path / "run" / "best.pt"), "Where is Paris?", "Who invented radio?"]) == 0
    assert [line.split(": ")[1][:3] for line in capsys.readouterr().out.splitlines()] == ["LOC", "HUM"]
    assert export.main([str(tmp_path / "run" / "best.pt"), "--examples", "64"]) == 0  # checked on the run's file
    assert f"checked on 64 texts of {dataset}, batch shapes" in capsys.readouterr().out


def test_jsonl_json_and_integer_labels_are_read(tmp_path):
    rows = [(text, {"ABBR": 0, "DESC": 1, "ENTY": 2, "HUM": 3, "LOC": 4, "NUM": 10}[label])
            for text, label in examples(30, 0)]
    jsonl = write_jsonl(tmp_path / "a.jsonl", rows)
    (tmp_path / "a.json").write_text(json.dumps([{"text": t, "label": y} for t, y in rows]), encoding="utf-8")
    for path in (jsonl, str(tmp_path / "a.json")):
        found, skipped = read_text_file(path, "text", "label")
        assert len(found) == 30 and not skipped and found[0].text == rows[0][0]
    assert class_names_of([str(y) for _, y in rows]) == ["0", "1", "2", "3", "4", "10"]  # numeric order


def test_raw_text_words_split_punctuation_and_fold_case():
    assert tokenize_raw("Don't STOP: Straße, ÉCOLE?! state-of-the-art U.S. Smith's cats.") == [
        "don't", "stop", ":", "strasse", ",", "école", "?!", "state-of-the-art", "u.s", ".", "smith's", "cats", "."]
    assert tokenize_raw("What 's `` this ''?") == ["what", "'s", "``", "this", "''?"]


def test_a_saved_hugging_face_dataset_finds_its_columns_and_class_names(tmp_path, tiny_pretrained, capsys):
    import datasets

    names = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    features = datasets.Features({"sentence": datasets.Value("string"), "coarse": datasets.ClassLabel(names=names),
                                  "id": datasets.Value("int64")})

    def part(count, seed):
        rows = examples(count, seed)
        return datasets.Dataset.from_dict({"sentence": [t for t, _ in rows], "coarse": [names.index(y) for _, y in rows],
                                           "id": list(range(count))}, features=features)
    folder = str(tmp_path / "saved")
    datasets.DatasetDict({"train": part(120, 0), "test": part(30, 1)}).save_to_disk(folder)
    summary = train_transformer.main(["--dataset", folder, "--pretrained", tiny_pretrained, "--out-dir",
                                      str(tmp_path / "run"), "--epochs", "1", "--no-progress", "--no-tensorboard"])
    assert "6 classes, 108 training / 12 validation / 30 test texts" in capsys.readouterr().out
    assert load_checkpoint(str(tmp_path / "run" / "best.pt"))["class_names"] == names
    assert summary["test_acc"] == saved_accuracy(str(tmp_path / "run"))


def test_every_bad_text_dataset_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    good = write_csv(tmp_path / "good.csv", examples(60, 0))
    one_label = write_csv(tmp_path / "one.csv", [(text, "HUM") for text, _ in examples(20, 0)])
    empty = write_csv(tmp_path / "empty.csv", [("", "HUM"), ("  ", "LOC")])
    many_labels = write_csv(tmp_path / "many.csv", [(f"text {i}", f"c{i}") for i in range(150)])
    unseen = write_csv(tmp_path / "unseen.csv", [("What is it?", "OTHER")] + examples(10, 1))
    other_columns = tmp_path / "body.csv"
    other_columns.write_text("body,label\nWho is it?,HUM\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,label\ncaf\xe9 au lait,DESC\n".encode("latin-1"))
    open_quote = tmp_path / "open-quote.csv"  # the quote of line 4 closes only on line 6, swallowing line 5
    open_quote.write_text("text,label\nWho is it?,HUM\nWhere is Lima?,LOC\n\"Where is the open quote,LOC\n"
                          "What is NASA?,ABBR\nHow far is it?\" he said,NUM\n" + "Who wrote it?,HUM\n" * 20)
    twice = tmp_path / "twice.csv"
    twice.write_text("text,label,label\n" + "".join(f"{text},{label},x\n" for text, label in examples(20, 0)))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(open(write_jsonl(tmp_path / "ok.jsonl", examples(20, 0))).read().replace('"text"', "text", 8)
                      .replace("text", '"text"', 7))  # line 8 lost the quotes of its key
    cases = {
        "no column 'question' (its columns: id, text, label); name the right one with --text-column":
            (good, ["--text-column", "question"]),
        "have only one label": (one_label, []),
        "a class for almost every text": (many_labels, []),
        "no row with both a text and a label": (empty, []),
        "has classes the training data lacks: OTHER": (good, ["--test-dataset", unseen]),
        f"--test-dataset {other_columns}, line 2: no column 'text'": (good, ["--test-dataset", str(other_columns)]),
        "not UTF-8 text": (str(latin1), []),
        f"{open_quote}, line 4: a quote opened on this line runs over 2 more line(s)": (str(open_quote), []),
        "the header names column 'label' twice": (str(twice), []),
        f"{broken}, line 8: not valid JSON": (str(broken), []),
        "no such file": (str(tmp_path / "missing.csv"), []),
        "--dataset no_such_texts/: no such file or folder": ("no_such_texts/", []),
        "not in the local cache (HF_HUB_OFFLINE is set)": ("someone/no-such-dataset", []),
        "--labels is for --dataset trec, not --dataset": (good, ["--labels", "fine"]),
        "--text-column is for your own --dataset, not --dataset trec": ("trec", ["--text-column", "t"]),
    }
    for message, (dataset, flags) in cases.items():
        out = tmp_path / "run"
        assert_one_error_line(train_rnn.main, args(dataset, str(out), *flags), capsys, message)
        assert not out.exists()


@pytest.mark.parametrize("name", ["train.tsv", "train.jsonl"])
def test_other_formats_train_end_to_end(name, tmp_path):
    rows = examples(90, 0)
    path = write_csv(tmp_path / name, rows, delimiter="\t") if name.endswith(".tsv") else \
        write_jsonl(tmp_path / name, rows)
    summary = train_rnn.main(args(path, str(tmp_path / "run"), "--epochs", "1"))
    assert summary["epochs_run"] == 1 and os.path.isfile(tmp_path / "run" / "report.json")


def test_a_resume_or_a_teacher_on_other_data_is_refused_by_the_fingerprint(tmp_path, capsys):
    rows = examples(60, 0)
    dataset = write_csv(tmp_path / "train.csv", rows)
    run = str(tmp_path / "run")
    train_rnn.main(args(dataset, run, "--epochs", "1"))
    write_csv(tmp_path / "train.csv", rows[:-1])  # the file changed under the same name
    assert exit_code(train_rnn.main, ["--resume", run, "--epochs", "2", "--no-progress"]) == 2
    assert "was trained on other data than this run reads" in capsys.readouterr().err
    other = write_csv(tmp_path / "other.csv", examples(60, 5))
    teacher = os.path.join(run, "best.pt")
    assert exit_code(train_rnn.main, args(other, str(tmp_path / "student"), "--teacher", teacher,
                                          "--preset", "none")) == 2
    assert f"--teacher {teacher} was trained on other data" in capsys.readouterr().err


def test_labels_are_read_as_written_missing_ones_skipped_whole_numbers_one_class(tmp_path, capsys):
    rows = [(text, {"ABBR": "1", "DESC": "1.0", "ENTY": "2", "HUM": "2.00", "LOC": "3", "NUM": "3"}[label])
            for text, label in examples(120, 0)]
    rows += [("Who is missing?", missing) for missing in ("", "NaN", "nan", "None", "null")]
    rows += [("A long text " + "word " * 30_000, "1")]  # 150 KB in one field
    summary = train_rnn.main(args(write_csv(tmp_path / "numbers.csv", rows), str(tmp_path / "run"), "--epochs", "1"))
    said = capsys.readouterr().out
    assert "skipped 5 row(s)" in said and "3 classes" in said and summary["epochs_run"] == 1
    assert load_checkpoint(str(tmp_path / "run" / "best.pt"))["class_names"] == ["1", "2", "3"]
