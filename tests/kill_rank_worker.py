"""Run under torchrun by tests/test_distributed.py: train_dnn.py whose rank 1 is killed (SIGKILL, as
by the kernel's OOM killer) right after epoch 1 is committed, so the test can see what rank 0 says.

    torchrun --nproc_per_node=2 tests/kill_rank_worker.py TRAIN_DNN_FLAGS...
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import train_dnn  # noqa: E402
from utils.storage.run_folder import RunFolder  # noqa: E402

real_commit = RunFolder.commit


def commit_then_die_on_rank_1(folder, state):
    """Commit as usual; rank 1 then dies without a word."""
    real_commit(folder, state)
    if os.environ.get("RANK") == "1" and state["epoch"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    RunFolder.commit = commit_then_die_on_rank_1
    train_dnn.main(sys.argv[1:])
