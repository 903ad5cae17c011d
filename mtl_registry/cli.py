"""`mtlreg`: a thin command line over the library. Parsing and printing only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mtl_registry.cli_format import format_prediction
from mtl_registry.errors import MtlRegError
from mtl_registry.registry import Registry


class _Group(click.Group):
    """Prints user errors once, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MtlRegError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.secho("interrupted: nothing was published", fg="yellow", err=True)
            sys.exit(130)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _task_dirs(values: tuple[str, ...]) -> dict[str, Path]:
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"expected NAME=DATA_DIR, got {value!r}", param_hint="--task")
        out[name] = Path(path)
    return out


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
backend_option = click.option(
    "--backend",
    type=click.Choice(["torch", "onnx", "onnx-int8"]),
    default="torch",
    show_default=True,
    help="PyTorch eager, or the release exported as one ONNX graph "
    "(fp32 or INT8; built and cached on first use, see `mtlreg export`).",
)
threads_option = click.option(
    "--threads", type=click.IntRange(min=1), help="Intra-op threads (default: one per core)."
)


@click.group(cls=_Group)
@click.option(
    "--registry",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("artifacts"),
    envvar="MTLREG_REGISTRY",
    show_default=True,
    help="Registry directory (env MTLREG_REGISTRY).",
)
@click.pass_context
def main(ctx: click.Context, root: Path) -> None:
    """One shared encoder, many versioned task heads."""
    ctx.obj = Registry(root)


@main.command()
@click.option(
    "--encoder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Local Hugging Face encoder folder (default: packaged all-MiniLM-L6-v2).",
)
@click.pass_obj
def init(registry: Registry, encoder: Path | None) -> None:
    """Create the registry and import the base encoder."""
    from mtl_registry.encoder.files import packaged_encoder_path

    manifest = registry.init(encoder or packaged_encoder_path())
    click.echo(
        f"registry {registry.root}: encoder {manifest.fingerprint} "
        f"({manifest.model_type}, hidden {manifest.hidden_size}) active"
    )


