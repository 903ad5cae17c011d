"""What the registry stores about each artifact. Pydantic models with a schema version each."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginRef(_Model):
    """The distribution that provided a head type, so a missing one can be named."""

    name: str
    version: str


class DataRef(_Model):
    """Where training data lived and what it hashed to, for lineage and rehearsal."""

    path: str
    fingerprint: str


class EncoderManifest(_Model):
    schema_version: int = SCHEMA_VERSION
    fingerprint: str
    parent: str | None = None
    source: str
    model_type: str
    hidden_size: int
    created_at: datetime = Field(default_factory=utcnow)
    files: dict[str, str]


class HeadManifest(_Model):
    schema_version: int = SCHEMA_VERSION
    task: str
    version: int
    head_type: str
    plugin: PluginRef
    labels: list[str]
    head_config: dict[str, Any] = Field(default_factory=dict)
    encoder_fingerprint: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: DataRef | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    parent_version: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    files: dict[str, str]


class HeadDraft(_Model):
    """A trained head before the registry gives it a version, checksums and a time."""

    task: str
    head_type: str
    plugin: PluginRef
    labels: list[str]
    head_config: dict[str, Any] = Field(default_factory=dict)
    encoder_fingerprint: str | None = None  # None: the encoder published alongside
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: DataRef | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    parent_version: int | None = None


class ActiveState(_Model):
    """The pointers that say what serves. `generation` grows with every change, for watchers."""

    generation: int = 0
    encoder: str | None = None
    heads: dict[str, int] = Field(default_factory=dict)
    release: int | None = None


class Release(_Model):
    """An encoder and the head versions trained with it, meant to go live together."""

    schema_version: int = SCHEMA_VERSION
    id: int
    encoder: str
    heads: dict[str, int]
    reason: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class HistoryEntry(_Model):
    time: datetime = Field(default_factory=utcnow)
    action: Literal["init", "publish", "activate", "release", "rollback"]
    task: str | None = None
    from_: Any = Field(default=None, alias="from")
    to: Any = None
    reason: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
