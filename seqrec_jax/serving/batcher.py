"""Micro-batching: concurrent requests of the event loop go to the device as one call.

Requests wait in an asyncio queue; one task takes every request waiting (up to
`max_batch`; after the first, it waits at most `max_wait_s` for more), runs them as one
batch on a single worker thread (the event loop keeps accepting connections meanwhile),
and answers each request's future. Under load the requests that arrive while a batch
runs form the next batch, so batches grow with concurrency without an added delay
(`max_wait_s = 0`, the default).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any


@dataclasses.dataclass
class BatchStats:
  requests: int = 0
  batches: int = 0
  largest: int = 0
  device_seconds: float = 0.0

  def as_dict(self) -> dict:
    return {"requests": self.requests, "batches": self.batches, "largest_batch": self.largest,
            "mean_batch": self.requests / self.batches if self.batches else 0.0,
            "device_seconds": self.device_seconds}


class MicroBatcher:
  """`await batcher.submit(x)` -> `run_batch([..., x, ...])[i]`, batched across callers."""

  def __init__(self, run_batch: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 256,
               max_wait_s: float = 0.0):
    self.run_batch = run_batch
    self.max_batch = max_batch
    self.max_wait_s = max_wait_s
    self.stats = BatchStats()
    self._queue: asyncio.Queue | None = None
    self._task: asyncio.Task | None = None
    self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="device")

  async def start(self) -> None:
    self._queue = asyncio.Queue()
    self._task = asyncio.get_running_loop().create_task(self._loop())

  async def stop(self) -> None:
    if self._task is not None:
      self._task.cancel()
      try:
        await self._task
      except asyncio.CancelledError:
        pass
    self._executor.shutdown(wait=False)

  async def submit(self, item: Any) -> Any:
    if self._queue is None:
      raise RuntimeError("MicroBatcher.start() was not awaited")
    future = asyncio.get_running_loop().create_future()
    await self._queue.put((item, future))
    return await future

  async def _collect(self) -> list:
    batch = [await self._queue.get()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + self.max_wait_s
    while len(batch) < self.max_batch:
      try:
        batch.append(self._queue.get_nowait())
        continue
      except asyncio.QueueEmpty:
        pass
      remaining = deadline - loop.time()
      if remaining <= 0:
        break
      try:
        batch.append(await asyncio.wait_for(self._queue.get(), remaining))
      except asyncio.TimeoutError:
        break
    return batch

  async def _loop(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      batch = await self._collect()
      batch = [(x, f) for x, f in batch if not f.done()]  # callers that went away
      if not batch:
        continue
      t0 = time.perf_counter()
      try:
        results = await loop.run_in_executor(self._executor, self.run_batch,
                                             [x for x, _ in batch])
      except Exception as e:  # pylint: disable=broad-except
        for _, f in batch:
          if not f.done():
            f.set_exception(e)
        continue
      s = self.stats
      s.requests += len(batch)
      s.batches += 1
      s.largest = max(s.largest, len(batch))
      s.device_seconds += time.perf_counter() - t0
      for (_, f), r in zip(batch, results):
        if not f.done():
          f.set_result(r)
