"""A checkout's missing objects, downloaded on a thread while the objects already here are used.

The file is written in checkpoint order; each tensor waits only for its own objects, so the
first tensors are decoded and written while the rest are still downloading.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol


class Fetcher(Protocol):
    def __call__(
        self, objects: Sequence[tuple[str, int]], label: str, *, arrived: Callable[[str], None] | None = None
    ) -> list[str]:
        """Download `objects` ((oid, size) pairs); returns the oids that failed. `arrived(oid)` as each lands."""
        ...


class BackgroundFetch:
    """`fetch(objects, label)` running on its own thread, with a way to wait for some of them.

    `landed(oid)` is told of each object as it lands, before anyone waiting for it is woken.
    """

    def __init__(
        self,
        fetch: Fetcher,
        objects: Sequence[tuple[str, int]],
        label: str,
        landed: Callable[[str], None] | None = None,
    ) -> None:
        self._asked = {oid for oid, _ in objects}
        self._on_landing = landed
        self._landed: set[str] = set()
        self._failures: list[str] | None = None
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, args=(fetch, list(objects), label), name="theta-fetch", daemon=True
        )
        self._thread.start()

    def _run(self, fetch: Fetcher, objects: list[tuple[str, int]], label: str) -> None:
        failures: list[str] = []
        try:
            failures = fetch(objects, label, arrived=self._arrived)
        except BaseException as exc:  # handed to whoever waits, on their thread
            self._error = exc
        finally:
            with self._changed:
                self._failures = failures
                self._changed.notify_all()

    def _arrived(self, oid: str) -> None:
        if self._on_landing is not None:
            self._on_landing(oid)
        with self._changed:
            self._landed.add(oid)
            self._changed.notify_all()

    def wait(self, oids: Iterable[str]) -> None:
        """Block until each of `oids` that was asked for has landed, or the download ended.

        "Landed" is git-lfs's word: the caller checks the store, which is what counts.
        """
        wanted = [oid for oid in oids if oid in self._asked]
        with self._changed:
            self._changed.wait_for(lambda: self._failures is not None or all(o in self._landed for o in wanted))
        if self._error is not None:
            raise self._error

    def finish(self) -> list[str]:
        """Wait for the whole download; its failures."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._failures is not None
        return self._failures
