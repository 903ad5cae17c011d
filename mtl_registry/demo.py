"""The README's main job: MangaAssist data, joint training, evaluation, prediction, changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mtl_registry.cli_format import format_prediction
from mtl_registry.data.mangaassist import generate, generate_csat, generate_sentiment_v2
from mtl_registry.encoder.files import packaged_encoder_path
from mtl_registry.evaluation.report import to_markdown
from mtl_registry.plugins import host
from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.training import TaskSpec, TrainConfig, train
from mtl_registry.training.add_task import add_task
from mtl_registry.training.head_only import retrain_head

SAMPLE_MESSAGES = [
    "is vol 12 of berserk back in stock?? ordered twice already",
    "where is my order MA-48213907, it was supposed to arrive monday 😡",
    "any recommendations for dark fantasy like vagabond? loved it",
    "hiii just wanted to say you guys are awesome lol",
    "i want a refund, the chainsaw man box set came damaged",
]
CSAT_MESSAGES = [
    "third time my order is late. unacceptable, cancel everything",
    "box set arrived early and perfectly packed, love this shop!!",
]
GRATITUDE_MESSAGE = "got my one piece box set today, thank you so much!! you guys are the best"


def run_demo(
    registry: Registry,
    data_dir: Path,
    *,
    epochs: int = 3,
    add_task_epochs: int = 1,
    tolerance: float = 2.0,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> None:
    corpus = data_dir / "mangaassist"
    counts = generate(corpus, seed=seed)
    echo(f"[1/6] MangaAssist corpus -> {corpus}: {counts}")
    encoder = registry.init(packaged_encoder_path())
    echo(
        f"[2/6] registry {registry.root}: base encoder {encoder.fingerprint} "
        f"({encoder.model_type}, hidden {encoder.hidden_size})"
    )
    specs = [TaskSpec(name=n, head_type=n, data=corpus) for n in ("intent", "sentiment", "ner")]
    echo(
        f"[3/6] joint training of intent + sentiment + ner, {epochs} epochs (uncertainty weighting)"
    )
    result = train(
        registry, specs, TrainConfig(epochs=epochs, seed=seed), progress=progress, reason="demo"
    )
    echo(
        f"published encoder {result.encoder.fingerprint}, "
        + ", ".join(f"{h.task} v{h.version}" for h in result.heads)
    )
    assert result.test is not None
    echo(to_markdown(result.test, title="MangaAssist held-out test split"))
    echo("[4/6] predict")
    runtime = Runtime(registry)
    for r in runtime.predict(SAMPLE_MESSAGES):
        echo(format_prediction(r))

    changed = data_dir / "mangaassist-sentiment-v2"
    generate_sentiment_v2(changed, seed=seed)
    echo(
        f"[5/6] retrain-head sentiment on the changed label set ({changed}: adds 'gratitude'), "
        "encoder frozen"
    )
    retrained = retrain_head(registry, "sentiment", changed, activate=True, progress=progress)
    cmp = retrained.comparison
    echo(
        f"sentiment v{retrained.manifest.version} active in {retrained.seconds:.1f}s "
        f"(labels added {retrained.added_labels}); {cmp['split']} micro F1 "
        f"v{cmp['active']['version']} {cmp['active']['micro_f1']:.3f} -> "
        f"v{retrained.manifest.version} {cmp['new']['micro_f1']:.3f}"
    )
    runtime.sync()  # the running runtime follows the registry: no reload of the encoder
    for r in runtime.predict([GRATITUDE_MESSAGE]):
        echo(format_prediction(r))

    if "ordinal" not in host().head_type_names:
        echo(
            "[6/6] skipped add-task: the 'ordinal' head type is not installed "
            "(pip install ./plugins/mtl-ordinal-head)"
        )
        return
    csat = data_dir / "mangaassist-csat"
    generate_csat(csat, seed=seed)
    echo(
        f"[6/6] add-task csat (head type 'ordinal' from the mtl-ordinal-head plugin, {csat}): "
        f"GradNorm catch-up of encoder + all heads, rehearsing the existing tasks"
    )
    added = add_task(
        registry,
        "csat",
        "ordinal",
        csat,
        tolerance=tolerance,
        config=TrainConfig(strategy="gradnorm", epochs=add_task_epochs, seed=seed),
        progress=progress,
    )
    for task, row in added.gate["tasks"].items():
        echo(
            f"  {task}: {row['metric']} {row['before']:.4f} -> {row['after']:.4f} "
            f"({row['change_points']:+.2f} points)"
        )
    echo(
        f"regression gate (tolerance {tolerance} points): "
        + ("passed, release active" if added.activated else f"held back: {added.gate['summary']}")
    )
    runtime.sync()
    for r in runtime.predict(CSAT_MESSAGES):
        echo(format_prediction(r))
