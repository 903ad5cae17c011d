"""Durable file writes and content hashes, shared by the registry and the data tools."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Hashes this process has already computed, by file, with the stat that identified the file.
_known: dict[Path, tuple[tuple[int, int, int, int], str]] = {}
_known_lock = threading.Lock()
# A file changed this recently may change again without its timestamps moving (they tick
# at the kernel's clock granularity), so its hash is not reused.
RACY_SECONDS = 2.0


def sha256_file(path: Path, reuse: bool = False) -> str:
    """The file's sha256. `reuse`: return this process's earlier hash of the same file while
    its inode, size, mtime and ctime are unchanged, as git's index does: a server swapping
    between exports it has checked does not re-read 100 MB per swap. Any write through the
    filesystem moves ctime, and files written in the last seconds are always re-read."""
    stat = path.stat()
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    resolved = path.resolve()
    if reuse:
        with _known_lock:
            hit = _known.get(resolved)
        if hit is not None and hit[0] == key:
            return hit[1]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    if time.time() - max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9 > RACY_SECONDS:
        with _known_lock:
            _known[resolved] = (key, value)
    return value


def file_checksums(folder: Path, reuse: bool = False) -> dict[str, str]:
    """Relative path -> sha256 for every file under folder (sorted, so the result is stable);
    `reuse`: see `sha256_file`."""
    return {
        p.relative_to(folder).as_posix(): sha256_file(p, reuse)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def combined_fingerprint(checksums: dict[str, str], length: int = 16) -> str:
    """One short hash over (name, checksum) pairs: identical content gives an identical id."""
    digest = hashlib.sha256()
    for name in sorted(checksums):
        digest.update(f"{name}\0{checksums[name]}\n".encode())
    return digest.hexdigest()[:length]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file and folder under `folder`, so a rename after it publishes whole content."""
    for p in sorted(folder.rglob("*"), reverse=True):
        if p.is_file():
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
        else:
            fsync_dir(p)
    fsync_dir(folder)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a temporary sibling, then rename: readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def append_line(path: Path, line: str) -> None:
    """Append one line durably (history files are append-only).

    A torn last line left by a killed writer was never a record: it is cut off first, so
    every line in the file stays whole.
    """
    if path.is_file():
        _cut_torn_tail(path)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line.rstrip("\n") + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _cut_torn_tail(path: Path) -> None:
    with open(path, "rb+") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return
        fh.seek(end - 1)
        if fh.read(1) != b"\n":
            fh.truncate(path.read_bytes().rfind(b"\n") + 1)
