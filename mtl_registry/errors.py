"""Errors a user can act on. The CLI catches `MtlRegError` once and prints it, no traceback."""

from __future__ import annotations

from pathlib import Path


class MtlRegError(Exception):
    """Base for every error that should reach the user as a plain message."""


class DataError(MtlRegError):
    """Bad input data. Names the file, the line (1-based) and the field when they are known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = ":".join(str(p) for p in (self.path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        fld = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{fld}{message}")


class RegistryError(MtlRegError):
    """A registry operation cannot be done (missing version, corrupted artifact, ...)."""


class FingerprintMismatch(RegistryError):
    """A head was about to be loaded onto an encoder it was not trained on."""


class PluginError(MtlRegError):
    """A plugin failed to load or registered something invalid."""


class ConfigError(MtlRegError):
    """A training option is invalid (for example an unknown or out-of-range strategy option)."""
