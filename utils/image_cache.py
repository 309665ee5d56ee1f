"""The cache of decoded image folders: each split's uint8 pixels kept in a file named by a hash of its
files' contents and labels and the target shape, with a checksum of what it holds. An image edited
in place, whatever its modification time, is another key; a damaged cache file is decoded again."""
from __future__ import annotations

import hashlib
import os
from typing import Any

import torch

from data import DataError
from data.images import decode_images
from utils.messages import MESSAGES, progress_bar
from utils.storage.files import atomic_write, cache_dir, remove_stale_temp_files

CACHE_DIR_ENV = "IMAGE_CACHE_DIR"
CACHE_FORMAT = 2  # keyed by the files' contents, with a checksum of what it holds


def image_cache_dir() -> str:
    """Where decoded image folders are kept: $IMAGE_CACHE_DIR, else the user's cache folder."""
    return cache_dir(CACHE_DIR_ENV, "image-folders")


def cache_key(digests: list[str], labels: list[int], shape: tuple[int, int, int]) -> str:
    """A hash of the files' contents with their labels, and the target shape."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{shape}".encode())
    for content, label in zip(digests, labels):
        digest.update(f"{content}:{label};".encode())
    return digest.hexdigest()[:32]


def tensor_checksum(*tensors: torch.Tensor) -> str:
    """A hash of the tensors' bytes: what a cache file must still hold when it is read back."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in tensors:
        digest.update(tensor.contiguous().numpy().data)
    return digest.hexdigest()


def cached_split(path: str, shape: tuple[int, int, int]) -> dict[str, Any] | None:
    """A split kept in the cache file `path` whose checksum holds (None: absent, or damaged, with a note)."""
    if not os.path.isfile(path):
        return None
    try:
        kept = torch.load(path, map_location="cpu", weights_only=True)
        if (kept["images"].dtype == torch.uint8 and tuple(kept["images"].shape[1:]) == shape
                and tensor_checksum(kept["images"], kept["labels"]) == kept["checksum"]):
            return kept
    except Exception:  # noqa: BLE001 - a damaged file of any kind is decoded again
        pass
    MESSAGES.info(f"note: the decoded-image cache {path} is damaged: decoding the images again")
    return None


def decoded_split(files: list[tuple[str, int]], digests: list[str], shape: tuple[int, int, int],
                  skip_bad_files: bool, progress: bool, keep: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The images and labels of one split (files with the hashes of their contents, `digests`) and the
    hashes of the files kept, read from the cache or decoded (then kept there when `keep`: by the main
    process of several)."""
    path = os.path.join(image_cache_dir(), f"{cache_key(digests, [label for _, label in files], shape)}.pt")
    kept = cached_split(path, shape)
    if kept is not None:
        return kept["images"], kept["labels"], [digests[i] for i in kept["kept"].tolist()]
    def bar(items: list[str]) -> Any:
        return progress_bar(items, what="decoding images", unit="image", shown=progress)
    try:
        images, kept_at, skipped = decode_images([file for file, _ in files], *shape, skip_bad_files, bar)
    except DataError as error:
        raise DataError(f"{error} (--skip-bad-files leaves such files out)") from error
    if skipped:
        MESSAGES.info(f"note: skipped {len(skipped)} unreadable image file(s), e.g. {skipped[0]}")
    labels = torch.tensor([files[i][1] for i in kept_at], dtype=torch.long)
    images = torch.from_numpy(images)
    if keep:
        store = {"images": images, "labels": labels, "kept": torch.tensor(kept_at, dtype=torch.long),
                 "checksum": tensor_checksum(images, labels)}
        try:
            remove_stale_temp_files(image_cache_dir())
            atomic_write(path, lambda tmp: torch.save(store, tmp))
        except Exception as error:  # noqa: BLE001 - the run goes on without the cache
            MESSAGES.info(f"note: the decoded images are not kept for later runs: {error}")
    return images, labels, [digests[i] for i in kept_at]
