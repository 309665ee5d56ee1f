"""Dynamic batching: the inputs of concurrent requests grouped into one forward pass, computed in a
worker thread so that the event loop keeps accepting requests meanwhile."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import torch


class DynamicBatcher:
    """Queue of inputs; a loop takes up to `max_batch` of them (waiting at most `max_wait_ms` for
    more once the first has come), classifies them together with `classify(inputs) -> (N, classes)`
    probabilities in one worker thread, and hands each request its rows. A failing batch fails
    only the requests in it."""

    def __init__(self, classify: Callable[[Sequence[Any]], torch.Tensor], max_batch: int, max_wait_ms: float) -> None:
        self.classify, self.max_batch, self.max_wait = classify, max_batch, max_wait_ms / 1000
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classify")
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.batch_sizes: list[int] = []  # of every forward pass so far (for /info and the tests)
        self.in_flight = 0  # inputs submitted and not yet answered (GET /health)

    async def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop the loop (after the requests in flight were answered) and the worker thread."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, inputs: Sequence[Any]) -> list[torch.Tensor]:
        """The probability rows of `inputs`, once the batches holding them are computed."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in inputs]
        for item, future in zip(inputs, futures):
            self.queue.put_nowait((item, future))
        self.in_flight += len(inputs)
        try:
            return list(await asyncio.gather(*futures))
        finally:
            self.in_flight -= len(inputs)

    async def next_batch(self) -> list[tuple[Any, asyncio.Future]]:
        """The next inputs to compute together: the first to come and what follows within the wait."""
        loop = asyncio.get_running_loop()
        batch = [await self.queue.get()]
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def run(self) -> None:
        """Compute batches until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self.next_batch()
            self.batch_sizes.append(len(batch))
            try:
                rows = await loop.run_in_executor(self.executor, self.classify, [item for item, _ in batch])
            except Exception as error:  # noqa: BLE001 - handed to the requests of this batch
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), row in zip(batch, rows):
                if not future.done():  # a request that went away no longer waits
                    future.set_result(row)
