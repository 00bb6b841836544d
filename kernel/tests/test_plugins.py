"""The plugin manager: fresh per test, entry points, allowlist, registration rules."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint
from typing import Any, BinaryIO

import pytest
from attrs import frozen

import theta
from theta.errors import PluginError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.plugins import PluginManager


@frozen
class ToyFormat(CheckpointFormat):
    name = "toy"
    extensions = (".toy",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"TOY")

    def read(self, source: Source) -> Checkpoint:
        return Checkpoint(skeleton=b"", parameters=iter(()))

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        sink.write(b"TOY")


class ToyPlugin:
    @theta.hookimpl
    def theta_register_formats(self, register: Any) -> None:
        register(ToyFormat())


def test_inline_plugin_registers_a_format() -> None:
    manager = PluginManager()
    manager.register(ToyPlugin(), name="toy", distribution="theta-format-toy", version="1.0")
    assert isinstance(manager.registry.format("toy"), ToyFormat)
    assert manager.registry.owner("formats", "toy") == "theta-format-toy"
    record = manager.records[0]
    assert (record.name, record.distribution, record.hooks) == ("toy", "theta-format-toy", ("theta_register_formats",))


def test_a_name_registered_twice_leaves_the_second_plugin_out() -> None:
    manager = PluginManager()
    manager.register(ToyPlugin(), name="first", distribution="dist-one")
    manager.register(ToyPlugin(), name="second", distribution="dist-two")
    registry = manager.registry
    assert registry.owner("formats", "toy") == "dist-one"
    assert re.search(r"'toy' is registered twice: by dist-one .* and by dist-two", registry.problems["second"])
    assert "first" not in registry.problems


def test_a_registration_hook_that_raises_leaves_only_that_plugin_out() -> None:
    class Raising:
        @theta.hookimpl
        def theta_register_formats(self, register: Any) -> None:
            register(ToyFormat())
            raise RuntimeError("boom")

    manager = PluginManager()
    manager.register(Raising(), name="raising", distribution="dist-raising")
    manager.load_entry_points()
    registry = manager.registry
    assert "toy" not in registry.formats
    assert "RuntimeError: boom" in registry.problems["raising"]
    assert "safetensors" in registry.formats and "dense" in registry.update_types


def test_missing_name_hint_comes_from_the_declared_catalog() -> None:
    registry = PluginManager().registry
    with pytest.raises(
        theta.errors.ThetaError, match=r"install theta-format-torch \(`pip install theta-format-torch`\)"
    ):
        registry.format("pytorch")
    with pytest.raises(theta.errors.ThetaError, match="no known distribution provides it"):
        registry.format("no-such-format")


def test_registering_the_wrong_kind_is_an_error() -> None:
    class Wrong:
        @theta.hookimpl
        def theta_register_update_types(self, register: Any) -> None:
            register(ToyFormat())

    manager = PluginManager()
    manager.register(Wrong(), name="wrong", distribution="dist-wrong")
    assert re.search(r"dist-wrong.*not a UpdateType", manager.registry.problems["wrong"])


def test_misspelled_hook_is_refused() -> None:
    class Misspelled:
        @theta.hookimpl
        def theta_register_fromats(self, register: Any) -> None:
            pass

    with pytest.raises(PluginError, match="theta_register_fromats"):
        PluginManager().register(Misspelled(), name="typo", distribution="dist-typo")


def test_a_plugin_that_fails_to_import_is_listed_not_fatal() -> None:
    manager = PluginManager()
    broken = EntryPoint(name="broken", value="theta_no_such_module_anywhere", group="theta")
    manager.load_entry_points([broken])
    manager.load_entry_points()
    records = {r.name: r for r in manager.records}
    assert "ModuleNotFoundError" in (records["broken"].error or "")
    assert "safetensors" in manager.registry.formats


def test_allowlist_restricts_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_LOAD_PLUGINS", "dense")
    manager = PluginManager()
    manager.load_entry_points()
    assert [r.name for r in manager.records] == ["dense"]
    assert manager.registry.formats == {}
    with pytest.raises(theta.errors.ThetaError, match="install theta-format-safetensors"):
        manager.registry.format("safetensors")


def test_trace_logs_hook_calls(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("THETA_TRACE", "1")
    manager = PluginManager()
    manager.register(ToyPlugin(), name="toy")
    manager.registry  # noqa: B018
    assert "theta_register_formats -> toy" in capsys.readouterr().err
