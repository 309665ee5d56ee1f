"""TREC question classification (Li & Roth 2002): find or download the label files, parse them."""
from __future__ import annotations

import os
from dataclasses import dataclass

from data import DataError
from data.examples import LabelledData, labelled

COARSE_LABELS = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
FILES = {"train": "train_5500.label", "test": "TREC_10.label"}
MD5 = {"train_5500.label": "073462e3fcefaae31e00edb1f18d2d02", "TREC_10.label": "323a3554401d86e650717e2d2f942589"}
URL = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
HUB_DATASET = "CogComp/trec"
ENCODING = "latin-1"  # one training line holds the byte 0xF0, which is not valid UTF-8


@dataclass(frozen=True)
class Question:
    """One labelled question: its text and its coarse (e.g. LOC) and fine (e.g. city) label."""

    text: str
    coarse: str
    fine: str


def parse_line(line: str, path: str, line_number: int) -> Question:
    """Parse `COARSE:fine question words ...`; malformed lines raise DataError naming file and line."""
    label, _, text = line.strip().partition(" ")
    coarse, colon, fine = label.partition(":")
    where = f"{path}, line {line_number}"
    if not colon or not fine:
        raise DataError(f"{where}: expected 'COARSE:fine question ...', got {line.strip()[:60]!r}")
    if coarse not in COARSE_LABELS:
        raise DataError(f"{where}: unknown coarse label {coarse!r} (expected one of {', '.join(COARSE_LABELS)})")
    if not text.strip():
        raise DataError(f"{where}: the question is empty")
    return Question(text.strip(), coarse, f"{coarse}:{fine}")


def read_label_file(path: str) -> list[Question]:
    """All questions of one TREC .label file (decoded as Latin-1)."""
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from error
    # only LF (or CRLF) ends a line: str.splitlines would also break at bytes such as 0x85 or 0x1c,
    # which Latin-1 decodes to characters that may stand inside a question
    lines = [line.rstrip("\r") for line in content.decode(ENCODING).split("\n")]
    questions = [parse_line(line, path, number) for number, line in enumerate(lines, 1) if line.strip()]
    if not questions:
        raise DataError(f"{path}: holds no questions")
    return questions


def download(folder: str) -> None:
    """Download the two original files into `folder`, verifying their md5."""
    from torchvision.datasets.utils import download_url  # a plain, md5-checking downloader

    try:
        os.makedirs(folder, exist_ok=True)
        for name, md5 in MD5.items():
            if not os.path.isfile(os.path.join(folder, name)):
                download_url(URL + name, root=folder, filename=name, md5=md5)
    except Exception as error:  # network and file-system errors come in many types
        raise DataError(f"TREC not found in {folder} and the download from {URL} failed ({error}). "
                        "Offline? Point --data-dir (or $CLASSIFY_DATA_DIR) at a folder holding "
                        "TREC/train_5500.label and TREC/TREC_10.label, e.g. --data-dir ../shared/data") from error


def load_trec_files(data_dir: str, allow_download: bool = True) -> dict[str, list[Question]]:
    """{"train": 5,452 questions, "test": 500} from <data_dir>/TREC/, downloading them if missing."""
    folder = os.path.join(data_dir, "TREC")
    missing = [name for name in FILES.values() if not os.path.isfile(os.path.join(folder, name))]
    if missing and not allow_download:
        raise DataError(f"TREC not found: expected {', '.join(missing)} in {folder}; "
                        "pass --data-dir (or set $CLASSIFY_DATA_DIR) to the folder holding TREC/")
    if missing:
        download(folder)
    return {split: read_label_file(os.path.join(folder, name)) for split, name in FILES.items()}


def questions_from_hub_rows(rows: list[dict], coarse_names: list[str], fine_names: list[str]) -> list[Question]:
    """Questions from rows of the Hugging Face `CogComp/trec` data set (integer labels + names)."""
    questions = []
    for row in rows:
        coarse = coarse_names[row["coarse_label"]]
        fine = fine_names[row["fine_label"]].split(":")[-1]
        questions.append(Question(row["text"].strip(), coarse, f"{coarse}:{fine}"))
    return questions


def load_trec_hub() -> dict[str, list[Question]]:
    """Both splits from the `datasets` hub (needs the network, or its local cache)."""
    try:
        import datasets

        loaded = datasets.load_dataset(HUB_DATASET)
    except Exception as error:
        raise DataError(f"could not load {HUB_DATASET} from the Hugging Face hub ({error}); "
                        "use --source files with --data-dir instead") from error
    features = loaded["train"].features
    coarse_names, fine_names = features["coarse_label"].names, features["fine_label"].names
    return {split: questions_from_hub_rows(list(loaded[split]), coarse_names, fine_names)
            for split in ("train", "test")}


def read_trec(data_dir: str, labels: str = "coarse", source: str = "files") -> LabelledData:
    """TREC's "train" and "test" questions, labelled by their `labels` ("coarse": 6 classes, "fine": the 50
    of the training questions), read from the original label files in <data_dir>/TREC/ (`source`
    "files") or from the hub ("hub")."""
    questions = load_trec_hub() if source == "hub" else load_trec_files(data_dir)
    return labelled("TREC", {split: ([q.text for q in part], [getattr(q, labels) for q in part])
                             for split, part in questions.items()}, COARSE_LABELS if labels == "coarse" else None)
