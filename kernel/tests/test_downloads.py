"""BackgroundFetch: a download on its own thread, waited for object by object."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from theta.downloads import BackgroundFetch


def test_a_waiter_wakes_only_after_the_landing_was_told() -> None:
    telling = threading.Event()
    told = threading.Event()
    woke = threading.Event()

    def fetch(objects: Sequence[tuple[str, int]], label: str, *, arrived: Callable[[str], None] | None = None):
        assert arrived is not None
        arrived(objects[0][0])
        return []

    def landed(oid: str) -> None:
        telling.set()
        told.wait(10)  # the one told is slow (it writes the record)

    download = BackgroundFetch(fetch, [("a", 1)], "model.safetensors", landed=landed)
    waiter = threading.Thread(target=lambda: (download.wait(["a"]), woke.set()))
    waiter.start()
    assert telling.wait(10)
    assert not woke.wait(0.2)  # still being told: the waiter sleeps on
    told.set()
    waiter.join(10)
    assert woke.is_set()
    assert download.finish() == []
