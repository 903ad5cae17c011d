"""Scoring the active heads on held-out data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtl_registry.data.prepared import check_labels, load_data_dirs
from mtl_registry.errors import RegistryError
from mtl_registry.evaluation.scoring import score_dirs
from mtl_registry.registry import Registry
from mtl_registry.runtime.predictor import Runtime


def evaluate(
    registry: Registry,
    data: dict[str, Path] | None = None,
    split: str = "test",
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Score active heads on `split`. Without `data`, each head uses the data it was trained on."""
    runtime = runtime or Runtime(registry)
    heads = runtime.heads
    names = list(data) if data else sorted(heads.manifests)
    task_dirs: dict[str, Path] = {}
    for name in names:
        if name not in heads.manifests:
            raise RegistryError(
                f"task '{name}' has no active head; active: {sorted(heads.manifests)}"
            )
        manifest = heads.manifests[name]
        source = (data or {}).get(name) or (Path(manifest.data.path) if manifest.data else None)
        if source is None:
            raise RegistryError(f"task '{name}': no data given and none recorded in its manifest")
        task_dirs[name] = Path(source).resolve()
    model = heads.model
    dirs = load_data_dirs(
        runtime.encoder,
        {n: (model.tasks[n].head_type, d) for n, d in task_dirs.items()},
        required=(split,),
    )
    for n, d in task_dirs.items():
        check_labels(dirs[d].splits[split], model.tasks[n].head_type, model.tasks[n].labels)
    report = score_dirs(model, dirs, task_dirs, split)
    assert report is not None  # the split is required above
    versions = heads.versions
    return {
        "split": split,
        "encoder": versions["encoder"],
        "heads": {n: versions["heads"][n] for n in names},
        **report,
    }
