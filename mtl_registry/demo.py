"""The README's main job: generate MangaAssist data, train three heads jointly, evaluate, predict."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mtl_registry.cli_format import format_prediction
from mtl_registry.data.mangaassist import generate, generate_sentiment_v2
from mtl_registry.encoder.files import packaged_encoder_path
from mtl_registry.evaluation.report import to_markdown
from mtl_registry.registry import Registry
from mtl_registry.runtime import Runtime
from mtl_registry.training import TaskSpec, TrainConfig, train
from mtl_registry.training.head_only import retrain_head

SAMPLE_MESSAGES = [
    "is vol 12 of berserk back in stock?? ordered twice already",
    "where is my order MA-48213907, it was supposed to arrive monday 😡",
    "any recommendations for dark fantasy like vagabond? loved it",
    "hiii just wanted to say you guys are awesome lol",
    "i want a refund, the chainsaw man box set came damaged",
]
GRATITUDE_MESSAGE = "got my one piece box set today, thank you so much!! you guys are the best"


def run_demo(
    registry: Registry, data_dir: Path, *, epochs: int = 4, seed: int = 0,
    progress: bool = True, echo: Callable[[str], None] = print,
) -> None:
    corpus = data_dir / "mangaassist"
    counts = generate(corpus, seed=seed)
    echo(f"[1/5] MangaAssist corpus -> {corpus}: {counts}")
    encoder = registry.init(packaged_encoder_path())
    echo(f"[2/5] registry {registry.root}: base encoder {encoder.fingerprint} "
         f"({encoder.model_type}, hidden {encoder.hidden_size})")
    specs = [TaskSpec(name=n, head_type=n, data=corpus) for n in ("intent", "sentiment", "ner")]
    echo(f"[3/5] joint training of intent + sentiment + ner, {epochs} epochs (uncertainty weighting)")
    result = train(registry, specs, TrainConfig(epochs=epochs, seed=seed), progress=progress,
                   reason="demo")
    echo(f"published encoder {result.encoder.fingerprint}, "
         + ", ".join(f"{h.task} v{h.version}" for h in result.heads))
    assert result.test is not None
    echo(to_markdown(result.test, title="MangaAssist held-out test split"))
    echo("[4/5] predict")
    runtime = Runtime(registry)
    for r in runtime.predict(SAMPLE_MESSAGES):
        echo(format_prediction(r))

    changed = data_dir / "mangaassist-sentiment-v2"
    generate_sentiment_v2(changed, seed=seed)
    echo(f"[5/5] retrain-head sentiment on the changed label set ({changed}: adds 'gratitude'), "
         "encoder frozen")
    retrained = retrain_head(registry, "sentiment", changed, activate=True, progress=progress)
    cmp = retrained.comparison
    echo(f"sentiment v{retrained.manifest.version} active in {retrained.seconds:.1f}s "
         f"(labels added {retrained.added_labels}); {cmp['split']} micro F1 "
         f"v{cmp['active']['version']} {cmp['active']['micro_f1']:.3f} -> "
         f"v{retrained.manifest.version} {cmp['new']['micro_f1']:.3f}")
    runtime.sync()  # the running runtime follows the registry: no reload of the encoder
    for r in runtime.predict([GRATITUDE_MESSAGE]):
        echo(format_prediction(r))
