"""BackgroundFetch: a download on its own thread, waited for object by object."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from theta.downloads import BackgroundFetch


def test_each_landing_is_told_before_its_waiter_wakes() -> None:
    release = threading.Event()
    told: list[str] = []

    def fetch(objects: Sequence[tuple[str, int]], label: str, *, arrived: Callable[[str], None] | None = None):
        assert arrived is not None
        arrived(objects[0][0])
        release.wait(10)
        arrived(objects[1][0])
        return []

    download = BackgroundFetch(fetch, [("a", 1), ("b", 1)], "model.safetensors", landed=told.append)
    download.wait(["a"])
    assert told == ["a"]  # "b" has not landed yet
    release.set()
    download.wait(["b"])
    assert told == ["a", "b"]
    assert download.finish() == []
