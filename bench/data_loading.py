"""An image folder against the built-in loader, in one run: FashionMNIST written as a PNG class-folder
tree (bench/user_formats.py), read with --dataset DIR. Measures the first decode (images per second,
into an empty cache), the cached start (seconds until the bundle is ready), and a short training run
from each source with the same seed (train_dnn.py, --preset fast unless told): training time and accuracy.

    python bench/user_formats.py --data-dir ../shared/data --out user-data
    python bench/data_loading.py --folder user-data/fashion_mnist --data-dir ../shared/data
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import common
from utils.errors import one_line_errors


def bundle_seconds(config, runtime) -> float:
    """Seconds to build the data bundle of `config` (reading, decoding or the cache, splitting)."""
    from utils.data_setup import image_data

    start = time.perf_counter()
    image_data(config, runtime)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default="user-data/fashion_mnist")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--preset", default="fast", help="train_dnn.py's recipe for the runs ('none': its defaults)")
    parser.add_argument("--epochs", type=int, default=0, help="epochs of those runs (0: the recipe's)")
    args = parser.parse_args()

    import torch

    import train_dnn
    from data.images import image_files
    from utils.runtime import Runtime

    cache = tempfile.mkdtemp(prefix="image-cache-")
    os.environ["IMAGE_CACHE_DIR"] = cache
    runtime = Runtime(torch.device("cpu"), "fp32")
    folder_config = train_dnn.DNNConfig(dataset=args.folder, progress=False)
    files = len(image_files(args.folder))
    first = bundle_seconds(folder_config, runtime)
    cached = bundle_seconds(folder_config, runtime)
    builtin = bundle_seconds(train_dnn.DNNConfig(data_dir=args.data_dir), runtime)
    result = {"files": files, "first_decode_seconds": round(first, 1), "images_per_second": round(files / first),
              "cached_start_seconds": round(cached, 2), "builtin_start_seconds": round(builtin, 2), "runs": {}}
    print(f"{files:,} files: first decode {first:.1f} s ({files / first:,.0f} images/s), cached start "
          f"{cached:.2f} s, built-in loader {builtin:.2f} s")
    common_flags = ["--preset", args.preset, *(["--epochs", str(args.epochs)] if args.epochs else []),
                    "--no-progress", "--no-tensorboard", "--precision", "fp32"]
    # the folder holds out a stratified twelfth of its training images: the 5,000 the built-in loader holds out
    for name, flags in (("builtin", ["--data-dir", args.data_dir]),
                        ("folder", ["--dataset", args.folder, "--val-fraction", str(5000 / 60000)])):
        out = tempfile.mkdtemp(prefix=f"bench-{name}-")  # an empty folder: a new run's
        summary = train_dnn.main([*flags, *common_flags, "--out-dir", out])  # one seed: 0
        result["runs"][name] = {"test_acc": summary["test_acc"], "best_val_acc": summary["best_val_acc"],
                                "train_seconds": round(summary["train_seconds"], 1)}
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    common.print_table([{"source": name, **row} for name, row in result["runs"].items()],
                       ["source", "test_acc", "best_val_acc", "train_seconds"])
    common.save_results(f"data-loading-fashion-mnist-folder-{args.preset}", result)


if __name__ == "__main__":
    one_line_errors(main)
