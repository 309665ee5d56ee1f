"""Labelled texts from a user's file: CSV or TSV with a header row (quoted fields may hold commas and
line breaks), JSON Lines, or a JSON list of objects; UTF-8, with or without a byte-order mark."""
from __future__ import annotations

import csv
import json
import math
import os
import re
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


MISSING_LABELS = {"", "nan", "none", "null"}  # how spreadsheets, pandas and JSON write "no label" (any case)
INTEGRAL = re.compile(r"[+-]?\d+(\.0*)?")  # 1, -3, 1.0, 2.00: a whole number however it was written


def canonical_label(value: Any) -> str | None:
    """A label as its class is named: whole numbers one way (1 and 1.0 are one class), None when missing."""
    text = str(value).strip() if value is not None else ""
    if text.lower() in MISSING_LABELS:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() or INTEGRAL.fullmatch(text):
        return str(int(float(text)))
    return text


def csv_rows(file: Any, path: str, delimiter: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV/TSV file; a header naming a column twice, or a quote that runs over
    following lines that read as rows of their own (a quote left open), is a DataError naming the line."""
    csv.field_size_limit(max(csv.field_size_limit(), os.path.getsize(path) + 1))  # a long text is no error
    reader = csv.DictReader(file, delimiter=delimiter)
    header = reader.fieldnames or []
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataError(f"--dataset {path}: the header names column {twice[0]!r} twice; rename one")
    rows, last_line = [], reader.line_num
    for row in reader:
        first_line, last_line = last_line + 1, reader.line_num
        for value in row.values():
            if isinstance(value, str) and "\n" in value and any(
                    len(next(csv.reader([line], delimiter=delimiter), [])) >= max(len(header), 2)
                    for line in value.split("\n")[1:]):
                raise DataError(f"--dataset {path}, line {first_line}: a quote opened on this line runs over "
                                f"{last_line - first_line} more line(s) that read as rows of their own; close it "
                                "(a quote inside a field is written twice: \"\")")
        rows.append((first_line, row))
    return rows


def read_rows(path: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of every row of the file, rows as column -> value."""
    if not os.path.isfile(path):
        raise DataError(f"--dataset {path}: no such file")
    kind = os.path.splitext(path)[1][1:].upper()
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            if path.lower().endswith((".csv", ".tsv")):
                return csv_rows(file, path, "\t" if path.lower().endswith(".tsv") else ",")
            if path.lower().endswith(".jsonl"):
                rows = []
                for number, line in enumerate(file, 1):
                    try:
                        rows += [(number, json.loads(line))] if line.strip() else []
                    except json.JSONDecodeError as error:
                        raise DataError(f"--dataset {path}, line {number}: not valid JSON ({error.msg}, column "
                                        f"{error.colno})") from error
                return rows
            rows = json.load(file)
    except UnicodeDecodeError as error:
        raise DataError(f"--dataset {path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from error
    except (json.JSONDecodeError, csv.Error) as error:
        raise DataError(f"--dataset {path}: not valid {kind} ({error})") from error
    if not isinstance(rows, list):
        raise DataError(f"--dataset {path}: a .json file must hold a list of objects (one per example)")
    return list(enumerate(rows, 1))


def read_text_file(path: str, text_column: str, label_column: str) -> tuple[list[LabelledText], list[int]]:
    """The examples of the file, and the line numbers of rows skipped for an empty text or a missing label
    (MISSING_LABELS); labels that are whole numbers are named one way (canonical_label).
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
        text, label = row[text_column], canonical_label(row[label_column])
        if not isinstance(text, str) or not text.strip() or label is None:
            skipped.append(where)
            continue
        examples.append(LabelledText(text, label, where))
    return examples, skipped
