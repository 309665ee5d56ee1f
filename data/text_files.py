"""Labelled texts from a user's file: CSV or TSV with a header row (quoted fields may hold commas and
line breaks), JSON Lines, or a JSON list of objects; UTF-8, with or without a byte-order mark."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from typing import Any

from data import DataError

TEXT_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


@dataclass(frozen=True)
class LabelledText:
    """One example: its text, its label as written, and where it was (line or row number)."""

    text: str
    label: str
    where: int


def is_text_file(spec: str) -> bool:
    """Whether a --dataset names a text file this module reads."""
    return spec.lower().endswith(TEXT_SUFFIXES)


def read_rows(path: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of every row of the file, rows as column -> value."""
    if not os.path.isfile(path):
        raise DataError(f"--dataset {path}: no such file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            if path.lower().endswith((".csv", ".tsv")):
                reader = csv.DictReader(file, delimiter="\t" if path.lower().endswith(".tsv") else ",")
                return [(reader.line_num, row) for row in reader]
            if path.lower().endswith(".jsonl"):
                return [(number, json.loads(line)) for number, line in enumerate(file, 1) if line.strip()]
            rows = json.load(file)
    except UnicodeDecodeError as error:
        raise DataError(f"--dataset {path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from error
    except (json.JSONDecodeError, csv.Error) as error:
        raise DataError(f"--dataset {path}: not valid {os.path.splitext(path)[1][1:].upper()} ({error})") from error
    if not isinstance(rows, list):
        raise DataError(f"--dataset {path}: a .json file must hold a list of objects (one per example)")
    return list(enumerate(rows, 1))


def read_text_file(path: str, text_column: str, label_column: str) -> tuple[list[LabelledText], list[int]]:
    """The examples of the file, and the line numbers of rows skipped for an empty text or a blank label.
    A row that is not an object, or lacks a named column, is a DataError listing the columns it has."""
    examples, skipped = [], []
    for where, row in read_rows(path):
        if not isinstance(row, dict):
            raise DataError(f"--dataset {path}, line {where}: not an object with columns")
        for column, flag in ((text_column, "--text-column"), (label_column, "--label-column")):
            if column not in row:
                columns = ", ".join(str(name) for name in row if name is not None) or "none"
                raise DataError(f"--dataset {path}, line {where}: no column {column!r} (its columns: {columns}); "
                                f"name the right one with {flag}")
        text, label = row[text_column], row[label_column]
        if not isinstance(text, str) or not text.strip() or label is None or not str(label).strip():
            skipped.append(where)
            continue
        examples.append(LabelledText(text, str(label).strip(), where))
    return examples, skipped
