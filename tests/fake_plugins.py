"""Installed-distribution fakes for the plugin tests: entry points without pip."""

from __future__ import annotations

import textwrap
from pathlib import Path


def fake_distribution(
    root: Path, dist: str, entry: str, module: str | None = None, source: str = ""
) -> None:
    """An installed distribution on sys.path: dist-info with an entry point, and its module."""
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mtl_registry]\n{entry}\n")
    if module:
        (root / f"{module}.py").write_text(textwrap.dedent(source))
