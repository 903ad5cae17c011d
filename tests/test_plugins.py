"""Plugin discovery through real entry points, and the host's handling of broken,
invalid and clashing plugins."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points, version
from pathlib import Path
from typing import Any

import pytest
from fake_plugins import fake_distribution

import mtl_registry.heads.builtin_plugin as builtin_plugin
from mtl_registry.errors import PluginError
from mtl_registry.heads.intent import IntentHead
from mtl_registry.heads.ner import NerHead
from mtl_registry.heads.sentiment import SentimentHead
from mtl_registry.hookspecs import hookimpl
from mtl_registry.plugins import PluginHost, host
from mtl_registry.registry import PluginRef
from mtl_registry.strategies import EqualWeights, UncertaintyWeights


class Intent2(IntentHead):
    name = "intent2"


class Registers:
    """A plugin object that registers the given head types, then optionally raises."""

    def __init__(self, *things: Any, then_raise: Exception | None = None) -> None:
        self.things = things
        self.then_raise = then_raise

    @hookimpl
    def register_head_types(self, register: Callable[[Any], None]) -> None:
        for thing in self.things:
            register(thing)
        if self.then_raise is not None:
            raise self.then_raise


@pytest.fixture(autouse=True)
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTLREG_STRICT_PLUGINS", raising=False)


# ---- discovery ----------------------------------------------------------------------------
def test_builtin_plugin_is_discovered_through_its_entry_point() -> None:
    [ep] = [e for e in entry_points(group="mtl_registry") if e.name == "builtin"]
    assert ep.value == "mtl_registry.heads.builtin_plugin" and ep.dist.name == "mtl-registry"
    h = host()
    assert host() is h
    info = h.plugins["builtin"]
    assert (info.distribution, info.version, info.status, info.error) == (
        "mtl-registry",
        version("mtl-registry"),
        "loaded",
        None,
    )
    assert sorted(info.head_types) == ["intent", "ner", "sentiment"]
    assert {"equal", "uncertainty"} <= set(info.strategies)
    assert h.pm.get_plugin("builtin") is builtin_plugin
    for name, cls in (("intent", IntentHead), ("sentiment", SentimentHead), ("ner", NerHead)):
        head_type, ref = h.head_type(name)
        assert type(head_type) is cls
        assert ref == PluginRef(name="mtl-registry", version=version("mtl-registry"))
    assert h.strategy("equal") is EqualWeights
    assert h.strategy("uncertainty") is UncertaintyWeights


def test_third_party_distribution_is_discovered_and_credited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "csat_heads_for_test"
    fake_distribution(
        tmp_path,
        "csat-heads",
        f"csat = {module}",
        module,
        """
        from mtl_registry.heads.intent import IntentHead
        from mtl_registry.hookspecs import hookimpl

        class CsatHead(IntentHead):
            name = "csat"
            field = "csat"

        @hookimpl
        def register_head_types(register):
            register(CsatHead())
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    h = PluginHost()
    h.load_entry_points()
    assert h.plugins["csat"].status == "loaded"
    assert h.plugins["builtin"].status == "loaded"
    head_type, ref = h.head_type("csat")
    assert head_type.field == "csat"
    assert ref == PluginRef(name="csat-heads", version="1.0")
    # everything installed, plus the new one (other installed plugins may be present too)
    assert set(h.head_type_names) == set(host().head_type_names) | {"csat"}


def test_plugin_that_fails_to_import_is_skipped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_distribution(tmp_path, "broken-heads", "broken = no_such_module_for_mtlreg_test")
    monkeypatch.syspath_prepend(str(tmp_path))
    h = PluginHost()
    with pytest.warns(
        UserWarning,
        match=r"plugin 'broken' from broken-heads 1\.0 skipped: "
        r"ModuleNotFoundError",
    ):
        h.load_entry_points()
    assert h.plugins["broken"].status == "failed"
    assert "no_such_module_for_mtlreg_test" in h.plugins["broken"].error
    assert h.plugins["builtin"].status == "loaded"
    assert h.head_type_names == host().head_type_names  # nothing lost beside the broken one

    monkeypatch.setenv("MTLREG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken-heads"):
        PluginHost().load_entry_points()


# ---- in-process plugins -----------------------------------------------------------------
def test_valid_in_process_plugin_is_loaded_and_credited() -> None:
    h = PluginHost()
    h.add_plugin(Registers(Intent2()), "extra", "extra-heads", "2.0")
    info = h.plugins["extra"]
    assert (info.status, info.head_types, info.ref) == (
        "loaded",
        ["intent2"],
        PluginRef(name="extra-heads", version="2.0"),
    )
    head_type, ref = h.head_type("intent2")
    assert isinstance(head_type, Intent2) and ref.name == "extra-heads"


