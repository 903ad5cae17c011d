"""What a plugin may register, checked before the host accepts it.

A mistake in a plugin should surface when it loads, with the field to fix, not as a
shape error in the middle of a training run. The host prefixes every message with the
plugin and distribution; plugin authors can call the `validate_*` functions in their tests.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mtl_registry import __version__
from mtl_registry.errors import PluginError
from mtl_registry.heads.base import HeadType
from mtl_registry.hookspecs import API_VERSION_ATTRIBUTE, SUPPORTED_PLUGIN_API_VERSIONS
from mtl_registry.strategies.base import Strategy

NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"
"""Head type and strategy names: typed on command lines and stored in manifests."""
RESERVED_FIELDS = frozenset({"text", "line"})
"""Record keys the loader uses itself; a head type cannot read its labels from them."""


class HeadTypeSpec(BaseModel):
    """The class attributes every head type declares (see `HeadType`)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    level: Literal["sentence", "token"]
    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    primary_metric: str = Field(min_length=1)

    @field_validator("field")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_FIELDS:
            raise ValueError(f"'{v}' is reserved by the data loader")
        return v


class StrategySpec(BaseModel):
    """The class attributes every strategy declares (see `Strategy`)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    Options: type[BaseModel] | None = None  # the pydantic model of its options, if any


def _contract(cls: type) -> dict[str, list[str]]:
    """Public methods of a base class and the arguments the host passes them (after self)."""
    return {
        name: list(inspect.signature(fn).parameters)[1:]
        for name, fn in vars(cls).items()
        if inspect.isfunction(fn) and not name.startswith("_")
    }


HEAD_TYPE_METHODS = _contract(HeadType)
STRATEGY_METHODS = _contract(Strategy)


def _parse(model: type[BaseModel], obj: Any, what: str) -> Any:
    try:
        return model.model_validate(obj, from_attributes=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(map(str, err["loc"]))
            got = getattr(obj, field, "<missing>")
            problems.append(f"field '{field}': {err['msg']} (got {got!r})")
        raise PluginError(f"{what}: " + "; ".join(problems)) from None


def validate_head_type(obj: Any) -> HeadTypeSpec:
    """A HeadType instance with valid class attributes whose methods take the contract's
    arguments."""
    if not isinstance(obj, HeadType):
        raise PluginError(f"register_head_types got {obj!r}, not a HeadType instance")
    what = f"head type {type(obj).__qualname__}"
    spec = _parse(HeadTypeSpec, obj, what)
    _check_methods(obj, HEAD_TYPE_METHODS, what, bound=True)
    return spec


def _check_methods(obj: Any, contract: dict[str, list[str]], what: str, bound: bool) -> None:
    """Every contract method is callable with the arguments the host passes it."""
    for method, params in contract.items():
        fn = getattr(obj, method, None)
        if not callable(fn):
            raise PluginError(f"{what}: field '{method}': must be a method, got {fn!r}")
        try:
            inspect.signature(fn).bind(*([] if bound else ["self"]), *params)
        except (TypeError, ValueError):
            raise PluginError(
                f"{what}: field '{method}': must accept ({', '.join(params)}), "
                f"but it takes ({', '.join(inspect.signature(fn).parameters)})"
            ) from None


def validate_strategy(obj: Any) -> StrategySpec:
    """A concrete Strategy subclass (the class: the trainer builds one per run) with a name."""
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise PluginError(f"register_strategies got {obj!r}, not a Strategy subclass")
    what = f"strategy {obj.__qualname__}"
    if inspect.isabstract(obj):
        missing = sorted(obj.__abstractmethods__)
        raise PluginError(
            f"{what}: field '{missing[0]}': not implemented (abstract: {', '.join(missing)})"
        )
    spec = _parse(StrategySpec, obj, what)
    _check_methods(obj, STRATEGY_METHODS, what, bound=False)
    return spec


def declared_api_version(plugin: Any) -> int:
    """The plugin API a plugin was written for; refuses versions this host does not support."""
    version = getattr(plugin, API_VERSION_ATTRIBUTE, 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise PluginError(
            f"field '{API_VERSION_ATTRIBUTE}': must be an integer plugin API "
            f"version, got {version!r}"
        )
    if version not in SUPPORTED_PLUGIN_API_VERSIONS:
        supported = ", ".join(map(str, sorted(SUPPORTED_PLUGIN_API_VERSIONS)))
        raise PluginError(
            f"targets plugin API {version}, but mtl-registry {__version__} supports API "
            f"{supported}: install a release of the plugin made for API {supported}, "
            f"or an mtl-registry that supports API {version}"
        )
    return version
