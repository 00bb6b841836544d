"""Both cores, bounded memory: tensors are hashed, encoded and decoded in worker threads.

hashlib, zstd and numpy release the GIL on large buffers, so two workers keep two cores busy
while the main thread reads from git (clean) or writes to it (smudge). The tensors in flight
are bounded in bytes (IN_FLIGHT_BYTES): one larger than that is let in alone, so memory follows
the largest tensor, never the checkpoint.

- `OrderedPool`: the clean's workers. The main thread submits one job per tensor as the format
  reads it, blocking while the tensors in flight would exceed the budget; results come back in
  submission order, so the metadata is the same as a serial clean's.
- `PrefetchingLoader`: the smudge's. Formats ask for tensors one at a time, nearly always in
  the metadata file's order; the next ones are decoded ahead while the current one is written.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from theta.tensors import Tensor

IN_FLIGHT_BYTES = 128 << 20
WORKERS = max(1, min(2, os.cpu_count() or 1))

T = TypeVar("T")


@functools.cache
def _blas_thread_setter() -> Any:
    """OpenBLAS's per-thread `openblas_set_num_threads_local`, from the library numpy loaded (None if absent)."""
    import numpy

    folder = Path(numpy.__file__).parent.parent / "numpy.libs"
    for library in [*sorted(folder.glob("*openblas*.so*")), None]:
        try:
            return ctypes.CDLL(str(library) if library else None).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
    return None


def _one_blas_thread() -> None:
    """Run in each worker: its BLAS calls (an SVD) use this thread only.

    The workers are the parallelism; BLAS threads on top of them fight for the same two cores,
    which makes a small SVD fifty times slower on a busy machine.
    """
    setter = _blas_thread_setter()
    if setter is not None:
        setter(1)


def _pool(workers: int, name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name, initializer=_one_blas_thread)


class ByteBudget:
    """At most `limit` bytes held at once; a request larger than `limit` waits until nothing else is held."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._changed = threading.Condition()

    def acquire(self, size: int) -> None:
        with self._changed:
            while self._used and self._used + size > self._limit:
                self._changed.wait()
            self._used += size

    def release(self, size: int) -> None:
        with self._changed:
            self._used -= size
            self._changed.notify_all()


class OrderedPool(Generic[T]):
    """Jobs run on worker threads within a byte budget; results are taken back in submission order.

    Use as a context manager: leaving it (also on an error) cancels what has not started and
    waits for the rest.
    """

    def __init__(self, workers: int = WORKERS, limit: int = IN_FLIGHT_BYTES) -> None:
        self._pool = _pool(workers, "theta-worker")
        self._budget = ByteBudget(limit)
        self._pending: deque[tuple[str, Future[T]]] = deque()

    def submit(self, key: str, job: Callable[[], T], size: int) -> None:
        """Run `job` once `size` bytes fit in the budget (blocking the caller until then)."""
        self._budget.acquire(size)

        def run() -> T:
            try:
                return job()
            finally:
                self._budget.release(size)

        try:
            self._pending.append((key, self._pool.submit(run)))
        except BaseException:
            self._budget.release(size)
            raise

    def done(self) -> Iterator[tuple[str, T]]:
        """The results at the head of the queue that are ready (raising a job's error)."""
        while self._pending and self._pending[0][1].done():
            key, future = self._pending.popleft()
            yield key, future.result()

    def rest(self) -> Iterator[tuple[str, T]]:
        """Every remaining result, in order, waiting for each."""
        while self._pending:
            key, future = self._pending.popleft()
            yield key, future.result()

    def __enter__(self) -> OrderedPool[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class PrefetchingLoader:
    """`load(name)` for a format writing a checkpoint, with the following tensors decoded ahead.

    `sizes` gives each tensor's bytes: tensors are loaded ahead while those waiting to be asked
    for stay within `limit` bytes (at least one is always ahead).
    """

    def __init__(
        self,
        order: list[str],
        load: Callable[[str], Tensor],
        sizes: Mapping[str, int] | None = None,
        workers: int = WORKERS,
        limit: int = IN_FLIGHT_BYTES,
    ) -> None:
        self._order = order
        self._position = {name: i for i, name in enumerate(order)}
        self._sizes = sizes or {}
        self._load = load
        self._limit = limit
        self._pool = _pool(workers, "theta-prefetch")
        self._pending: OrderedDict[str, Future[Tensor]] = OrderedDict()
        self._ahead = 0  # bytes of the pending tensors
        self._cursor = 0  # the next position to submit

    def __call__(self, name: str) -> Tensor:
        future = self._pending.pop(name, None)
        if future is not None:
            self._ahead -= self._sizes.get(name, 0)
        position = self._position.get(name)
        if position is not None:
            self._drop_before(position)
            self._cursor = max(self._cursor, position + 1)
        self._top_up()
        return future.result() if future is not None else self._load(name)

    def _drop_before(self, position: int) -> None:
        """The format skipped tensors: those loaded ahead before `position` are dropped."""
        for name in [n for n in self._pending if self._position[n] < position]:
            self._pending.pop(name).cancel()
            self._ahead -= self._sizes.get(name, 0)

    def _top_up(self) -> None:
        while self._cursor < len(self._order):
            name = self._order[self._cursor]
            size = self._sizes.get(name, 0)
            if self._pending and self._ahead + size > self._limit:
                return
            self._pending[name] = self._pool.submit(self._load, name)
            self._ahead += size
            self._cursor += 1

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)