def test_plugin_whose_hook_raises_is_skipped_with_a_warning() -> None:
    h = PluginHost()
    with pytest.warns(UserWarning) as record:
        h.add_plugin(Registers(Intent2(), then_raise=RuntimeError("boom")), "shaky", "shaky-heads")
    [warning] = record
    message = str(warning.message)
    assert "plugin 'shaky'" in message and "shaky-heads" in message
    assert "RuntimeError: boom" in message
    info = h.plugins["shaky"]
    assert info.status == "failed" and info.error == "RuntimeError: boom"
    # what it registered before failing is withdrawn; the host keeps working
    assert info.head_types == [] and h.head_type_names == []
    assert not h.pm.is_registered(h.pm.get_plugin("shaky"))
    h.add_plugin(Registers(Intent2()), "good", "good-heads")
    assert h.head_type_names == ["intent2"] and h.plugins["good"].status == "loaded"


def test_plugin_registering_a_non_head_type_is_refused() -> None:
    h = PluginHost()
    with pytest.warns(UserWarning, match=r"plugin 'odd' from odd-heads .*not a HeadType"):
        h.add_plugin(Registers(IntentHead), "odd", "odd-heads")  # the class, not an instance
    assert h.plugins["odd"].status == "failed"
    assert "not a HeadType" in h.plugins["odd"].error
    assert h.head_type_names == []


def test_strategy_that_is_not_a_strategy_class_is_refused() -> None:
    class BadStrategy:
        @hookimpl
        def register_strategies(self, register: Callable[[Any], None]) -> None:
            register(IntentHead)  # a class, but not a Strategy subclass

    h = PluginHost()
    with pytest.warns(UserWarning, match="not a Strategy subclass"):
        h.add_plugin(BadStrategy(), "bad", "bad-strategies")
    assert h.plugins["bad"].status == "failed" and h.strategy_names == []


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (Registers(then_raise=RuntimeError("boom")), "RuntimeError: boom"),
        (Registers("not a head"), "not a HeadType"),
    ],
    ids=["hook-raises", "non-head-type"],
)
def test_strict_mode_turns_bad_plugins_into_errors(
    monkeypatch: pytest.MonkeyPatch, plugin: Registers, reason: str
) -> None:
    monkeypatch.setenv("MTLREG_STRICT_PLUGINS", "1")
    h = PluginHost()
    with pytest.raises(PluginError) as info:
        h.add_plugin(plugin, "strictly", "strict-heads")
    assert "plugin 'strictly'" in str(info.value) and reason in str(info.value)
    assert h.plugins["strictly"].status == "failed"


def test_strict_mode_off_when_set_to_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLREG_STRICT_PLUGINS", "0")
    with pytest.warns(UserWarning, match="boom"):
        PluginHost().add_plugin(Registers(then_raise=RuntimeError("boom")), "p", "p-dist")


def test_two_plugins_registering_one_head_type_name_both_named() -> None:
    h = PluginHost()
    h.add_plugin(Registers(Intent2()), "first", "dist-a", "1.0")
    with pytest.warns(UserWarning) as record:
        h.add_plugin(Registers(Intent2()), "second", "dist-b", "1.0")
    message = str(record[0].message)
    assert "'intent2'" in message and "dist-a" in message and "dist-b" in message
    assert h.plugins["second"].status == "failed"
    assert h.head_type("intent2")[1].name == "dist-a"  # the first keeps it


def test_third_party_cannot_take_over_a_builtin_head_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLREG_STRICT_PLUGINS", "1")
    h = PluginHost()
    h.load_entry_points()
    clash = "'intent' is registered by both mtl-registry and usurper"
    with pytest.raises(PluginError, match=clash):
        h.add_plugin(Registers(Intent2(), IntentHead()), "usurp", "usurper")
    head_type, ref = h.head_type("intent")
    assert type(head_type) is IntentHead and ref.name == "mtl-registry"
    assert "intent2" not in h.head_type_names  # withdrawn with the failed plugin


def test_unknown_head_type_from_a_named_plugin_says_pip_install() -> None:
    h = PluginHost()
    with pytest.raises(PluginError) as info:
        h.head_type("csat", plugin=PluginRef(name="some-dist", version="1.0"))
    assert "pip install some-dist" in str(info.value) and "'csat'" in str(info.value)
    assert "1.0" in str(info.value)


def test_unknown_head_type_lists_installed_ones() -> None:
    listed = r"unknown head type 'csat'.*'intent'.*'ner'.*'sentiment'"
    with pytest.raises(PluginError, match=listed):
        host().head_type("csat")
    with pytest.raises(PluginError, match=r"unknown strategy 'nope'"):
        host().strategy("nope")
