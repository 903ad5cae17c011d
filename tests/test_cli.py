"""The `mtlreg` command line, run as a real subprocess on a tiny encoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def mtlreg(registry: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MTLREG_REGISTRY": str(registry)}
    proc = subprocess.run(
        [sys.executable, "-m", "mtl_registry", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, manga_data: Path) -> Path:
    reg = tmp_path_factory.mktemp("cli") / "reg"
    mtlreg(reg, "init", "--encoder", str(tiny_bert))
    mtlreg(
        reg,
        "train",
        "--task",
        f"intent={manga_data}",
        "--task",
        f"sentiment={manga_data}",
        "--task",
        f"ner={manga_data}",
        "--epochs",
        "1",
        "--max-steps",
        "4",
        "--batch-size",
        "16",
        "--quiet",
    )
    return reg


def test_predict_json_gives_every_task_with_offsets_and_versions(trained: Path):
    texts = ["is vol 12 of Berserk back in stock?? ordered twice already", "hi"]
    out = json.loads(mtlreg(trained, "predict", "--json", *texts).stdout)
    active = json.loads((trained / "active.json").read_text())
    assert [r["text"] for r in out] == texts
    for r in out:
        assert r["versions"] == {"encoder": active["encoder"], "heads": active["heads"]}
        intent = r["predictions"]["intent"]
        assert isinstance(intent["label"], str) and 0.0 < intent["probability"] <= 1.0
        assert set(r["predictions"]["sentiment"]["scores"]) == {
            "confusion",
            "disappointment",
            "excitement",
            "frustration",
            "satisfaction",
            "urgency",
        }
        for ent in r["predictions"]["ner"]["entities"]:
            assert r["text"][ent["start"] : ent["end"]] == ent["text"] == ent["text"].strip()


def test_read_commands_report_the_registry(trained: Path):
    listing = json.loads(mtlreg(trained, "list", "--json").stdout)
    assert listing["heads"] == {"intent": [1], "ner": [1], "sentiment": [1]}
    assert len(listing["encoders"]) == 2
    shown = json.loads(mtlreg(trained, "show", "sentiment", "--json").stdout)
    assert shown["version"] == 1 and shown["head_type"] == "sentiment"
    history = json.loads(mtlreg(trained, "history", "--json").stdout)
    assert [e["action"] for e in history] == ["init", "publish", "publish", "publish", "release"]
    assert json.loads(mtlreg(trained, "verify", "--json").stdout) == {"ok": True, "problems": []}


def test_evaluate_writes_json_and_markdown_reports(trained: Path, tmp_path: Path):
    report = json.loads(mtlreg(trained, "evaluate", "--json", "--out", str(tmp_path)).stdout)
    assert set(report["tasks"]) == {"intent", "sentiment", "ner"}
    assert report["all_tasks_correct"]["n"] == 40
    assert "confusion_matrix" in report["tasks"]["intent"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| intent |" in markdown and "confusion matrix" in markdown


def test_errors_are_one_line_without_traceback(trained: Path, tmp_path: Path):
    proc = mtlreg(trained, "activate", "intent", "7", ok=False)
    assert "task 'intent' has no version 7 (versions: 1)" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.jsonl").write_text(
        '{"text": "hi", "intent": "greeting_chitchat"}\n{"text": ""}\n'
    )
    (bad / "dev.jsonl").write_text('{"text": "hi", "intent": "greeting_chitchat"}\n')
    proc = mtlreg(trained, "train", "--task", f"intent={bad}", "--quiet", ok=False)
    assert f"{bad / 'train.jsonl'}:2: field 'text'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((trained / "active.json").read_text())["heads"]["intent"] == 1


def test_verify_fails_on_a_corrupted_head(tmp_path: Path, trained: Path):
    import shutil

    copy = tmp_path / "reg"
    shutil.copytree(trained, copy)
    weights = copy / "heads" / "ner" / "1" / "head.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    proc = mtlreg(copy, "verify", ok=False)
    assert "head.safetensors: checksum" in proc.stdout
    proc = mtlreg(copy, "predict", "hello", ok=False)
    assert "head.safetensors: checksum" in proc.stderr
