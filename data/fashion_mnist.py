"""FashionMNIST from its four IDX files: find them (or download them), verify, decode."""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
import numpy as np
import torch

from data import DataError
from data.examples import Examples, LabelledData

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530  # of the 60,000 training images, pixels scaled to [0, 1]
FILES = {  # split -> (images file, labels file), as torchvision names them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
GZ_MD5 = {  # of the published .gz files (torchvision's table)
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
DECODED_MD5 = {  # of the decompressed files: Debian rewrites gzip headers, not the content
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
IDX_UBYTE = 0x08


def raw_dir(data_dir: str) -> str:
    """Where the IDX files live under a data folder (torchvision's layout)."""
    return os.path.join(data_dir, "FashionMNIST", "raw")


def find_file(folder: str, name: str) -> str | None:
    """The path of `name` or `name.gz` in `folder`, if either exists."""
    for candidate in (name + ".gz", name):
        path = os.path.join(folder, candidate)
        if os.path.isfile(path):
            return path
    return None


def read_bytes(path: str) -> bytes:
    """The file's content, decompressed when it is gzip."""
    try:
        with open(path, "rb") as f:
            content = f.read()
        return gzip.decompress(content) if content[:2] == b"\x1f\x8b" else content
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({error}); the file is truncated or corrupt, "
                        "delete it to download it again") from error


def parse_idx(content: bytes, path: str, ndim: int) -> np.ndarray:
    """Decode IDX bytes (unsigned bytes, `ndim` dimensions) into an array, checking the header."""
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise DataError(f"{path}: only {len(content)} bytes, too short for an IDX header")
    if content[0] != 0 or content[1] != 0 or content[2] != IDX_UBYTE or content[3] != ndim:
        raise DataError(f"{path}: wrong magic number {content[:4].hex()} "
                        f"(expected 000008{ndim:02x}: unsigned bytes, {ndim} dimensions)")
    shape = tuple(int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(content) - header_size != expected:
        raise DataError(f"{path}: header says shape {shape} ({expected} bytes of data) "
                        f"but the file holds {len(content) - header_size}; it is truncated or corrupt")
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def read_split(folder: str, split: str) -> Examples:
    """Decode one split's images ((N, 1, 28, 28) uint8) and labels from `folder`, checking that their counts agree."""
    images_name, labels_name = FILES[split]
    images_path, labels_path = find_file(folder, images_name), find_file(folder, labels_name)
    images = parse_idx(read_bytes(images_path), images_path, ndim=3)
    labels = parse_idx(read_bytes(labels_path), labels_path, ndim=1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} "
                        f"holds {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{labels_path}: label {labels.max()} is not one of the 10 classes")
    return Examples(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def has_all_files(folder: str) -> bool:
    """True when all four IDX files (compressed or not) are in `folder`."""
    return all(find_file(folder, name) for pair in FILES.values() for name in pair)


def debian_files_valid(folder: str) -> bool:
    """True when Debian's copies decode to exactly the published content."""
    for pair in FILES.values():
        for name in pair:
            path = find_file(folder, name)
            if hashlib.md5(read_bytes(path)).hexdigest() != DECODED_MD5[name]:
                return False
    return True


def download(folder: str) -> None:
    """Download the four .gz files from torchvision's mirrors into `folder`, verifying md5."""
    from torchvision.datasets.utils import download_url  # imported here: only needed online

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create {folder} to download FashionMNIST into ({error}); "
                        "use --data-dir to choose a writable folder") from error
    for name, md5 in GZ_MD5.items():
        if find_file(folder, name):
            continue
        errors = []
        for mirror in MIRRORS:
            try:
                download_url(mirror + name + ".gz", root=folder, filename=name + ".gz", md5=md5)
                break
            except Exception as error:  # network errors come in many types
                errors.append(f"{mirror}: {error}")
        else:
            raise DataError(f"FashionMNIST not found in {folder} and the download of {name}.gz failed "
                            f"({'; '.join(errors)}). Offline? Point --data-dir (or $CLASSIFY_DATA_DIR) "
                            "at a folder holding FashionMNIST/raw/*-ubyte.gz, e.g. --data-dir ../shared/data")


def locate(data_dir: str, allow_download: bool = True) -> str:
    """The folder to read the IDX files from: the data folder, Debian's package, or a download."""
    folder = raw_dir(data_dir)
    if has_all_files(folder):
        return folder
    if has_all_files(DEBIAN_DIR) and debian_files_valid(DEBIAN_DIR):
        return DEBIAN_DIR
    if not allow_download:
        raise DataError(f"FashionMNIST not found: expected {', '.join(n + '.gz' for n in GZ_MD5)} in {folder}; "
                        "pass --data-dir (or set $CLASSIFY_DATA_DIR) to the folder holding FashionMNIST/raw/")
    download(folder)
    return folder


def load_fashion_mnist(data_dir: str, allow_download: bool = True) -> LabelledData:
    """FashionMNIST's two splits, "train" (60,000 images) and "test" (10,000), and its class names."""
    folder = locate(data_dir, allow_download)
    return LabelledData({split: read_split(folder, split) for split in FILES}, list(CLASS_NAMES))
