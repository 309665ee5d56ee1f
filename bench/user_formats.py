"""Write the built-in data sets out as a user has their data, to try --dataset on real data:
FashionMNIST as a PNG class-folder tree (train/<class>/*.png, test/<class>/*.png) and TREC as CSV
(train.csv, test.csv with columns text,label; the coarse labels).

    python bench/user_formats.py --data-dir ../shared/data --out user-data
"""
from __future__ import annotations

import argparse
import csv
import os
import sys

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.fashion_mnist import CLASS_NAMES, load_fashion_mnist  # noqa: E402
from data.trec import load_trec_files  # noqa: E402


def write_fashion_mnist_tree(data_dir: str, out: str) -> int:
    """Every FashionMNIST image as out/<split>/<class>/<index>.png; returns how many."""
    splits = load_fashion_mnist(data_dir, allow_download=False).splits
    count = 0
    for split, part in splits.items():
        for index, (image, label) in enumerate(zip(part.inputs[:, 0].numpy(), part.labels.tolist())):
            folder = os.path.join(out, split, CLASS_NAMES[label].replace("/", "-"))
            os.makedirs(folder, exist_ok=True)
            Image.fromarray(image, "L").save(os.path.join(folder, f"{index:05d}.png"))
            count += 1
    return count


def write_trec_csv(data_dir: str, out: str) -> None:
    """TREC's training and test questions as out/train.csv and out/test.csv (text, coarse label)."""
    os.makedirs(out, exist_ok=True)
    for split, questions in load_trec_files(data_dir, allow_download=False).items():
        with open(os.path.join(out, f"{split}.csv"), "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["text", "label"])
            writer.writerows((question.text, question.coarse) for question in questions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="user-data")
    args = parser.parse_args()
    write_trec_csv(args.data_dir, os.path.join(args.out, "trec"))
    print(f"wrote {args.out}/trec/train.csv and test.csv")
    print(f"wrote {write_fashion_mnist_tree(args.data_dir, os.path.join(args.out, 'fashion_mnist')):,} PNG files "
          f"under {args.out}/fashion_mnist")


if __name__ == "__main__":
    main()