@main.command("generate-data")
@click.argument("scenario")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True)
def generate_data(scenario: str, out_dir: Path, seed: int) -> None:
    """Generate a synthetic corpus (mangaassist, mangaassist-sentiment-v2, mangaassist-csat)."""
    from mtl_registry.data.mangaassist import SCENARIOS

    if scenario not in SCENARIOS:
        raise click.BadParameter(f"unknown scenario; choose from {sorted(SCENARIOS)}")
    counts = SCENARIOS[scenario](out_dir, seed=seed)
    click.echo(f"{scenario} -> {out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


@main.command()
@click.argument("fmt", metavar="FORMAT")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--scheme", type=click.Choice(["iob1", "bio"]), help="Tag scheme (conll, jointbert).")
def convert(fmt: str, src: Path, out_dir: Path, scheme: str | None) -> None:
    """Convert a public dataset (jointbert, conll, goemotions, clinc150) to canonical JSONL."""
    from mtl_registry.data.converters import convert as run_convert

    counts = run_convert(fmt, src, out_dir, **({"scheme": scheme} if scheme else {}))
    click.echo(f"{fmt} -> {out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict:
    """KEY=VALUE pairs; values are read as JSON where they parse (numbers, booleans)."""
    out: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _train_options(strategy: str) -> Any:
    """The options `train` and `add-task` share; only the default strategy differs."""
    options = [
        click.option(
            "--strategy",
            default=strategy,
            show_default=True,
            help="equal, uncertainty, gradnorm, pcgrad, or one from a plugin.",
        ),
        click.option(
            "--strategy-option",
            "strategy_options",
            multiple=True,
            metavar="KEY=VALUE",
            callback=_key_values,
            help="A strategy option, e.g. alpha=1.5 (repeat).",
        ),
        click.option("--epochs", default=3, show_default=True),
        click.option("--max-steps", type=int, help="Stop after this many steps."),
        click.option("--batch-size", default=32, show_default=True),
        click.option("--lr", default=1e-4, show_default=True, help="Encoder learning rate."),
        click.option("--seed", default=0, show_default=True),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]

    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@main.command()
@click.option(
    "--task",
    "tasks",
    multiple=True,
    required=True,
    metavar="NAME=DATA_DIR",
    help="A task and its data directory; repeat per task.",
)
@click.option(
    "--head-type",
    "head_types",
    multiple=True,
    metavar="NAME=TYPE",
    help="Head type of a task (default: the task's name).",
)
@_train_options("uncertainty")
@click.pass_obj
def train(
    registry: Registry,
    tasks: tuple[str, ...],
    head_types: tuple[str, ...],
    quiet: bool,
    **options: Any,
) -> None:
    """Jointly fine-tune the encoder and a head per task; publish and activate the result."""
    from mtl_registry.evaluation.report import to_markdown
    from mtl_registry.training import TaskSpec, TrainConfig
    from mtl_registry.training import train as run_train

    types = {k: str(v) for k, v in _task_dirs(head_types).items()}
    specs = [
        TaskSpec(name=n, head_type=types.get(n, n), data=d) for n, d in _task_dirs(tasks).items()
    ]
    result = run_train(registry, specs, TrainConfig(**options), progress=not quiet)
    click.echo(
        f"encoder {result.encoder.fingerprint} published; "
        + ", ".join(f"{h.task} v{h.version}" for h in result.heads)
        + " active"
    )
    click.echo(
        to_markdown(
            result.test or result.dev, title=f"Held-out scores ({'test' if result.test else 'dev'})"
        )
    )
    click.echo(f"step log and reports: {result.run_dir}")


@main.command()
@click.option(
    "--task",
    "tasks",
    multiple=True,
    metavar="NAME=DATA_DIR",
    help="Evaluate on this data (default: each head's training data).",
)
@click.option("--split", default="test", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write report.json and report.md here.",
)
@backend_option
@threads_option
@json_option
@click.pass_obj
def evaluate(
    registry: Registry,
    tasks: tuple[str, ...],
    split: str,
    out: Path | None,
    backend: str,
    threads: int | None,
    as_json: bool,
) -> None:
    """Score the active heads on held-out data."""
    from mtl_registry.evaluation.evaluate import evaluate as run_evaluate
    from mtl_registry.evaluation.report import to_markdown
    from mtl_registry.runtime import Runtime

    report = run_evaluate(
        registry,
        _task_dirs(tasks) or None,
        split,
        runtime=Runtime(registry, backend=backend, threads=threads),
    )
    markdown = to_markdown(report, title=f"Evaluation ({split})")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2))
        (out / "report.md").write_text(markdown)
    _print_json(report) if as_json else click.echo(markdown)


@main.command()
@click.argument("texts", nargs=-1, required=True)
@backend_option
@threads_option
@json_option
@click.pass_obj
def predict(
    registry: Registry, texts: tuple[str, ...], backend: str, threads: int | None, as_json: bool
) -> None:
    """Every active head on each text, from one encoder pass."""
    from mtl_registry.runtime import Runtime

    results = Runtime(registry, backend=backend, threads=threads).predict(list(texts))
    if as_json:
        _print_json(results)
        return
    for r in results:
        click.echo(format_prediction(r))


@main.command("list")
@json_option
@click.pass_obj
def list_(registry: Registry, as_json: bool) -> None:
    """Encoders and head versions, with what is active."""
    registry.require()
    active = registry.active()
    data = {
        "active": active.model_dump(),
        "encoders": [
            {
                "fingerprint": e.fingerprint,
                "parent": e.parent,
                "source": e.source,
                "created_at": e.created_at.isoformat(),
            }
            for e in registry.encoders()
        ],
        "heads": {t: registry.head_versions(t) for t in registry.tasks()},
    }
    if as_json:
        _print_json(data)
        return
    for e in data["encoders"]:
        mark = "*" if e["fingerprint"] == active.encoder else " "
        click.echo(f"{mark} encoder {e['fingerprint']}  parent {e['parent']}  {e['source']}")
    for task, versions in data["heads"].items():
        shown = [f"*{v}" if active.heads.get(task) == v else str(v) for v in versions]
        click.echo(f"  {task}: versions {' '.join(shown)}")


