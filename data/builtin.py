"""The two built-in data sets as DataBundles: FashionMNIST and TREC, read, split and batched."""
from __future__ import annotations

from dataclasses import replace

from data.builders import image_bundle, text_bundle
from data.bundle import Batching, DataBundle, ImageSpec, TextSpec
from data.examples import Holdout, data_fingerprint, split
from data.fashion_mnist import MEAN, STD, load_fashion_mnist
from data.trec import read_trec


def fashion_mnist_bundle(data_dir: str, batching: Batching, spec: ImageSpec, holdout: Holdout) -> DataBundle:
    """FashionMNIST, normalised by its own mean and std, its validation split held out as `holdout` says."""
    data = load_fashion_mnist(data_dir)
    return image_bundle("fashion_mnist", split(data, holdout), data.class_names, batching,
                        replace(spec, mean=MEAN, std=STD), {},
                        {"image_size": 28, "data_sha256": data_fingerprint(data)})


def trec_bundle(data_dir: str, batching: Batching, spec: TextSpec, holdout: Holdout, labels: str = "coarse",
                source: str = "files") -> DataBundle:
    """TREC questions with `labels` "coarse" (6) or "fine" (50), read from the original label files or the
    hub (`source`), its validation split held out as `holdout` says."""
    data = read_trec(data_dir, labels, source)
    return text_bundle("trec", split(data, holdout), data.class_names, batching, spec,
                       {"data_sha256": data_fingerprint(data)})
