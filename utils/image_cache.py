"""The cache of decoded image folders: each split's uint8 pixels in a .npy file that runs memory-map
(data.disk_images), named by a hash of its files' contents, labels and framing, with a checksum of
what it holds. An image edited in place, whatever its modification time, is another key; a damaged
cache file is decoded again. Decoding runs in parallel processes and commits its progress as it
goes, so a killed decode resumes where it stopped."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

import numpy as np
import torch

try:
    import fcntl  # POSIX; elsewhere two runs of one folder at once are not kept apart
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from data import DataError
from data.disk_images import DiskImages
from data.framing import Framing, decode_images
from utils.errors import CheckpointError, WriteError
from utils.messages import MESSAGES, progress_bar
from utils.storage.files import cache_dir, read_json, remove_quietly, remove_stale_temp_files, save_json

CACHE_DIR_ENV = "IMAGE_CACHE_DIR"
CACHE_FORMAT = 3  # a memory-mapped .npy file with a .json record: labels, files kept, checksum
CHUNK = 64  # images a decoding process takes at a time
COMMIT_EVERY = 16  # chunks decoded between two commits of the progress


def image_cache_dir() -> str:
    """Where decoded image folders are kept: $IMAGE_CACHE_DIR, else the user's cache folder."""
    return cache_dir(CACHE_DIR_ENV, "image-folders")


def cache_key(digests: list[str], labels: list[int], framing: Framing) -> str:
    """A hash of the files' contents with their labels, and how they are framed."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{framing}".encode())
    for content, label in zip(digests, labels):
        digest.update(f"{content}:{label};".encode())
    return digest.hexdigest()[:32]


def file_checksum(path: str) -> str:
    """A hash of a file's bytes, read a block at a time."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        while block := file.read(1 << 24):
            digest.update(block)
    return digest.hexdigest()


def record_of(path: str) -> Any:
    """The JSON record in `path` (None: absent, or unreadable: a killed write)."""
    try:
        return read_json(path) if os.path.isfile(path) else None
    except CheckpointError:
        return None


def cached_split(stem: str, framing: Framing) -> tuple[DiskImages, torch.Tensor, list[int]] | None:
    """The images (on disk), labels and kept file positions of a split in the cache files `stem`.npy
    and `stem`.json, when the checksum holds (None: absent, or damaged, with a note)."""
    record = record_of(f"{stem}.json")
    if record is None:
        return None
    try:
        images = DiskImages(f"{stem}.npy")
        if (record.get("format") == CACHE_FORMAT and tuple(images.shape[1:]) == framing.shape
                and len(images) == len(record["labels"]) and file_checksum(f"{stem}.npy") == record["checksum"]):
            return images, torch.tensor(record["labels"], dtype=torch.long), list(record["kept"])
    except Exception:  # noqa: BLE001 - a damaged file of any kind is decoded again
        pass
    MESSAGES.info(f"note: the decoded-image cache {stem}.npy is damaged: decoding the images again")
    return None


def decode_chunk(paths: list[str], framing: Framing, skip_bad_files: bool, progress: Any = None
                 ) -> tuple[np.ndarray, list[int], list[str]]:
    """decode_images of some files (a chunk, in a worker process); an unreadable file's DataError
    says how to leave such files out."""
    try:
        return decode_images(paths, framing, skip_bad_files, *([progress] if progress else []))
    except DataError as error:
        raise DataError(f"{error} (--skip-bad-files leaves such files out)") from error


def decoding_processes(chunks: int) -> int:
    """How many processes decode: one per CPU this process may use, at most one per chunk."""
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                      chunks))


def decoded_chunks(paths: list[str], framing: Framing, skip_bad_files: bool, start: int
                   ) -> Iterator[tuple[int, tuple[np.ndarray, list[int], list[str]]]]:
    """(first position, decode_chunk result) of each chunk of `paths` from position `start`, in order."""
    starts = list(range(start, len(paths), CHUNK))
    work = [(paths[first:first + CHUNK], framing, skip_bad_files) for first in starts]
    processes = decoding_processes(len(work))
    if processes == 1:
        yield from zip(starts, (decode_chunk(*args) for args in work))
        return
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                               initializer=start_decoding_process, initargs=(os.getpid(),))
    try:
        yield from zip(starts, pool.map(decode_chunk, *zip(*work)))
    finally:  # stopped or failed: the chunks not started are dropped, the running ones end
        pool.shutdown(wait=True, cancel_futures=True)


