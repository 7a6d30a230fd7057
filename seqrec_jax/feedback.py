"""A durable feedback log: JSON lines, fsync'd before an append returns.

`FeedbackLog(path).append(event)` returns only after the event's line is written and
`os.fsync`ed, so an event whose append returned (the service answers only then)
survives a crash or a SIGKILL of the process. Concurrent appends are group-committed:
one writer thread writes every event waiting and fsyncs once for all of them, so
durability costs one fsync per batch, not per event.

Each line is one JSON object with the log's own `seq` (0, 1, 2, ... in file order) and
`received` (server time, unix seconds) added to the event. On open, a last line cut by a
crash (no newline: its append never returned) is cut off, so the next line starts clean.
`read_events(path)` reads a log back (skipping such a cut line).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import threading
import time
from collections.abc import Iterable


def read_events(path: str) -> list[dict]:
  """Every complete event of the log at `path` ([] when there is none)."""
  if not os.path.exists(path):
    return []
  events = []
  with open(path, "rb") as f:
    for line in f:
      if not line.endswith(b"\n"):
        break  # cut by a crash mid-write: never acknowledged
      try:
        events.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return events


def _fsync_dir(path: str) -> None:
  fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


class FeedbackLog:
  """Append-only, fsync'd JSON-lines log with group commit (thread-safe)."""

  def __init__(self, path: str, max_group: int = 1024):
    self.path = path
    self.max_group = max_group
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    created = not os.path.exists(path)
    self._file = open(path, "ab+")  # pylint: disable=consider-using-with
    self._next_seq = self._recover()
    if created:
      _fsync_dir(path)
    self._queue: queue.Queue = queue.Queue()
    self._closed = False
    self._thread = threading.Thread(target=self._writer, name="feedback-log", daemon=True)
    self._thread.start()

  def _recover(self) -> int:
    """Drops a cut last line; -> the number of complete lines (the next seq)."""
    f = self._file
    f.seek(0)
    data = f.read()
    end = data.rfind(b"\n") + 1
    if end != len(data):
      f.truncate(end)
      f.flush()
      os.fsync(f.fileno())
    f.seek(0, os.SEEK_END)
    return data[:end].count(b"\n")

  @property
  def count(self) -> int:
    """Events acknowledged so far (including earlier runs)."""
    return self._next_seq

  def submit(self, event: dict) -> concurrent.futures.Future:
    """Queues one event; the future resolves to its stored record once it is on disk."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    if self._closed:
      future.set_exception(RuntimeError("feedback log is closed"))
      return future
    self._queue.put((dict(event), future))
    return future

  def append(self, event: dict, timeout: float | None = 30.0) -> dict:
    """Writes one event durably; -> the stored record (with seq, received)."""
    return self.submit(event).result(timeout)

  def extend(self, events: Iterable[dict]) -> list[dict]:
    futures = [self.submit(e) for e in events]
    return [f.result() for f in futures]

  def _writer(self) -> None:
    while True:
      item = self._queue.get()
      if item is None:
        return
      group = [item]
      while len(group) < self.max_group:
        try:
          nxt = self._queue.get_nowait()
        except queue.Empty:
          break
        if nxt is None:
          self._queue.put(None)  # stop after this group
          break
        group.append(nxt)
      records, lines = [], []
      now = time.time()
      for event, _ in group:
        record = {**event, "seq": self._next_seq + len(records), "received": now}
        records.append(record)
        lines.append(json.dumps(record, separators=(",", ":"), default=str) + "\n")
      start = self._file.tell()
      try:
        self._file.write("".join(lines).encode())
        self._file.flush()
        os.fsync(self._file.fileno())
      except Exception as e:  # pylint: disable=broad-except
        try:  # leave no half-written group behind (none of it was acknowledged)
          self._file.truncate(start)
          self._file.seek(start)
        except OSError:
          pass
        for _, future in group:
          future.set_exception(e)
        continue
      self._next_seq += len(records)
      for (_, future), record in zip(group, records):
        future.set_result(record)

  def close(self) -> None:
    if self._closed:
      return
    self._closed = True
    self._queue.put(None)
    self._thread.join()
    self._file.close()

  def __enter__(self) -> "FeedbackLog":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
