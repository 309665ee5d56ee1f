"""Text pipeline as small pure functions, and length-bucketed batches of token ids."""
from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import torch

from data.bundle import Order
from data.sampling import epoch_generator, shard, shard_size

PAD, UNK = "<pad>", "<unk>"
# a word with its inner hyphens, apostrophes, dots and ampersands ("state-of-the-art", "don't", "u.s"),
# a clitic ("'s"), or a run of punctuation ("?!")
WORD_OR_MARK = re.compile(r"\w+(?:[-'’.&]\w+)*|['’]\w+|[^\w\s]+")
BUCKET_POOL = 50  # batches' worth of examples sorted together: short padding, still random batches


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens; TREC questions are already separated by spaces."""
    return text.lower().split()


def tokenize_raw(text: str) -> list[str]:
    """Words and punctuation of text as people write it (WORD_OR_MARK), case-folded (Unicode-aware)."""
    return WORD_OR_MARK.findall(text.casefold())


@dataclass
class Vocabulary:
    """Token <-> id. Id 0 is padding, id 1 stands for every unknown token."""

    tokens: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of `tokens`, unknown ones as the <unk> id."""
        unknown = self.index[UNK]
        return [self.index.get(token, unknown) for token in tokens]


def build_vocabulary(token_lists: Iterable[Sequence[str]], min_freq: int = 1) -> Vocabulary:
    """Tokens seen at least `min_freq` times, most frequent first (ties alphabetical)."""
    counts = Counter(token for tokens in token_lists for token in tokens)
    kept = sorted((token for token, count in counts.items() if count >= min_freq), key=lambda t: (-counts[t], t))
    return Vocabulary([PAD, UNK, *kept])


def delete_words(text: str, rng: random.Random, keep: float = 0.85) -> str:
    """`text` with each word kept with probability `keep` (at least one word stays): a perturbed
    copy of a question for a teacher to label (the transfer set of Tang et al. 2019)."""
    words = text.split()
    kept = [word for word in words if rng.random() < keep]
    return " ".join(kept or [words[rng.randrange(len(words))]])


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One (N, max_len) tensor of ids, padded with `pad_id`, and the (N,) lengths."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if len(sequences) == 0 or (lengths == 0).any():
        raise ValueError("cannot batch an empty sequence")
    padded = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        padded[row, :len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return padded, lengths


class TextBatches:
    """Iterate `((token_ids, lengths), targets)` over encoded sequences held as one padded tensor.

    Training order: a seeded permutation per epoch, cut into pools of BUCKET_POOL batches, each
    pool sorted by length, its batches shuffled. Evaluation order: sorted by length. Each batch
    is trimmed to its longest sequence, so little padding is computed.
    """

    def __init__(self, sequences: Sequence[Sequence[int]], labels: Sequence[int], batch_size: int,
                 order: Order = Order(), device: torch.device | str = "cpu", bucket: bool = True,
                 pad_id: int = 0) -> None:
        if len(sequences) != len(labels):
            raise ValueError(f"{len(sequences)} sequences but {len(labels)} labels")
        self.device = torch.device(device)
        token_ids, self.lengths = pad_sequences(sequences, pad_id)  # lengths stay on the CPU, as packing needs
        self.token_ids = token_ids.to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.batch_size, self.shuffle, self.bucket = batch_size, order.shuffle, bucket
        self.seed, self.epoch, self.rank, self.world_size = order.seed, 0, order.rank, order.world_size

    changes_every_epoch = False  # a question's token ids are the same in every epoch
    # pad each batch to a power of two (at least 8) of its longest question, not to its longest: a few
    # shapes that repeat, which a compiled model (--compile) needs; padding is masked, so only the
    # arithmetic's order changes
    repeat_shapes = False

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration uses."""
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        count = len(self.labels)
        if not self.shuffle:
            return shard(torch.arange(count), self.rank, self.world_size, equal=False)
        order = torch.randperm(count, generator=epoch_generator(self.seed, self.epoch))
        return shard(order, self.rank, self.world_size, equal=True)

    def batch_indices(self) -> list[torch.Tensor]:
        """The example indices of each batch of this epoch, in the order they are served."""
        indices = self._indices()
        if not self.bucket:
            return list(indices.split(self.batch_size))
        if not self.shuffle:
            ordered = indices[self.lengths[indices].argsort(stable=True)]
            return list(ordered.split(self.batch_size))
        generator = epoch_generator(self.seed + 1, self.epoch)
        batches = []
        for pool in indices.split(self.batch_size * BUCKET_POOL):
            pool = pool[self.lengths[pool].argsort(stable=True)]
            batches += list(pool.split(self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def example_order(self) -> torch.Tensor:
        """Indices of the examples this process serves, in the order served."""
        return torch.cat(self.batch_indices())

    def __len__(self) -> int:
        return -(-self.num_examples // self.batch_size)

    @property
    def num_examples(self) -> int:
        """How many examples this process sees per epoch (counted, not drawn)."""
        return shard_size(len(self.labels), self.rank, self.world_size, equal=self.shuffle)

    def __iter__(self) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        for _, batch in self.batches_with_indices():
            yield batch

    def batches_with_indices(self) -> Iterator[tuple[torch.Tensor, tuple[tuple[torch.Tensor, torch.Tensor],
                                                                           torch.Tensor]]]:
        """Like iterating, but each batch comes with the indices of its examples (CPU tensor)."""
        for batch in self.batch_indices():
            lengths = self.lengths[batch]
            on_device = batch.to(self.device, non_blocking=True)
            longest = int(lengths.max())
            width = padded_width(longest, self.token_ids.size(1)) if self.repeat_shapes else longest
            yield batch, ((self.token_ids[on_device, :width], lengths), self.labels[on_device])


def padded_width(longest: int, cap: int) -> int:
    """The padded length of a batch whose longest sequence has `longest` tokens: the next power of two,
    at least 8, at most `cap`."""
    return min(cap, max(8, 1 << (longest - 1).bit_length()))
