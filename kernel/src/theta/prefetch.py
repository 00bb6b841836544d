"""Decode the next parameter while the current one is being written.

Formats ask for tensors one at a time, nearly always in the metadata file's order. Loading
(read, verify the sha256, decode) releases the GIL, so a second thread loads the next
parameter while git's pipe takes the current one. At most two tensors are held.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from theta.tensors import Tensor


class PrefetchingLoader:
    def __init__(self, order: list[str], load: Callable[[str], Tensor]) -> None:
        self._order = order
        self._next = {name: order[i + 1] for i, name in enumerate(order[:-1])}
        self._load = load
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="theta-prefetch")
        self._pending: tuple[str, Future[Tensor]] | None = None

    def __call__(self, name: str) -> Tensor:
        if self._pending is not None and self._pending[0] == name:
            tensor = self._pending[1].result()
        else:
            tensor = self._load(name)
        following = self._next.get(name)
        self._pending = (following, self._pool.submit(self._load, following)) if following else None
        return tensor

    def close(self) -> None:
        if self._pending is not None:
            self._pending[1].cancel()
        self._pool.shutdown(wait=True)
