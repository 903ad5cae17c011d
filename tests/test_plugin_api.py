"""The plugin API as a plugin author meets it: the documented example used end to end, the
ordinal package discovered after a real pip install, validation errors that name the plugin
and the field, API versions, and `mtlreg plugins`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from fake_plugins import fake_distribution
from pydantic import BaseModel

from mtl_registry.cli import main
from mtl_registry.data.mangaassist import generate_csat
from mtl_registry.errors import PluginError
from mtl_registry.evaluation.evaluate import evaluate
from mtl_registry.heads.base import HeadType
from mtl_registry.heads.intent import IntentHead
from mtl_registry.hookspecs import PLUGIN_API_VERSION, SUPPORTED_PLUGIN_API_VERSIONS, hookimpl
from mtl_registry.plugins import PluginHost, host
from mtl_registry.registry import PluginRef, Registry
from mtl_registry.runtime import Runtime
from mtl_registry.strategies import EqualWeights, Strategy
from mtl_registry.training import TaskSpec, TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
ORDINAL = ROOT / "plugins" / "mtl-ordinal-head"
RATING = PluginRef(name="mtl-rating-head", version="0.1.0")


@pytest.fixture(autouse=True)
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTLREG_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("MTLREG_LOAD_PLUGINS", raising=False)


def run_cli(
    *args: str, env: dict[str, str] | None = None, python: str = sys.executable, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [python, "-m", "mtl_registry", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


# ---- the documented example, registered in-process, end to end ------------------------------
def doc_example(tmp: Path) -> ModuleType:
    """The code block of docs/plugins.md marked `example: rating_head.py`, imported as is."""
    doc = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: rating_head\.py -->\s*```python\n(.*?)```", doc, re.S)
    assert match, "docs/plugins.md lost its runnable example"
    path = tmp / "rating_head_doc_example.py"
    path.write_text(match.group(1), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("rating_head_doc_example", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rating_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], None]]:
    """Adds the doc example to the process-wide host; the host is reset after each use."""
    module = doc_example(tmp_path_factory.mktemp("doc"))

    def install() -> None:
        host.cache_clear()
        host().add_plugin(module, "rating", RATING.name, RATING.version)

    yield install
    host.cache_clear()


@pytest.fixture(scope="module")
def rating_registry(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_bert: Path,
    manga_data: Path,
    rating_plugin: Callable[[], None],
) -> Path:
    """intent (built-in) + csat (the doc example) trained jointly and published."""
    root = tmp_path_factory.mktemp("rating")
    csat = root / "csat"
    generate_csat(csat, n_train=96, n_dev=32, n_test=32)
    registry = Registry(root / "reg")
    registry.init(tiny_bert)
    rating_plugin()
    try:
        specs = [
            TaskSpec(name="intent", head_type="intent", data=manga_data),
            TaskSpec(name="csat", head_type="rating", data=csat),
        ]
        train(registry, specs, TrainConfig(epochs=1, batch_size=16, max_steps=3), progress=False)
    finally:
        host.cache_clear()
    return registry.root


def test_doc_example_plugin_is_published_with_its_distribution(rating_registry: Path) -> None:
    registry = Registry(rating_registry)
    manifest = registry.active_head("csat")
    assert manifest.head_type == "rating" and manifest.plugin == RATING
    assert manifest.labels == ["rating"]
    assert set(manifest.metrics["test"]) >= {"mae", "neg_mae", "n"}
    assert manifest.metrics["test"]["neg_mae"] == -manifest.metrics["test"]["mae"]
    assert registry.active_head("intent").plugin.name == "mtl-registry"
    assert registry.verify() == []


def test_doc_example_plugin_predicts_beside_a_builtin_head(
    rating_registry: Path, rating_plugin: Callable[[], None]
) -> None:
    rating_plugin()
    try:
        [result] = Runtime(Registry(rating_registry)).predict(["where is order MA-12345678??"])
    finally:
        host.cache_clear()
    assert isinstance(result["predictions"]["csat"]["rating"], float)
    assert isinstance(result["predictions"]["intent"]["label"], str)
    assert result["versions"]["heads"] == {"csat": 1, "intent": 1}


def test_head_whose_plugin_is_missing_names_the_package(rating_registry: Path) -> None:
    host.cache_clear()  # a fresh host: installed entry points only, no doc example
    assert "rating" not in host().head_type_names
    message = (
        "head type 'rating' comes from the plugin package mtl-rating-head "
        "(version 0.1.0), which is not installed: pip install mtl-rating-head"
    )
    with pytest.raises(PluginError, match=re.escape(message)):
        Runtime(Registry(rating_registry))
    with pytest.raises(PluginError, match=re.escape(message)):
        evaluate(Registry(rating_registry))
    proc = run_cli("--registry", str(rating_registry), "predict", "hello", ok=False)
    assert f"error: {message}" in proc.stderr and "Traceback" not in proc.stderr


# ---- the real third-party package --------------------------------------------------------------
def test_ordinal_package_is_discovered_through_its_entry_point_after_pip_install(
    tmp_path: Path,
) -> None:
    """A throwaway venv that sees this environment's packages (not its ordinal install: the
    venv's own site-packages come first), then a real, offline `pip install`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    host_site = sysconfig.get_paths()["purelib"]
    (Path(site) / "host_env.pth").write_text(f"import site; site.addsitedir({host_site!r})\n")
    source = shutil.copytree(
        ORDINAL,
        tmp_path / "src",  # build there, not in the checkout
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    pip = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr

    version = re.search(r'^version = "(.+)"$', (ORDINAL / "pyproject.toml").read_text(), re.M)[1]
    listing = {p["name"]: p for p in json.loads(run_cli("plugins", "--json", python=python).stdout)}
    ordinal = listing["ordinal"]
    assert (ordinal["distribution"], ordinal["version"], ordinal["status"]) == (
        "mtl-ordinal-head",
        version,
        "loaded",
    )
    assert ordinal["location"].startswith(site)  # the copy pip just installed
    assert ordinal["head_types"] == [
        {"name": "ordinal", "level": "sentence", "field": "csat", "primary_metric": "spearman"}
    ]
    assert ordinal["api_version"] == PLUGIN_API_VERSION
    builtin = listing["builtin"]
    assert builtin["distribution"] == "mtl-registry" and builtin["status"] == "loaded"
    assert {h["name"] for h in builtin["head_types"]} == {"intent", "sentiment", "ner"}
    assert {"equal", "uncertainty"} <= set(builtin["strategies"])


def test_plugins_command_prints_what_the_host_sees() -> None:
    host.cache_clear()
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "builtin: mtl-registry 0.1.0 loaded (plugin API 1)" in result.output
    assert "head type ner: field 'entities', token level, primary metric f1" in result.output
    assert "strategies: equal, uncertainty" in result.output


def test_generated_csat_data_trains_with_the_ordinal_head_from_the_cli(
    tmp_path: Path, tiny_bert: Path
) -> None:
    """Needs the README set-up (`pip install -e ./plugins/mtl-ordinal-head`)."""
    registry = Registry(tmp_path / "reg")
    registry.init(tiny_bert)
    generate_csat(tmp_path / "csat", n_train=96, n_dev=32, n_test=32)  # the CLI's scenario
    run_cli(
        "--registry",
        str(registry.root),
        "train",
        "--task",
        f"csat={tmp_path / 'csat'}",
        "--head-type",
        "csat=ordinal",
        "--max-steps",
        "3",
        "--batch-size",
        "16",
        "--quiet",
    )
    manifest = registry.active_head("csat")
    assert manifest.head_type == "ordinal" and manifest.plugin.name == "mtl-ordinal-head"
    assert manifest.labels == ["1", "2", "3", "4", "5"]
    assert {"mae", "spearman", "accuracy", "within_one_accuracy"} <= set(manifest.metrics["test"])
    host.cache_clear()
    [result] = Runtime(registry).predict(["thanks, the delivery was super fast!"])
    pred = result["predictions"]["csat"]
    assert pred["score"] in range(1, 6) and 1.0 <= pred["expected"] <= 5.0
    assert sum(pred["distribution"].values()) == pytest.approx(1.0, abs=1e-3)


# ---- broken plugins, as `mtlreg plugins` lists them --------------------------------------------
@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    fake_distribution(tmp_path, "import-broken-heads", "import_broken = mtlreg_no_such_module")
    fake_distribution(
        tmp_path,
        "invalid-heads",
        "invalid = mtlreg_invalid_heads",
        "mtlreg_invalid_heads",
        """
        from mtl_registry.heads.intent import IntentHead
        from mtl_registry.hookspecs import hookimpl

        class DocHead(IntentHead):
            name = "doc"
            level = "document"

        @hookimpl
        def register_head_types(register):
            register(DocHead())
    """,
    )
    fake_distribution(
        tmp_path,
        "future-heads",
        "future = mtlreg_future_heads",
        "mtlreg_future_heads",
        """
        MTLREG_PLUGIN_API = 99

        def register_head_types(register):
            raise AssertionError("never called: the API version is refused first")
    """,
    )
    return tmp_path


def test_broken_plugins_are_skipped_listed_as_failed_and_fatal_in_strict_mode(
    broken_site: Path,
) -> None:
    env = {"PYTHONPATH": str(broken_site)}
    proc = run_cli("plugins", "--json", env=env)
    listing = {p["name"]: p for p in json.loads(proc.stdout)}
    reasons = {
        "import_broken": "ModuleNotFoundError: No module named 'mtlreg_no_such_module'",
        "invalid": "head type DocHead: field 'level': Input should be 'sentence' or 'token' "
        "(got 'document')",
        "future": "targets plugin API 99, but mtl-registry 0.1.0 supports API 1",
    }
    for name, reason in reasons.items():
        plugin = listing[name]
        assert plugin["status"] == "failed" and plugin["head_types"] == []
        assert reason in plugin["error"]
        assert f"plugin '{name}' from {plugin['distribution']} 1.0 skipped" in proc.stderr
    assert listing["builtin"]["status"] == "loaded"

    strict = run_cli("plugins", "--json", env={**env, "MTLREG_STRICT_PLUGINS": "1"}, ok=False)
    assert strict.stdout == ""
    assert "error: plugin 'future' from future-heads 1.0 skipped: PluginError" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_load_plugins_variable_chooses_distributions(
    broken_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(broken_site))
    monkeypatch.setenv("MTLREG_LOAD_PLUGINS", "")
    h = PluginHost()
    h.load_entry_points()  # no warning: nothing broken was loaded
    assert {n: p.status for n, p in h.plugins.items() if n != "builtin"} == dict.fromkeys(
        ["future", "import_broken", "invalid"] + (["ordinal"] if "ordinal" in h.plugins else []),
        "disabled",
    )
    assert h.plugins["builtin"].status == "loaded"
    monkeypatch.setenv("MTLREG_LOAD_PLUGINS", "Future_Heads")  # normalised like pip does
    h = PluginHost()
    with pytest.warns(UserWarning, match="future-heads"):
        h.load_entry_points()
    assert h.plugins["future"].status == "failed" and h.plugins["invalid"].status == "disabled"


# ---- validation: every invalid registration names the plugin and the field ---------------------
class Registers:
    """A plugin object whose hooks register the given head types and strategies."""

    def __init__(
        self, heads: tuple[Any, ...] = (), strategies: tuple[Any, ...] = (), api: Any = None
    ) -> None:
        self.heads, self.strategies = heads, strategies
        if api is not None:
            self.MTLREG_PLUGIN_API = api

    @hookimpl
    def register_head_types(self, register: Callable[[Any], None]) -> None:
        for head in self.heads:
            register(head)

    @hookimpl
    def register_strategies(self, register: Callable[[Any], None]) -> None:
        for strategy in self.strategies:
            register(strategy)


def head(**attrs: Any) -> IntentHead:
    return type("OddHead", (IntentHead,), {"name": "odd", **attrs})()


# every IntentHead method, but no primary_metric: a HeadType subclass that forgot one attribute
NoPrimaryMetric = type(
    "NoPrimaryMetric",
    (HeadType,),
    {
        **{k: v for k, v in vars(IntentHead).items() if not k.startswith("__")},
        "name": "no_metric",
        "primary_metric": None,
    },
)
del NoPrimaryMetric.primary_metric


class OneArgParse(IntentHead):
    name = "one_arg"

    def parse(self, value: Any) -> str:  # type: ignore[override]
        return str(value)


NoGradients = type("NoGradients", (Strategy,), {"name": "no_gradients", "weights": dict})


INVALID = {
    "level": (
        Registers(heads=(head(level="document"),)),
        "head type OddHead: field 'level': Input should be 'sentence' or 'token' (got 'document')",
    ),
    "name": (
        Registers(heads=(head(name="Odd Head"),)),
        "field 'name': String should match pattern",
    ),
    "reserved field": (
        Registers(heads=(head(field="text"),)),
        "field 'field': Value error, 'text' is reserved by the data loader",
    ),
    "missing attribute": (
        Registers(heads=(NoPrimaryMetric(),)),
        "field 'primary_metric': Field required",
    ),
    "method signature": (
        Registers(heads=(OneArgParse(),)),
        "field 'parse': must accept (value, text), but it takes (value)",
    ),
    "abstract strategy": (
        Registers(strategies=(NoGradients,)),
        "strategy NoGradients: field 'fill_gradients': not implemented",
    ),
    "strategy name": (
        Registers(strategies=(type("Fast", (EqualWeights,), {"name": "Fast!"}),)),
        "strategy Fast: field 'name': String should match pattern",
    ),
    "strategy options": (
        Registers(strategies=(type("Opt", (EqualWeights,), {"name": "opt", "Options": object}),)),
        "strategy Opt: field 'Options': Input should be a subclass of BaseModel",
    ),
}


@pytest.mark.parametrize(("plugin", "reason"), INVALID.values(), ids=list(INVALID))
def test_invalid_registration_names_plugin_and_field(
    plugin: Registers, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = PluginHost()
    with pytest.warns(UserWarning) as record:
        h.add_plugin(plugin, "odd", "odd-heads", "1.0")
    [warning] = record
    assert str(warning.message).startswith("plugin 'odd' from odd-heads 1.0 skipped: PluginError: ")
    assert reason in str(warning.message)
    assert h.plugins["odd"].status == "failed" and reason in (h.plugins["odd"].error or "")
    assert h.head_type_names == [] and h.strategy_names == []

    monkeypatch.setenv("MTLREG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=re.escape(reason)):
        PluginHost().add_plugin(plugin, "odd", "odd-heads", "1.0")


def test_valid_strategy_with_options_model_is_accepted() -> None:
    class Options(BaseModel):
        alpha: float = 1.0

    strategy = type("Tuned", (EqualWeights,), {"name": "tuned-equal", "Options": Options})
    h = PluginHost()
    h.add_plugin(Registers(strategies=(strategy,)), "tuned", "tuned-strategies")
    assert h.strategy("tuned-equal") is strategy
    assert h.plugins["tuned"].strategies == ["tuned-equal"]


def test_misspelt_hook_and_missing_hookimpl_are_refused() -> None:
    class Misspelt:
        @hookimpl
        def register_head_type(self, register: Callable[[Any], None]) -> None:
            register(IntentHead())

    class Unmarked:
        def register_head_types(self, register: Callable[[Any], None]) -> None:
            register(IntentHead())

    h = PluginHost()
    with pytest.warns(UserWarning, match=r"unknown hook\(s\) \['register_head_type'\]"):
        h.add_plugin(Misspelt(), "misspelt", "misspelt-heads")
    with pytest.warns(UserWarning, match="implements no hook: mark one of"):
        h.add_plugin(Unmarked(), "unmarked", "unmarked-heads")
    assert [p.status for p in h.plugins.values()] == ["failed", "failed"]
    assert h.pm.get_plugins() == set()


def test_plugin_name_taken_twice_keeps_the_first() -> None:
    h = PluginHost()
    h.add_plugin(Registers(heads=(head(),)), "heads", "dist-a", "1.0")
    with pytest.warns(UserWarning, match="plugin name 'heads' is already taken by dist-a"):
        h.add_plugin(Registers(heads=(head(name="other"),)), "heads", "dist-b", "1.0")
    assert h.plugins["heads"].status == "loaded" and h.plugins["dist-b:heads"].status == "failed"
    assert h.head_type_names == ["odd"]


def test_head_type_now_from_another_distribution_warns() -> None:
    with pytest.warns(
        UserWarning, match="was built with old-heads 1.0; using the one from mtl-registry"
    ):
        head_type, ref = host().head_type("intent", PluginRef(name="old-heads", version="1.0"))
    assert isinstance(head_type, IntentHead) and ref.name == "mtl-registry"


# ---- the plugin API version ----------------------------------------------------------------
def test_declared_api_version_is_recorded_and_defaults_to_1() -> None:
    assert PLUGIN_API_VERSION in SUPPORTED_PLUGIN_API_VERSIONS
    h = PluginHost()
    h.add_plugin(Registers(heads=(head(),), api=PLUGIN_API_VERSION), "declared", "declared-heads")
    h.add_plugin(Registers(heads=(head(name="quiet"),)), "silent", "silent-heads")
    assert h.plugins["declared"].api_version == PLUGIN_API_VERSION
    assert h.plugins["silent"].api_version == 1


@pytest.mark.parametrize(
    ("api", "reason"),
    [
        (
            2,
            "targets plugin API 2, but mtl-registry 0.1.0 supports API 1: install a release of "
            "the plugin made for API 1, or an mtl-registry that supports API 2",
        ),
        ("1", "field 'MTLREG_PLUGIN_API': must be an integer plugin API version, got '1'"),
        (True, "must be an integer plugin API version, got True"),
    ],
    ids=["unsupported", "string", "bool"],
)
def test_unsupported_api_version_is_refused_before_any_hook_runs(
    api: Any, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Explodes(Registers):
        @hookimpl
        def register_head_types(self, register: Callable[[Any], None]) -> None:
            raise AssertionError("a refused plugin's hooks must not run")

    h = PluginHost()
    with pytest.warns(UserWarning, match=re.escape(reason)):
        h.add_plugin(Explodes(api=api), "future", "future-heads", "3.0")
    assert h.plugins["future"].status == "failed" and h.pm.get_plugin("future") is None
    monkeypatch.setenv("MTLREG_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'future' from future-heads 3\.0 skipped"):
        PluginHost().add_plugin(Explodes(api=api), "future", "future-heads", "3.0")
