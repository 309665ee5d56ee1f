"""The data layer: sources of one shape, one split, batches. Its errors are DataError."""


class DataError(Exception):
    """Data that is missing or malformed; the message names the file, the problem and the fix."""


def as_test_dataset(error: DataError) -> DataError:
    """The same error said of --test-dataset: the readers name the file they read as --dataset."""
    message = str(error)
    return DataError("--test-dataset " + message.removeprefix("--dataset ") if message.startswith("--dataset ")
                     else message)
