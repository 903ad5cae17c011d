"""The registry directory: immutable encoder and head artifacts, active pointers, history.

Layout under the root:
    registry.json                  format marker
    encoders/<fingerprint>/        HF encoder files + manifest.json
    heads/<task>/<version>/        head.safetensors + manifest.json
    active.json                    ActiveState (replaced atomically)
    history.jsonl                  append-only HistoryEntry lines
    .lock, .staging/               writer lock and staging area

Writers stage into `.staging`, fsync, then rename into place under a file lock, so a
half-written artifact is never visible and a killed publish leaves only staging debris
that the next writer removes. Readers take no lock: every file they read is replaced
atomically.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel, ValidationError

from mtl_registry.errors import FingerprintMismatch, RegistryError
from mtl_registry.fileio import (
    append_line,
    atomic_write_json,
    combined_fingerprint,
    file_checksums,
    fsync_dir,
    fsync_tree,
)
from mtl_registry.registry.manifests import (
    ActiveState,
    EncoderManifest,
    HeadDraft,
    HeadManifest,
    HistoryEntry,
    Release,
)

FORMAT = 1
MANIFEST = "manifest.json"
HEAD_WEIGHTS = "head.safetensors"
ENCODER_WEIGHTS = "model.safetensors"


def _read_model(path: Path, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RegistryError(f"{path}: missing") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise RegistryError(f"{path}: field '{field}': {first['msg']}") from exc


def _write_model(path: Path, obj: BaseModel) -> None:
    atomic_write_json(path, json.loads(obj.model_dump_json(by_alias=True)))


class Registry:
    """A registry rooted at a directory. Cheap to construct; reads go to disk every time."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ---- layout -------------------------------------------------------------------
    @property
    def encoders_dir(self) -> Path:
        return self.root / "encoders"

    @property
    def heads_dir(self) -> Path:
        return self.root / "heads"

    @property
    def active_path(self) -> Path:
        return self.root / "active.json"

    @property
    def history_path(self) -> Path:
        return self.root / "history.jsonl"

    def exists(self) -> bool:
        return (self.root / "registry.json").is_file()

    def require(self) -> Registry:
        if not self.exists():
            raise RegistryError(f"{self.root}: no registry here; run `mtlreg init` first")
        return self

    @contextmanager
    def _locked(self, timeout: float = 60.0) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"))
        try:
            with lock.acquire(timeout=timeout):
                self._clear_staging()
                yield
        except Timeout as exc:
            raise RegistryError(f"{self.root}: another writer holds the lock") from exc

    def _clear_staging(self) -> None:
        shutil.rmtree(self.root / ".staging", ignore_errors=True)

    def _stage(self) -> Path:
        path = self.root / ".staging" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    # ---- creation -----------------------------------------------------------------
    def init(self, encoder_source: Path, reason: str = "init") -> EncoderManifest:
        """Create the layout and import `encoder_source` as the active encoder (idempotent)."""
        with self._locked():
            if not self.exists():
                for sub in (self.encoders_dir, self.heads_dir):
                    sub.mkdir(parents=True, exist_ok=True)
                atomic_write_json(self.root / "registry.json", {"format": FORMAT})
            manifest = self._import_encoder(encoder_source, parent=None, source=str(encoder_source))
            active = self.active()
            if active.encoder != manifest.fingerprint:
                self._set_active(
                    ActiveState(generation=active.generation + 1, encoder=manifest.fingerprint),
                    HistoryEntry(
                        action="init", from_=active.encoder, to=manifest.fingerprint, reason=reason
                    ),
                )
        return manifest

    def _import_encoder(self, src: Path, parent: str | None, source: str) -> EncoderManifest:
        from mtl_registry.encoder.files import encoder_files  # local: keeps the store torch-free

        files = encoder_files(src)
        staged = self._stage()
        for rel, path in files.items():
            shutil.copy2(path, staged / rel)
        checksums = file_checksums(staged)
        fingerprint = combined_fingerprint(checksums)
        final = self.encoders_dir / fingerprint
        if final.is_dir():
            shutil.rmtree(staged)
            return self.encoder_manifest(fingerprint)
        config = json.loads((staged / "config.json").read_text())
        manifest = EncoderManifest(
            fingerprint=fingerprint,
            parent=parent,
            source=source,
            model_type=config.get("model_type", "unknown"),
            hidden_size=int(config.get("hidden_size") or config.get("dim")),
            files=checksums,
        )
        _write_model(staged / MANIFEST, manifest)
        self._commit(staged, final)
        return manifest

    def _commit(self, staged: Path, final: Path) -> None:
        fsync_tree(staged)
        final.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(final)
        fsync_dir(final.parent)

    def publish(
        self,
        heads: list[tuple[HeadDraft, Path]],
        *,
        encoder_dir: Path | None = None,
        encoder_parent: str | None = None,
        activate: bool = False,
        replace_active: bool = False,
        reason: str = "",
    ) -> tuple[EncoderManifest | None, list[HeadManifest]]:
        """Publish an optional new encoder and head versions together; optionally activate them.

        Each head is (draft, folder holding head.safetensors). A draft without an encoder
        fingerprint belongs to `encoder_dir`. With `replace_active`, the published heads
        become the whole active set (a new encoder leaves no older head servable).
        """
        self.require()
        with self._locked():
            encoder = None
            if encoder_dir is not None:
                encoder = self._import_encoder(encoder_dir, encoder_parent, source="trained")
            fingerprints = []
            for draft, _ in heads:
                fp = draft.encoder_fingerprint or (encoder.fingerprint if encoder else None)
                if fp is None:
                    raise RegistryError(f"head '{draft.task}' names no encoder fingerprint")
                self.encoder_manifest(fp)  # must exist
                fingerprints.append(fp)
            active = self.active()
            target = encoder.fingerprint if encoder else active.encoder
            if activate:  # refuse before anything is published, not after
                kept = {} if replace_active else dict(active.heads)
                for (draft, _), fp in zip(heads, fingerprints):
                    kept.pop(draft.task, None)
                    if fp != target:
                        raise FingerprintMismatch(
                            f"head '{draft.task}' belongs to encoder {fp}, but the encoder to "
                            f"activate is {target}"
                        )
                self._check_consistent(ActiveState(encoder=target, heads=kept))
            published = [
                self._publish_head(d, folder, fp) for (d, folder), fp in zip(heads, fingerprints)
            ]
            for m in published:
                self._append_history(
                    HistoryEntry(
                        action="publish",
                        task=m.task,
                        to=m.version,
                        reason=reason,
                        metrics=m.metrics,
                    )
                )
            heads_map = {} if replace_active else dict(active.heads)
            heads_map.update({m.task: m.version for m in published})
            release = None
            if encoder is not None:
                release = Release(
                    id=max(self.release_ids(), default=0) + 1,
                    encoder=encoder.fingerprint,
                    heads=heads_map,
                    reason=reason,
                )
                _write_model(self.releases_dir / f"{release.id}.json", release)
            if activate:
                new = ActiveState(
                    generation=active.generation + 1,
                    encoder=target,
                    heads=heads_map,
                    release=release.id if release else active.release,
                )
                self._switch(active, new, "release" if release else "activate", reason)
        return encoder, published

    # ---- releases ---------------------------------------------------------------------
    @property
    def releases_dir(self) -> Path:
        return self.root / "releases"

    def release_ids(self) -> list[int]:
        if not self.releases_dir.is_dir():
            return []
        return sorted(int(p.stem) for p in self.releases_dir.glob("*.json") if p.stem.isdigit())

    def release(self, release_id: int) -> Release:
        return _read_model(self.releases_dir / f"{release_id}.json", Release)

    def activate_release(self, release_id: int, reason: str = "") -> ActiveState:
        """Put a recorded release live again (e.g. one a regression gate held back)."""
        self.require()
        with self._locked():
            rel = self.release(release_id)
            active = self.active()
            new = ActiveState(
                generation=active.generation + 1,
                encoder=rel.encoder,
                heads=dict(rel.heads),
                release=rel.id,
            )
            self._switch(active, new, "release", reason)
        return new

    def rollback(self, reason: str = "") -> ActiveState:
        """Return to exactly what was active before the latest release went live."""
        self.require()
        with self._locked():
            active = self.active()
            entry = next((e for e in reversed(self.history()) if e.action == "release"), None)
            if entry is None or not isinstance(entry.from_, dict) or not entry.from_.get("encoder"):
                raise RegistryError(f"{self.root}: no earlier release to roll back to")
            new = ActiveState(**{**entry.from_, "generation": active.generation + 1})
            self._switch(active, new, "rollback", reason)
        return new

    def _publish_head(self, draft: HeadDraft, folder: Path, encoder_fp: str) -> HeadManifest:
        if not (folder / HEAD_WEIGHTS).is_file():
            raise RegistryError(f"{folder}: no {HEAD_WEIGHTS} to publish")
        staged = self._stage()
        for p in folder.iterdir():
            if p.is_file() and p.name != MANIFEST:
                shutil.copy2(p, staged / p.name)
        version = max(self.head_versions(draft.task), default=0) + 1
        manifest = HeadManifest(
            **draft.model_dump(exclude={"encoder_fingerprint"}),
            version=version,
            encoder_fingerprint=encoder_fp,
            files=file_checksums(staged),
        )
        _write_model(staged / MANIFEST, manifest)
        self._commit(staged, self.heads_dir / draft.task / str(version))
        return manifest

    # ---- pointers -------------------------------------------------------------------
    def active(self) -> ActiveState:
        if not self.active_path.is_file():
            return ActiveState()
        return _read_model(self.active_path, ActiveState)

    def _switch(self, active: ActiveState, new: ActiveState, action: str, reason: str) -> None:
        """Replace the whole active state, recording both states in the history."""
        self._check_consistent(new)
        self._set_active(
            new,
            HistoryEntry(
                action=action,  # type: ignore[arg-type]
                from_=active.model_dump(exclude={"generation"}),
                to=new.model_dump(exclude={"generation"}),
                reason=reason,
            ),
        )

    def _set_active(self, state: ActiveState, entry: HistoryEntry) -> None:
        _write_model(self.active_path, state)
        self._append_history(entry)

    def _append_history(self, entry: HistoryEntry) -> None:
        append_line(self.history_path, entry.model_dump_json(by_alias=True))

    def _check_consistent(self, state: ActiveState) -> None:
        for task, version in state.heads.items():
            head = self.head_manifest(task, version)
            if head.encoder_fingerprint != state.encoder:
                raise FingerprintMismatch(
                    f"head {task} v{version} was trained on encoder {head.encoder_fingerprint}, "
                    f"but the active encoder is {state.encoder}"
                )

    def activate(self, task: str, version: int, reason: str = "") -> ActiveState:
        """Point `task` at `version`. Refused when the head belongs to another encoder."""
        self.require()
        with self._locked():
            self.head_manifest(task, version)
            active = self.active()
            new = ActiveState(
                generation=active.generation + 1,
                encoder=active.encoder,
                heads={**active.heads, task: version},
                release=active.release,
            )
            self._check_consistent(new)
            self._set_active(
                new,
                HistoryEntry(
                    action="activate",
                    task=task,
                    from_=active.heads.get(task),
                    to=version,
                    reason=reason,
                    metrics=self.head_manifest(task, version).metrics,
                ),
            )
        return new

    # ---- reads ------------------------------------------------------------------------
    def encoder_dir(self, fingerprint: str) -> Path:
        return self.encoders_dir / fingerprint

    def encoder_manifest(self, fingerprint: str) -> EncoderManifest:
        path = self.encoder_dir(fingerprint) / MANIFEST
        if not path.is_file():
            raise RegistryError(f"{self.root}: no encoder {fingerprint}")
        return _read_model(path, EncoderManifest)

    def encoders(self) -> list[EncoderManifest]:
        if not self.encoders_dir.is_dir():
            return []
        return sorted(
            (self.encoder_manifest(p.name) for p in self.encoders_dir.iterdir() if p.is_dir()),
            key=lambda m: m.created_at,
        )

    def tasks(self) -> list[str]:
        if not self.heads_dir.is_dir():
            return []
        return sorted(p.name for p in self.heads_dir.iterdir() if p.is_dir())

    def head_versions(self, task: str) -> list[int]:
        folder = self.heads_dir / task
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())

    def head_dir(self, task: str, version: int) -> Path:
        return self.heads_dir / task / str(version)

    def head_manifest(self, task: str, version: int) -> HeadManifest:
        path = self.head_dir(task, version) / MANIFEST
        if not path.is_file():
            known = self.head_versions(task)
            raise RegistryError(
                f"{self.root}: task '{task}' has no version {version}"
                + (f" (versions: {', '.join(map(str, known))})" if known else " (no versions)")
            )
        return _read_model(path, HeadManifest)

    def active_head(self, task: str) -> HeadManifest:
        version = self.active().heads.get(task)
        if version is None:
            raise RegistryError(f"task '{task}' has no active version")
        return self.head_manifest(task, version)

    def history(self) -> list[HistoryEntry]:
        if not self.history_path.is_file():
            return []
        text = self.history_path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()  # a line torn by a killed writer; the next append starts a fresh line
        entries = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    entries.append(HistoryEntry.model_validate_json(line))
                except ValidationError as exc:
                    raise RegistryError(
                        f"{self.history_path}:{n}: {exc.errors()[0]['msg']}"
                    ) from exc
        return entries

    # ---- integrity -------------------------------------------------------------------
    def verify_files(
        self, folder: Path, expected: dict[str, str], reuse: bool = False
    ) -> list[str]:
        """Checksum problems of one artifact folder (empty list: intact). `reuse`: trust
        hashes this process computed for unchanged files (loading; see `sha256_file`)."""
        actual = {k: v for k, v in file_checksums(folder, reuse).items() if k != MANIFEST}
        problems = [f"{folder / n}: missing" for n in expected if n not in actual]
        problems += [f"{folder / n}: unexpected file" for n in actual if n not in expected]
        problems += [
            f"{folder / n}: checksum {actual[n][:12]} != manifest {sha[:12]}"
            for n, sha in expected.items()
            if n in actual and actual[n] != sha
        ]
        return problems

    def verify(self) -> list[str]:
        """Recompute every checksum and check every pointer. Returns the problems found."""
        self.require()
        problems: list[str] = []
        for enc_dir in sorted(p for p in self.encoders_dir.iterdir() if p.is_dir()):
            try:
                m = self.encoder_manifest(enc_dir.name)
            except RegistryError as exc:
                problems.append(str(exc))
                continue
            problems += self.verify_files(enc_dir, m.files)
            if combined_fingerprint(m.files) != enc_dir.name:
                problems.append(f"{enc_dir}: fingerprint does not match its files")
        for task in self.tasks():
            for version in self.head_versions(task):
                try:
                    m = self.head_manifest(task, version)
                except RegistryError as exc:
                    problems.append(str(exc))
                    continue
                problems += self.verify_files(self.head_dir(task, version), m.files)
        try:
            active = self.active()
            if active.encoder and not self.encoder_dir(active.encoder).is_dir():
                problems.append(f"active encoder {active.encoder} does not exist")
            self._check_consistent(active)
        except RegistryError as exc:
            problems.append(str(exc))
        return problems