@main.command()
@click.argument("task")
@click.argument("version", type=int, required=False)
@json_option
@click.pass_obj
def show(registry: Registry, task: str, version: int | None, as_json: bool) -> None:
    """A head version's manifest (default: the active one)."""
    manifest = (
        registry.require().head_manifest(task, version)
        if version is not None
        else registry.require().active_head(task)
    )
    data = json.loads(manifest.model_dump_json())
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        if key != "metrics":
            click.echo(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    for split, metrics in data["metrics"].items():
        from mtl_registry.evaluation.report import scalars

        click.echo(
            f"metrics.{split}: " + ", ".join(f"{k} {v:.4f}" for k, v in scalars(metrics).items())
        )


@main.command()
@click.argument("task")
@click.argument("version", type=int)
@click.option("--reason", default="", help="Recorded in the history.")
@click.pass_obj
def activate(registry: Registry, task: str, version: int, reason: str) -> None:
    """Make a head version the active one for its task."""
    registry.activate(task, version, reason)
    click.echo(f"{task} v{version} active")


@main.command()
@json_option
@click.pass_obj
def history(registry: Registry, as_json: bool) -> None:
    """Every change to the registry, oldest first."""
    entries = [json.loads(e.model_dump_json(by_alias=True)) for e in registry.require().history()]
    if as_json:
        _print_json(entries)
        return
    for e in entries:
        task = f" {e['task']}" if e["task"] else ""
        click.echo(f"{e['time']}  {e['action']}{task}: {e['from']} -> {e['to']}  {e['reason']}")


@main.command()
@json_option
@click.pass_obj
def verify(registry: Registry, as_json: bool) -> None:
    """Recompute every checksum and check the active pointers."""
    problems = registry.verify()
    if as_json:
        _print_json({"ok": not problems, "problems": problems})
    else:
        for p in problems:
            click.secho(f"problem: {p}", fg="red")
        click.echo(
            "ok: every artifact matches its manifest"
            if not problems
            else f"{len(problems)} problem(s)"
        )
    if problems:
        sys.exit(1)


@main.command("retrain-head")
@click.argument("task")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--activate", "do_activate", is_flag=True, help="Make the new version active.")
@click.option("--allow-label-removal", is_flag=True, help="Allow labels the new data lacks to go.")
@click.option("--epochs", default=20, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@json_option
@click.pass_obj
def retrain_head(
    registry: Registry,
    task: str,
    data_dir: Path,
    do_activate: bool,
    allow_label_removal: bool,
    epochs: int,
    seed: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Train a new version of one head on the frozen active encoder."""
    from mtl_registry.evaluation.report import scalars
    from mtl_registry.training.head_only import HeadTrainConfig
    from mtl_registry.training.head_only import retrain_head as run_retrain

    result = run_retrain(
        registry,
        task,
        data_dir,
        HeadTrainConfig(epochs=epochs, seed=seed),
        activate=do_activate,
        allow_label_removal=allow_label_removal,
        progress=not quiet and not as_json,
    )
    m = result.manifest
    if as_json:
        _print_json(
            {
                "task": task,
                "version": m.version,
                "activated": result.activated,
                "added_labels": result.added_labels,
                "removed_labels": result.removed_labels,
                "comparison": result.comparison,
                "encoder_batches": result.encoder_batches,
                "seconds": result.seconds,
            }
        )
        return
    cmp = result.comparison
    click.echo(
        f"{task} v{m.version} published (parent v{m.parent_version}, encoder "
        f"{m.encoder_fingerprint} frozen) in {result.seconds:.1f}s; "
        f"encoder batches run: {result.encoder_batches}"
    )
    if result.added_labels or result.removed_labels:
        click.echo(f"labels added: {result.added_labels}, removed: {result.removed_labels}")
    for name, metrics in (("active", cmp["active"]), ("new", cmp["new"])):
        version = cmp["active"]["version"] if name == "active" else m.version
        click.echo(
            f"  {cmp['split']} {name:6} v{version}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in scalars(metrics).items() if k != "version")
        )
    click.echo(
        f"{task} v{m.version} is "
        + ("active" if result.activated else f"not active (mtlreg activate {task} {m.version})")
    )


@main.command("add-task")
@click.argument("name")
@click.option(
    "--head-type", required=True, help="Head type of the new task (see `mtlreg plugins`)."
)
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--mode",
    type=click.Choice(["joint", "frozen"]),
    default="joint",
    show_default=True,
    help="joint: encoder and all heads catch up together; frozen: only the new head.",
)
@click.option(
    "--tolerance",
    default=1.0,
    show_default=True,
    help="Points an existing task may fall before the release is held back.",
)
@click.option("--force", is_flag=True, help="Activate even if the regression gate fails.")
@_train_options("gradnorm")
@click.pass_obj
def add_task(
    registry: Registry,
    name: str,
    head_type: str,
    data_dir: Path,
    mode: str,
    tolerance: float,
    force: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Add a task; by default with GradNorm catch-up training and a regression gate."""
    from mtl_registry.training import TrainConfig
    from mtl_registry.training.add_task import add_task as run_add_task

    result = run_add_task(
        registry,
        name,
        head_type,
        data_dir,
        mode=mode,  # type: ignore[arg-type]
        config=TrainConfig(**options),
        tolerance=tolerance,
        force=force,
        progress=not quiet,
    )
    gate = result.gate
    if gate.get("checked"):
        for task, row in gate["tasks"].items():
            click.echo(
                f"  {task}: {row['metric']} {row['before']:.4f} -> {row['after']:.4f} "
                f"({row['change_points']:+.2f} points)"
            )
        click.echo(
            f"regression gate ({gate['split']}, tolerance {tolerance} points): "
            + ("passed" if gate["passed"] else f"FAILED: {gate['summary']}")
        )
    versions = ", ".join(f"{t} v{v}" for t, v in sorted(result.versions.items()))
    if result.activated:
        click.echo(f"release active: encoder {result.encoder}, {versions}")
    else:
        click.echo(f"published but NOT activated ({versions}); rerun with --force to override")
        sys.exit(2)


@main.command()
@click.option("--reason", default="", help="Recorded in the history.")
@click.pass_obj
def rollback(registry: Registry, reason: str) -> None:
    """Return to exactly the encoder and heads that were active before the latest release."""
    state = registry.rollback(reason)
    click.echo(
        f"active: encoder {state.encoder}, "
        + ", ".join(f"{t} v{v}" for t, v in sorted(state.heads.items()))
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--max-texts", default=64, show_default=True, help="Texts per request at most.")
@click.option("--max-chars", default=2000, show_default=True, help="Characters per text at most.")
@click.option(
    "--poll-interval",
    default=0.2,
    show_default=True,
    help="Seconds between checks of the registry's active pointers.",
)
@backend_option
@threads_option
@click.pass_obj
def serve(
    registry: Registry,
    host: str,
    port: int,
    max_texts: int,
    max_chars: int,
    poll_interval: float,
    backend: str,
    threads: int | None,
) -> None:
    """Serve predictions over HTTP; heads hot-swap when the registry's pointers move."""
    from mtl_registry.runtime import Runtime
    from mtl_registry.serving import Limits
    from mtl_registry.serving import serve as run_serve

    if backend != "torch":  # a head swap then starts no second pool beside the serving one
        from mtl_registry.runtime.onnx_backend import share_one_thread_pool

        share_one_thread_pool(threads)
    runtime = Runtime(registry, backend=backend, threads=threads)
    click.echo(
        f"serving {', '.join(f'{t} v{v}' for t, v in runtime.heads.versions['heads'].items())}"
        f" on http://{host}:{port}",
        err=True,
    )
    run_serve(runtime, host, port, Limits(max_texts=max_texts, max_chars=max_chars), poll_interval)


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to generate the corpus (default: REGISTRY/data).",
)
@click.option("--epochs", default=3, show_default=True, help="Joint training epochs.")
@click.option("--add-task-epochs", default=1, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_obj
def demo(
    registry: Registry,
    data_dir: Path | None,
    epochs: int,
    add_task_epochs: int,
    seed: int,
    quiet: bool,
) -> None:
    """The whole MangaAssist job end to end on the packaged encoder."""
    from mtl_registry.demo import run_demo

    run_demo(
        registry,
        data_dir or registry.root / "data",
        epochs=epochs,
        add_task_epochs=add_task_epochs,
        seed=seed,
        progress=not quiet,
        echo=click.echo,
    )


@main.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--int8", is_flag=True, help="Dynamic INT8 quantisation, behind a quality gate.")
@click.option(
    "--max-drop",
    default=1.0,
    show_default=True,
    help="INT8 gate: points of its primary metric a head may lose on held-out data.",
)
@click.option(
    "--task",
    "tasks",
    multiple=True,
    metavar="NAME=DATA_DIR",
    help="Held-out data for the INT8 gate (default: each head's training data).",
)
@json_option
@click.pass_obj
def export(
    registry: Registry,
    out: Path | None,
    int8: bool,
    max_drop: float,
    tasks: tuple[str, ...],
    as_json: bool,
) -> None:
    """The active encoder and heads as one ONNX graph, one output per head, plus a manifest."""
    from mtl_registry.export import export_active

    path, manifest = export_active(
        registry,
        out,
        int8=int8,
        max_drop=max_drop / 100,
        data=_task_dirs(tasks) or None,
        echo=lambda m: click.echo(m, err=True),
    )
    if as_json:
        _print_json({"path": str(path), **manifest.model_dump(mode="json", exclude={"files"})})
        return
    click.echo(f"{manifest.precision} export of encoder {manifest.encoder_fingerprint} -> {path}")
    for h in manifest.heads:
        click.echo(
            f"  {h.task} v{h.version} ({h.head_type}, {len(h.labels)} labels) -> output {h.output}"
        )
    quant, quality = manifest.quantisation, manifest.quality
    if quant and quality:
        click.echo(
            f"INT8 quality gate ({quality['split']} split, tolerance "
            f"{quality['max_drop_points']} points):"
        )
        for task, c in quality["heads"].items():
            click.echo(
                f"  {task}: {c['metric']} fp32 {c['fp32']:.4f} -> int8 {c['int8']:.4f} "
                f"({c['change_points']:+.2f} points)"
            )
        click.echo(f"kept in fp32: {', '.join(quant.kept_fp32) or 'nothing'} ({quant.reason})")


@main.command("plugins")
@json_option
def plugins_(as_json: bool) -> None:
    """Installed plugins: where they come from, what they provide, whether they loaded."""
    from mtl_registry.plugins import host

    listing = host().describe()
    if as_json:
        _print_json(listing)
        return
    for p in listing:
        colour = {"loaded": "green", "failed": "red"}.get(p["status"], "yellow")
        click.echo(
            f"{p['name']}: {p['distribution']} {p['version']} "
            + click.style(p["status"], fg=colour)
            + (f" (plugin API {p['api_version']})" if p["api_version"] else "")
        )
        click.echo(f"  from {p['location'] or p['entry_point'] or 'in-process'}")
        if p["error"]:
            click.secho(f"  reason: {p['error']}", fg=colour)
        for h in p["head_types"]:
            click.echo(
                f"  head type {h['name']}: field '{h['field']}', {h['level']} level, "
                f"primary metric {h['primary_metric']}"
            )
        if p["strategies"]:
            click.echo(f"  strategies: {', '.join(p['strategies'])}")
