"""Each word's nearest words in a pretrained model's input embeddings (for the swap perturbations)."""
from __future__ import annotations

from typing import Iterable

import torch

from data.tokenization import SubwordTokenizer
from utils.hub import load_pretrained_model

CHUNK = 1024  # query words compared with the whole vocabulary at a time


def nearest_words(embeddings: torch.Tensor, vocab: dict[str, int], words: Iterable[str],
                  k: int) -> dict[str, list[str]]:
    """For each of `words` that is a whole alphabetic token of `vocab` (token -> row of `embeddings`),
    the `k` other such tokens nearest to it by cosine similarity, nearest first."""
    candidates = sorted(token for token in vocab if token.isalpha())
    rows = torch.tensor([vocab[token] for token in candidates], dtype=torch.long)
    unit = torch.nn.functional.normalize(embeddings.detach().float()[rows], dim=1)
    position = {token: i for i, token in enumerate(candidates)}
    queries = sorted({word for word in words if word in position})
    found: dict[str, list[str]] = {}
    for start in range(0, len(queries), CHUNK):
        chunk = queries[start:start + CHUNK]
        index = torch.tensor([position[word] for word in chunk], dtype=torch.long)
        similarity = unit[index] @ unit.T
        similarity[torch.arange(len(chunk)), index] = -2.0  # never a word's own neighbour
        top = similarity.topk(min(k, len(candidates) - 1), dim=1).indices
        found.update({word: [candidates[i] for i in row] for word, row in zip(chunk, top.tolist())})
    return found


def pretrained_neighbours(name_or_path: str, words: Iterable[str], k: int = 8) -> dict[str, list[str]]:
    """`nearest_words` in the input embeddings of a pretrained model (hub id, or a folder saved with
    save_pretrained; lower-cased words, as an uncased model's vocabulary holds them)."""
    vocab = SubwordTokenizer.from_pretrained(name_or_path).backend.get_vocab()
    embeddings = load_pretrained_model(name_or_path).get_input_embeddings().weight
    return nearest_words(embeddings, vocab, words, k)
