"""export.py --format hf on a real fine-tuned run: transformers' pipeline() on the exported folder
against predict.py on the test questions.

    python bench/hf_export.py runs/transformer-.../best.pt --data-dir ../shared/data --out trec-minilm

Saves bench/results/hf-export-<tag>.json (same top-1 label share, largest probability difference,
what was compared) with the machine and command.
"""
from __future__ import annotations

import argparse

import common

import export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="/tmp/hf-export")
    parser.add_argument("--examples", type=int, default=500, help="test questions to compare on")
    parser.add_argument("--tag", default="trec-minilm")
    args = parser.parse_args()
    result = export.run(export.parse_args([args.checkpoint, "--format", "hf", "--out", args.out, "--data-dir",
                                           args.data_dir, "--examples", str(args.examples)]))
    common.save_results(f"hf-export-{args.tag}", {"checkpoint": args.checkpoint, **result})


if __name__ == "__main__":
    main()
