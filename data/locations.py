"""Where a data set or a pretrained model named on the command line is: one decision for both. An
existing file or folder is local; a Hugging Face hub id ('name' or 'owner/name') is the hub; anything
else that looks like a path (./photos, photos/, a/b/c, reviews.csv) is missing, and says so."""
from __future__ import annotations

import os
import re

LOCAL, HUB, MISSING = "local", "hub", "missing"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt", ".parquet", ".pt", ".onnx", ".safetensors", ".bin")


def location(name: str) -> str:
    """LOCAL for an existing file or folder, HUB for a hub id, MISSING for a path that is not there."""
    if os.path.exists(os.path.expanduser(name)):
        return LOCAL
    if HUB_ID.fullmatch(name) and not name.lower().endswith(FILE_SUFFIXES):
        return HUB
    return MISSING
