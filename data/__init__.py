"""Data sets (FashionMNIST, TREC) and the batches built from them."""


class DataError(Exception):
    """Data that is missing or malformed; the message names the file, the problem and the fix."""
