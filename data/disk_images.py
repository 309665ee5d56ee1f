"""uint8 images (N, C, H, W) in a .npy file, memory-mapped: a batch reads its rows from the map, the
operating system's page cache holds what fits in memory, and the process keeps none of it mapped
after the read, so its own memory stays one batch whatever the file's size."""
from __future__ import annotations

import mmap
from typing import Any

import numpy as np
import torch

READ_ROWS = 64  # rows read between two releases of the mapped pages


class DiskImages:
    """The rows `rows` (default: all) of the (N, C, H, W) uint8 array in the .npy file `path`."""

    def __init__(self, path: str, rows: torch.Tensor | None = None) -> None:
        self.path = path
        self.array = np.load(path, mmap_mode="r")
        if self.array.dtype != np.uint8 or self.array.ndim != 4:
            raise ValueError(f"{path} holds {self.array.dtype} of {self.array.ndim} dimensions, not uint8 images")
        self.rows = torch.arange(len(self.array)) if rows is None else rows.cpu()
        mapped = self.mapping()
        if mapped is not None and hasattr(mmap, "MADV_RANDOM"):  # rows are read in any order: no read-ahead
            mapped.madvise(mmap.MADV_RANDOM)

    @property
    def shape(self) -> torch.Size:
        """(N, C, H, W) of the rows served."""
        return torch.Size((len(self.rows), *self.array.shape[1:]))

    def size(self, dim: int | None = None) -> Any:
        """As torch.Tensor.size."""
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        """The bytes of the rows served."""
        return int(np.prod(self.shape))

    def select(self, index: torch.Tensor | slice) -> "DiskImages":
        """The images at `index` of these, still on disk."""
        return DiskImages(self.path, self.rows[index])

    def __getitem__(self, index: torch.Tensor | slice | int) -> torch.Tensor:
        """The images at `index` read into memory, (len(index), C, H, W) (one image: (C, H, W))."""
        wanted = self.rows[index.cpu() if isinstance(index, torch.Tensor) else index]
        if wanted.dim() == 0:
            return torch.from_numpy(np.array(self.array[int(wanted)]))
        order = wanted.argsort()  # in file order
        read = np.empty((len(wanted), *self.array.shape[1:]), dtype=np.uint8)
        for start in range(0, len(wanted), READ_ROWS):  # a few rows mapped at a time, whatever the number read
            part = order[start:start + READ_ROWS]
            self.prefetch(wanted[part].tolist())
            read[part.numpy()] = self.array[wanted[part].numpy()]
            self.release()
        return torch.from_numpy(read)

    def mapping(self) -> mmap.mmap | None:
        """The memory map under the array (None where numpy keeps it elsewhere)."""
        mapped = getattr(self.array, "_mmap", None)
        return mapped if isinstance(mapped, mmap.mmap) else None

    def prefetch(self, rows: list[int]) -> None:
        """Ask the operating system to read these rows' bytes (exactly those: the map reads nothing ahead)."""
        mapped = self.mapping()
        if mapped is None or not hasattr(mmap, "MADV_WILLNEED"):
            return
        row_bytes = int(np.prod(self.array.shape[1:]))
        for row in rows:
            first = self.array.offset + row * row_bytes
            start = first - first % mmap.PAGESIZE
            mapped.madvise(mmap.MADV_WILLNEED, start, first + row_bytes - start)

    def release(self) -> None:
        """Unmap the pages read so far from this process (the page cache keeps them for the next read)."""
        mapped = self.mapping()
        if mapped is not None and hasattr(mmap, "MADV_DONTNEED"):
            mapped.madvise(mmap.MADV_DONTNEED)


def take(images: torch.Tensor | DiskImages, index: torch.Tensor | slice) -> torch.Tensor | DiskImages:
    """The images at `index`: read from memory, or still on disk."""
    return images.select(index) if isinstance(images, DiskImages) else images[index]


def in_memory(images: torch.Tensor | DiskImages) -> torch.Tensor:
    """The images as one tensor in memory."""
    return images[:] if isinstance(images, DiskImages) else images


def size_in_bytes(images: torch.Tensor | DiskImages) -> int:
    """The bytes of uint8 images, in memory or on disk."""
    return images.nbytes if isinstance(images, DiskImages) else images.numel()