def start_decoding_process(parent: int) -> None:
    """In a decoding process: leave Ctrl-C to the run (which stops the pool), die on SIGTERM, and end
    when the run that started it is gone (killed with -9), instead of waiting for work forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def end_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=end_with_parent, daemon=True).start()


def check_disk_space(folder: str, needed: int) -> None:
    """DataError when the cache folder has less room than `needed` bytes."""
    os.makedirs(folder, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DataError(f"the decoded images need {needed / 2 ** 30:.1f} GiB in the image cache {folder}, which has "
                        f"{free / 2 ** 30:.1f} GiB free: free some space, set {CACHE_DIR_ENV} to a larger disk, or "
                        "give a smaller --image-size")


def decode_into_cache(files: list[tuple[str, int]], framing: Framing, skip_bad_files: bool, stem: str,
                      progress: bool) -> tuple[DiskImages, torch.Tensor, list[int]]:
    """Decode every file into `stem`.npy (and its record `stem`.json), resuming a decode of the same
    files that was stopped (its progress is in `stem`.partial.npy and `stem`.partial.json); returns
    what cached_split returns."""
    paths, count = [path for path, _ in files], len(files)
    partial, state_path = f"{stem}.partial.npy", f"{stem}.partial.json"
    state = record_of(state_path)
    if not (isinstance(state, dict) and state.get("count") == count and os.path.isfile(partial)):
        check_disk_space(os.path.dirname(stem), 2 * count * int(np.prod(framing.shape)))
        state = {"count": count, "done": 0, "kept": [], "skipped": []}
        np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(count, *framing.shape)).flush()
    elif state["done"]:
        MESSAGES.info(f"note: resuming the decoding of {count:,} images at image {state['done']:,}")
    offset, row_bytes = np.load(partial, mmap_mode="r").offset, int(np.prod(framing.shape))
    bar = progress_bar(what="decoding images", unit="image", total=count, shown=progress)
    bar.update(state["done"])
    with open(partial, "r+b") as file:  # written, not mapped: the pages written are not this process's memory
        for chunk, (first, (arrays, kept, skipped)) in enumerate(decoded_chunks(paths, framing, skip_bad_files,
                                                                                state["done"])):
            for array, position in zip(arrays, (first + i for i in kept)):
                os.pwrite(file.fileno(), array.tobytes(), offset + position * row_bytes)
            state["kept"] += [first + i for i in kept]
            state["skipped"] += skipped
            bar.update(min(first + CHUNK, count) - state["done"])
            state["done"] = min(first + CHUNK, count)
            if chunk % COMMIT_EVERY == COMMIT_EVERY - 1 or state["done"] == count:
                os.fsync(file.fileno())  # the pixels are on disk before the progress says so
                save_json(state_path, state)
    bar.close()
    rows = np.load(partial, mmap_mode="r")
    if state["skipped"]:
        MESSAGES.info(f"note: skipped {len(state['skipped'])} unreadable image file(s), e.g. {state['skipped'][0]}")
    kept = state["kept"]
    if len(kept) < count:  # rows of unreadable files left out
        compact = np.lib.format.open_memmap(f"{stem}.npy.tmp", mode="w+", dtype=np.uint8,
                                            shape=(len(kept), *framing.shape))
        for start in range(0, len(kept), 1024):
            compact[start:start + 1024] = rows[kept[start:start + 1024]]
        compact.flush()
        del compact
        os.replace(f"{stem}.npy.tmp", f"{stem}.npy")
    else:
        os.replace(partial, f"{stem}.npy")
    del rows
    labels = [files[i][1] for i in kept]
    save_json(f"{stem}.json", {"format": CACHE_FORMAT, "labels": labels, "kept": kept,
                               "checksum": file_checksum(f"{stem}.npy")})  # last: marks the cache complete
    remove_quietly(partial)
    remove_quietly(state_path)
    return DiskImages(f"{stem}.npy"), torch.tensor(labels, dtype=torch.long), kept


def decoded_split(files: list[tuple[str, int]], digests: list[str], framing: Framing, skip_bad_files: bool,
                  progress: bool) -> tuple[DiskImages | torch.Tensor, torch.Tensor, list[str]]:
    """The images and labels of one split (files with the hashes of their contents, `digests`) and the
    hashes of the files kept: from the cache (decoded into it first where absent), or, where the cache
    cannot be written, decoded into memory."""
    labels = [label for _, label in files]
    stem = os.path.join(image_cache_dir(), cache_key(digests, labels, framing))
    try:
        os.makedirs(image_cache_dir(), exist_ok=True)
        remove_stale_temp_files(image_cache_dir())
        with open(f"{stem}.lock", "a") as lock:  # two runs of one folder: the second waits, then reads the cache
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            images, kept_labels, kept = (cached_split(stem, framing)
                                         or decode_into_cache(files, framing, skip_bad_files, stem, progress))
        return images, kept_labels, [digests[i] for i in kept]
    except (OSError, WriteError) as error:  # the run goes on without the cache
        MESSAGES.info(f"note: the decoded images are not kept for later runs: {error}")
    bar = lambda items: progress_bar(items, what="decoding images", unit="image", shown=progress)  # noqa: E731
    pixels, kept, skipped = decode_chunk([path for path, _ in files], framing, skip_bad_files, bar)
    if skipped:
        MESSAGES.info(f"note: skipped {len(skipped)} unreadable image file(s), e.g. {skipped[0]}")
    return torch.from_numpy(pixels), torch.tensor([labels[i] for i in kept]), [digests[i] for i in kept]
