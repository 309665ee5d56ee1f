"""The benchmarks' own machinery (their numbers are measured by running them, not here)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# a bench/seeds.py-style parent: one worker started as `--jobs` starts them, its pid printed, then waiting
PARENT = """
import concurrent.futures, multiprocessing, sys, time
sys.path.insert(0, "bench")
import seeds
if __name__ == "__main__":
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=seeds.start_worker, initargs=(1,)) as pool:
        pool.submit(time.sleep, 0).result()
        print(*pool._processes, flush=True)
        time.sleep(600)
"""


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are a Linux feature")
def test_seed_workers_stop_when_the_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        assert alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(worker), "the worker outlived its killed parent"
    finally:
        parent.kill()
