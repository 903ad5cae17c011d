"""Registry store, manifests and durable file helpers: layout, versions, pointers, integrity,
crash debris and concurrent writers, on a real tiny BERT encoder."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from mtl_registry import fileio
from mtl_registry.errors import FingerprintMismatch, RegistryError
from mtl_registry.fileio import (
    append_line,
    atomic_write_json,
    combined_fingerprint,
    file_checksums,
    sha256_file,
)
from mtl_registry.registry import HEAD_WEIGHTS, HeadDraft, PluginRef, Registry

PLUGIN = PluginRef(name="mtl-registry", version="0.1.0")


# ---- helpers ------------------------------------------------------------------------------
def save_head(path: Path, value: float) -> None:
    # torch is imported here, not at module level, so spawned writer processes start fast
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.full((2,), value)}, path)


def head_folder(parent: Path, name: str = "head", value: float = 0.0) -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    save_head(folder / HEAD_WEIGHTS, value)
    return folder


def draft(task: str, fingerprint: str | None, **kw) -> HeadDraft:
    return HeadDraft(
        task=task,
        head_type="intent",
        plugin=PLUGIN,
        labels=["a", "b"],
        encoder_fingerprint=fingerprint,
        **kw,
    )


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def copy_encoder(src: Path, dst: Path, flip: bool = False) -> Path:
    shutil.copytree(src, dst)
    if flip:  # last byte lies in the tensor data, after the safetensors header
        flip_last_byte(dst / "model.safetensors")
    return dst


def publish_worker(root: str, folder: str, fingerprint: str, n: int, barrier) -> None:
    """Run in a spawned process: publish `n` versions of task `intent`."""
    reg = Registry(root)
    barrier.wait()
    for i in range(n):
        reg.publish(
            [(draft("intent", fingerprint, metrics={"pid": os.getpid(), "i": i}), Path(folder))],
            reason=f"worker {os.getpid()}",
        )


def publish_forever(root: str, folder: str, fingerprint: str) -> None:
    reg = Registry(root)
    while True:
        reg.publish([(draft("intent", fingerprint), Path(folder))])


@pytest.fixture
def reg(tmp_path: Path, tiny_bert: Path) -> Registry:
    registry = Registry(tmp_path / "reg")
    registry.init(tiny_bert)
    return registry


@pytest.fixture
def fp(reg: Registry) -> str:
    return reg.active().encoder


# ---- init and fingerprints ----------------------------------------------------------------
def test_init_creates_layout_and_points_at_encoder(tmp_path: Path, tiny_bert: Path) -> None:
    reg = Registry(tmp_path / "reg")
    assert not reg.exists()
    manifest = reg.init(tiny_bert)
    root = reg.root
    assert json.loads((root / "registry.json").read_text()) == {"format": 1}
    assert (root / "heads").is_dir()
    enc = root / "encoders" / manifest.fingerprint
    for name in ("manifest.json", "model.safetensors", "config.json", "vocab.txt"):
        assert (enc / name).is_file(), name
    assert manifest.model_type == "bert" and manifest.hidden_size == 32
    assert manifest.files["model.safetensors"] == sha256_file(tiny_bert / "model.safetensors")
    assert combined_fingerprint(manifest.files) == manifest.fingerprint
    active = reg.active()
    assert active.encoder == manifest.fingerprint and active.heads == {}
    assert [(e.action, e.to) for e in reg.history()] == [("init", manifest.fingerprint)]


def test_init_is_idempotent(reg: Registry, tiny_bert: Path) -> None:
    before = reg.active()
    again = reg.init(tiny_bert)
    assert again.fingerprint == before.encoder
    assert reg.active() == before
    assert len(reg.history()) == 1
    assert [p.name for p in reg.encoders_dir.iterdir()] == [before.encoder]


def test_encoder_fingerprint_is_stable_for_identical_content(
    tmp_path: Path, tiny_bert: Path, reg: Registry, fp: str
) -> None:
    copy = copy_encoder(tiny_bert, tmp_path / "elsewhere" / "same-bert")
    other = Registry(tmp_path / "reg2")
    assert other.init(copy).fingerprint == fp


def test_encoder_fingerprint_changes_when_a_weight_byte_changes(
    tmp_path: Path, tiny_bert: Path, fp: str
) -> None:
    changed = copy_encoder(tiny_bert, tmp_path / "changed", flip=True)
    other = Registry(tmp_path / "reg2")
    assert other.init(changed).fingerprint != fp


def test_reinit_with_other_encoder_moves_pointer_and_records_it(
    tmp_path: Path, tiny_bert: Path, reg: Registry, fp: str
) -> None:
    changed = copy_encoder(tiny_bert, tmp_path / "changed", flip=True)
    new = reg.init(changed, reason="swap")
    assert reg.active().encoder == new.fingerprint != fp
    last = reg.history()[-1]
    assert (last.action, last.from_, last.to, last.reason) == ("init", fp, new.fingerprint, "swap")
    assert sorted(p.name for p in reg.encoders_dir.iterdir()) == sorted([fp, new.fingerprint])


def test_init_refuses_pickle_only_encoder(tmp_path: Path, tiny_bert: Path) -> None:
    src = copy_encoder(tiny_bert, tmp_path / "pickled")
    (src / "model.safetensors").rename(src / "pytorch_model.bin")
    with pytest.raises(RegistryError, match=r"pytorch_model\.bin.*safetensors"):
        Registry(tmp_path / "reg").init(src)


# ---- publish ------------------------------------------------------------------------------
def test_publish_numbers_versions_per_task_from_one(tmp_path: Path, reg: Registry, fp: str) -> None:
    folder = head_folder(tmp_path)
    for _ in range(3):
        reg.publish([(draft("intent", fp), folder)])
    _, [sent] = reg.publish([(draft("sentiment", fp), folder)])
    assert reg.head_versions("intent") == [1, 2, 3]
    assert reg.head_versions("sentiment") == [1]
    assert sent.version == 1
    assert reg.tasks() == ["intent", "sentiment"]
    for v in (1, 2, 3):
        m = reg.head_manifest("intent", v)
        assert m.version == v and m.encoder_fingerprint == fp and m.task == "intent"


def test_published_head_is_a_checksummed_copy_unaffected_by_later_writes(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    folder = head_folder(tmp_path, value=1.0)
    (folder / "notes.txt").write_text("extra file travels too")
    (folder / "manifest.json").write_text("{}")  # a stale manifest in the source is not copied
    _, [m1] = reg.publish([(draft("intent", fp, parent_version=None), folder)])
    v1 = reg.head_dir("intent", 1)
    assert m1.files == {
        HEAD_WEIGHTS: sha256_file(folder / HEAD_WEIGHTS),
        "notes.txt": sha256_file(folder / "notes.txt"),
    }
    on_disk = json.loads((v1 / "manifest.json").read_text())
    assert on_disk["files"] == m1.files and on_disk["version"] == 1
    snapshot = file_checksums(v1)
    # the source folder changes and a second version is published: v1 stays byte-identical
    save_head(folder / HEAD_WEIGHTS, 7.0)
    _, [m2] = reg.publish([(draft("intent", fp, parent_version=1), folder)])
    assert file_checksums(v1) == snapshot
    assert m2.files[HEAD_WEIGHTS] != m1.files[HEAD_WEIGHTS]
    assert m2.parent_version == 1
    assert reg.verify() == []


def test_publish_without_head_weights_is_refused(tmp_path: Path, reg: Registry, fp: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="no head.safetensors"):
        reg.publish([(draft("intent", fp), empty)])
    assert reg.head_versions("intent") == []


def test_publish_onto_unknown_encoder_is_refused(tmp_path: Path, reg: Registry) -> None:
    with pytest.raises(RegistryError, match="no encoder deadbeef"):
        reg.publish([(draft("intent", "deadbeef"), head_folder(tmp_path))])
    assert reg.head_versions("intent") == []


def test_publish_without_activate_leaves_pointers_alone(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    before = reg.active()
    reg.publish([(draft("intent", fp), head_folder(tmp_path))], reason="r")
    assert reg.active() == before
    last = reg.history()[-1]
    assert (last.action, last.task, last.to, last.reason) == ("publish", "intent", 1, "r")


def test_publish_with_activate_sets_pointers_and_appends_history(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    folder = head_folder(tmp_path)
    gen0 = reg.active().generation
    reg.publish(
        [(draft("intent", fp, metrics={"accuracy": 0.9}), folder)], activate=True, reason="first"
    )
    state = reg.active()
    assert state.heads == {"intent": 1} and state.encoder == fp
    assert state.generation == gen0 + 1
    reg.publish([(draft("sentiment", fp), folder)], activate=True)
    assert reg.active().heads == {"intent": 1, "sentiment": 1}
    reg.publish([(draft("ner", fp), folder)], activate=True, replace_active=True)
    assert reg.active().heads == {"ner": 1}
    assert reg.active().generation == gen0 + 3
    actions = [(e.action, e.task) for e in reg.history()]
    assert actions == [
        ("init", None),
        ("publish", "intent"),
        ("activate", None),
        ("publish", "sentiment"),
        ("activate", None),
        ("publish", "ner"),
        ("activate", None),
    ]
    first_publish = reg.history()[1]
    assert first_publish.metrics == {"accuracy": 0.9} and first_publish.reason == "first"
    assert reg.history()[2].to["heads"] == {"intent": 1}


def test_publish_with_new_encoder_activates_both_together(
    tmp_path: Path, tiny_bert: Path, reg: Registry, fp: str
) -> None:
    changed = copy_encoder(tiny_bert, tmp_path / "trained", flip=True)
    enc, [head] = reg.publish(
        [(draft("intent", None), head_folder(tmp_path))],
        encoder_dir=changed,
        encoder_parent=fp,
        activate=True,
    )
    assert enc is not None and enc.parent == fp and enc.source == "trained"
    assert head.encoder_fingerprint == enc.fingerprint
    assert reg.active().encoder == enc.fingerprint and reg.active().heads == {"intent": 1}
    assert reg.verify() == []


# ---- activate -----------------------------------------------------------------------------
def test_activate_moves_pointer_and_records_from_and_to(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    folder = head_folder(tmp_path)
    reg.publish([(draft("intent", fp), folder)], activate=True)
    reg.publish([(draft("intent", fp, metrics={"accuracy": 0.5}), folder)])
    state = reg.activate("intent", 2, reason="better")
    assert state.heads == {"intent": 2} and reg.active() == state
    last = reg.history()[-1]
    assert (last.action, last.task, last.from_, last.to, last.reason, last.metrics) == (
        "activate",
        "intent",
        1,
        2,
        "better",
        {"accuracy": 0.5},
    )
    reg.activate("intent", 1)
    assert reg.active().heads == {"intent": 1}


def test_activate_refuses_head_trained_on_other_encoder(
    tmp_path: Path, tiny_bert: Path, reg: Registry, fp: str
) -> None:
    other = copy_encoder(tiny_bert, tmp_path / "other", flip=True)
    enc, _ = reg.publish([(draft("intent", None), head_folder(tmp_path))], encoder_dir=other)
    assert enc is not None and enc.fingerprint != fp
    active_bytes = reg.active_path.read_bytes()
    history_bytes = reg.history_path.read_bytes()
    with pytest.raises(FingerprintMismatch) as info:
        reg.activate("intent", 1)
    assert enc.fingerprint in str(info.value) and fp in str(info.value)
    assert reg.active_path.read_bytes() == active_bytes
    assert reg.history_path.read_bytes() == history_bytes
    assert reg.active().heads == {}


def test_activate_missing_version_lists_existing_versions(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    folder = head_folder(tmp_path)
    reg.publish([(draft("intent", fp), folder)], activate=True)
    reg.publish([(draft("intent", fp), folder)])
    before = reg.active_path.read_bytes()
    with pytest.raises(RegistryError, match=r"task 'intent' has no version 7 \(versions: 1, 2\)"):
        reg.activate("intent", 7)
    with pytest.raises(RegistryError, match=r"task 'csat' has no version 1 \(no versions\)"):
        reg.activate("csat", 1)
    assert reg.active_path.read_bytes() == before


def test_operations_on_a_missing_registry_say_to_init(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "nowhere")
    with pytest.raises(RegistryError, match="mtlreg init"):
        reg.activate("intent", 1)
    with pytest.raises(RegistryError, match="mtlreg init"):
        reg.verify()
    assert not (tmp_path / "nowhere").exists()


# ---- verify -------------------------------------------------------------------------------
def test_verify_is_empty_on_a_fresh_registry(reg: Registry) -> None:
    assert reg.verify() == []


def test_verify_reports_a_corrupted_head_file(tmp_path: Path, reg: Registry, fp: str) -> None:
    reg.publish([(draft("intent", fp), head_folder(tmp_path))], activate=True)
    weights = reg.head_dir("intent", 1) / HEAD_WEIGHTS
    flip_last_byte(weights)
    problems = reg.verify()
    assert len(problems) == 1
    assert str(weights) in problems[0] and "checksum" in problems[0]


def test_verify_reports_a_deleted_file(tmp_path: Path, reg: Registry, fp: str) -> None:
    reg.publish([(draft("intent", fp), head_folder(tmp_path))])
    weights = reg.head_dir("intent", 1) / HEAD_WEIGHTS
    weights.unlink()
    tokenizer = reg.encoder_dir(fp) / "vocab.txt"
    tokenizer.unlink()
    problems = reg.verify()
    assert f"{weights}: missing" in problems
    assert f"{tokenizer}: missing" in problems


def test_verify_reports_a_corrupted_encoder_weight(reg: Registry, fp: str) -> None:
    flip_last_byte(reg.encoder_dir(fp) / "model.safetensors")
    problems = reg.verify()
    assert any("model.safetensors" in p and "checksum" in p for p in problems), problems


def test_verify_reports_an_active_pointer_to_a_missing_head(reg: Registry, fp: str) -> None:
    atomic_write_json(reg.active_path, {"generation": 5, "encoder": fp, "heads": {"intent": 3}})
    problems = reg.verify()
    assert any("intent" in p and "no version 3" in p for p in problems), problems


# ---- crash debris and concurrency ---------------------------------------------------------
def test_staging_debris_is_never_a_version_and_is_removed_by_next_write(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    folder = head_folder(tmp_path)
    reg.publish([(draft("intent", fp), folder)])
    # what a publish killed before its rename leaves: a complete-looking staged version
    debris = reg.root / ".staging" / "0123456789abcdef"
    shutil.copytree(reg.head_dir("intent", 1), debris)
    manifest = json.loads((debris / "manifest.json").read_text())
    (debris / "manifest.json").write_text(json.dumps({**manifest, "version": 2}))
    (debris / "half").write_bytes(b"\0" * 10)
    assert reg.head_versions("intent") == [1]
    assert reg.tasks() == ["intent"]
    assert reg.verify() == []
    _, [m] = reg.publish([(draft("intent", fp), folder)])
    assert m.version == 2
    assert not debris.exists()
    assert list((reg.root / ".staging").iterdir()) == []
    assert reg.verify() == []


def test_process_killed_mid_publish_leaves_only_whole_versions(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    folder = head_folder(tmp_path)
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=publish_forever, args=(str(reg.root), str(folder), fp))
    proc.start()
    deadline = time.monotonic() + 30
    while len(reg.head_versions("intent")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    versions = reg.head_versions("intent")
    assert len(versions) >= 3
    assert versions == list(range(1, len(versions) + 1))
    assert reg.verify() == []  # every visible version is complete and checksummed
    # the lock died with the process; the next writer proceeds and clears the debris
    _, [m] = reg.publish([(draft("intent", fp), folder)])
    assert m.version == len(versions) + 1
    assert list((reg.root / ".staging").iterdir()) == []


def test_two_processes_publishing_one_task_get_versions_1_to_10(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(
            target=publish_worker,
            args=(str(reg.root), str(head_folder(tmp_path, f"h{i}", float(i))), fp, 5, barrier),
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert reg.head_versions("intent") == list(range(1, 11))
    manifests = [reg.head_manifest("intent", v) for v in range(1, 11)]
    assert [m.version for m in manifests] == list(range(1, 11))
    pids = {m.metrics["pid"] for m in manifests}
    assert len(pids) == 2
    for pid in pids:  # each writer's own versions come in its own order
        assert [m.metrics["i"] for m in manifests if m.metrics["pid"] == pid] == list(range(5))
    publishes = [e for e in reg.history() if e.action == "publish"]
    assert len(publishes) == 10
    assert sorted(e.to for e in publishes) == list(range(1, 11))
    assert reg.verify() == []


# ---- malformed files ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"generation": "seven", "encoder": None, "heads": {}}, "generation"),
        ({"generation": 1, "encoder": None, "heads": {"intent": "one"}}, "heads.intent"),
        ({"generation": 1, "heads": {}, "surprise": 1}, "surprise"),
    ],
)
def test_malformed_active_json_names_file_and_field(
    reg: Registry, content: dict, field: str
) -> None:
    reg.active_path.write_text(json.dumps(content))
    with pytest.raises(RegistryError) as info:
        reg.active()
    message = str(info.value)
    assert str(reg.active_path) in message and f"field '{field}'" in message
    with pytest.raises(RegistryError, match="active.json"):
        reg.activate("intent", 1)
    assert json.loads(reg.active_path.read_text()) == content  # not overwritten


def test_active_json_that_is_not_json_names_the_file(reg: Registry) -> None:
    reg.active_path.write_text('{"generation": 1,')
    with pytest.raises(RegistryError, match=r"active\.json"):
        reg.active()


def test_malformed_history_line_names_file_and_line(reg: Registry) -> None:
    append_line(reg.history_path, '{"action": "explode"}')
    with pytest.raises(RegistryError, match=r"history\.jsonl:2:"):
        reg.history()


def test_malformed_head_manifest_names_file_and_field(
    tmp_path: Path, reg: Registry, fp: str
) -> None:
    reg.publish([(draft("intent", fp), head_folder(tmp_path))])
    path = reg.head_dir("intent", 1) / "manifest.json"
    data = json.loads(path.read_text())
    del data["labels"]
    path.write_text(json.dumps(data))
    with pytest.raises(RegistryError) as info:
        reg.head_manifest("intent", 1)
    assert str(path) in str(info.value) and "field 'labels'" in str(info.value)
    assert any("labels" in p for p in reg.verify())


# ---- fileio -------------------------------------------------------------------------------
def test_combined_fingerprint_depends_on_names_and_content_not_order() -> None:
    a = {"x": "1" * 64, "y": "2" * 64}
    assert combined_fingerprint(a) == combined_fingerprint(dict(reversed(a.items())))
    assert combined_fingerprint(a) != combined_fingerprint({"x": "2" * 64, "y": "1" * 64})
    assert combined_fingerprint(a) != combined_fingerprint({"x": "1" * 64, "z": "2" * 64})
    assert len(combined_fingerprint(a)) == 16


def _unreadable(*_args, **_kwargs):
    raise AssertionError("the file was read again")


def test_a_reused_hash_skips_reading_an_unchanged_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fileio, "RACY_SECONDS", -1.0)  # every file settled
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 4096)
    first = sha256_file(path, reuse=True)
    monkeypatch.setattr(fileio, "open", _unreadable, raising=False)
    assert sha256_file(path, reuse=True) == first
    with pytest.raises(AssertionError, match="read again"):
        sha256_file(path)  # without reuse it always reads


def test_a_rewritten_or_recent_file_is_hashed_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fileio, "RACY_SECONDS", -1.0)  # every file settled
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 4096)
    first = sha256_file(path, reuse=True)
    time.sleep(0.05)  # past the kernel clock's tick, so ctime moves
    path.write_bytes(b"b" * 4096)  # same size, same name
    assert sha256_file(path, reuse=True) != first
    monkeypatch.setattr(fileio, "RACY_SECONDS", 60.0)  # now everything is recent
    fresh = tmp_path / "new.bin"
    fresh.write_bytes(b"c")
    sha256_file(fresh, reuse=True)
    monkeypatch.setattr(fileio, "open", _unreadable, raising=False)
    with pytest.raises(AssertionError, match="read again"):
        sha256_file(fresh, reuse=True)


def test_file_checksums_cover_nested_files_with_posix_names(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / "a.txt").write_text("a")
    sums = file_checksums(tmp_path)
    assert list(sums) == ["a.txt", "sub/b.txt"]
    assert sums["a.txt"] == sha256_file(tmp_path / "a.txt")
    assert sums["a.txt"] != sums["sub/b.txt"]


def test_atomic_write_json_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    atomic_write_json(path, {"v": 1, "long": "x" * 1000})
    atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_append_line_adds_exactly_one_newline(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    append_line(path, "one\n")
    append_line(path, "two")
    assert path.read_text() == "one\ntwo\n"


def test_history_line_torn_by_a_killed_writer_is_ignored_then_cut(reg, tmp_path):
    with open(reg.history_path, "a") as fh:
        fh.write('{"time": "2026-01-01T00:00:00Z", "action": "acti')  # killed mid-line
    assert [e.action for e in reg.history()] == ["init"]
    fp = reg.active().encoder
    reg.publish([(draft("intent", fp), head_folder(tmp_path))], activate=True)
    assert [e.action for e in reg.history()] == ["init", "publish", "activate"]
    assert reg.history_path.read_text().count("\n") == 3


def test_publish_refused_by_activation_check_leaves_no_version(reg, tmp_path, tiny_bert):
    base = reg.active().encoder
    folder = head_folder(tmp_path)
    reg.publish([(draft("intent", base), folder)], activate=True)
    reg.init(copy_encoder(tiny_bert, tmp_path / "other", flip=True))  # another encoder active
    history_before = reg.history_path.read_bytes()
    with pytest.raises(FingerprintMismatch):
        reg.publish([(draft("intent", base), folder)], activate=True)
    assert reg.head_versions("intent") == [1]
    assert reg.history_path.read_bytes() == history_before
