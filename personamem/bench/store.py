"""A run folder: ``run.json`` (the settings), ``results.jsonl`` and ``builds.jsonl`` (append-only),
``judge_validation.json`` (open mode: each judge's validation, by judge key).

Every row is written, flushed and fsynced as soon as it exists, so a killed run loses at most the
questions in flight. A torn last line (a kill in the middle of a write) is cut off on the next
open. Rows are never rewritten: a later row with the same key supersedes an earlier one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .config import RunConfig

RESULTS = "results.jsonl"
BUILDS = "builds.jsonl"
MANIFEST = "run.json"
JUDGE_VALIDATION = "judge_validation.json"
FORMAT = 1


class RunDirError(ValueError):
    """The run folder cannot be used as asked (other settings, unreadable manifest)."""


def row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["qid"], row["system"], row["mode"])


def _repair(path: Path) -> None:
    """Cut a torn last line (no trailing newline) left by a crash mid-write."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        cut = data.rfind(b"\n") + 1
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; unreadable lines (a torn write) are skipped."""
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                rows.append(obj)
    return rows


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunStore:
    """Reads and appends to one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def results_path(self) -> Path:
        return self.root / RESULTS

    @property
    def builds_path(self) -> Path:
        return self.root / BUILDS

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    # --- manifest --------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.is_file():
            return None
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise RunDirError(f"{self.manifest_path}: not valid JSON ({e})") from e
        if not isinstance(data, dict) or "config" not in data:
            raise RunDirError(f"{self.manifest_path}: not a benchmark run manifest")
        return data

    def open(self, config: RunConfig, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create the folder or check that it can be resumed with ``config``; returns the manifest.

        Settings that change answers (see :data:`FINGERPRINT`) must match; systems and modes are
        merged, so a later call can add a system to an existing run.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        old = self.read_manifest()
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        if old is not None:
            prev = RunConfig.model_validate(old["config"])
            diff = {
                k: (v, config.fingerprint()[k])
                for k, v in prev.fingerprint().items()
                if v != config.fingerprint()[k]
            }
            if diff:
                what = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, (a, b) in diff.items())
                raise RunDirError(
                    f"{self.root} holds a run with other settings ({what}); "
                    "use another --out folder, or the run's settings to resume it"
                )
            merged = config.model_copy(
                update={
                    "systems": list(dict.fromkeys(prev.systems + config.systems)),
                    "modes": list(dict.fromkeys(prev.modes + config.modes)),
                }
            )
            manifest = {
                **old,
                "config": merged.model_dump(),
                "updated": now,
                "resumes": old.get("resumes", 0) + 1,
            }
        else:
            manifest = {
                "format": FORMAT,
                "config": config.model_dump(),
                "created": now,
                "updated": now,
                "resumes": 0,
            }
        if extra:
            manifest.update(extra)
        write_json_atomic(self.manifest_path, manifest)
        _repair(self.results_path)
        _repair(self.builds_path)
        return manifest

    def update_manifest(self, **fields: Any) -> None:
        data = self.read_manifest() or {}
        data.update(fields)
        write_json_atomic(self.manifest_path, data)

    # --- judge validation ------------------------------------------------------------------
    @property
    def validation_path(self) -> Path:
        return self.root / JUDGE_VALIDATION

    def judge_validations(self) -> dict[str, dict[str, Any]]:
        """Recorded judge validations by judge key (empty when none or unreadable)."""
        if not self.validation_path.is_file():
            return {}
        try:
            data = json.loads(self.validation_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def record_judge_validation(self, key: str, validation: dict[str, Any]) -> None:
        data = self.judge_validations()
        data[key] = validation
        write_json_atomic(self.validation_path, data)

    # --- rows ------------------------------------------------------------------------------
    def _append(self, path: Path, row: dict[str, Any]) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def append_result(self, row: dict[str, Any]) -> None:
        self._append(self.results_path, row)

    def append_build(self, row: dict[str, Any]) -> None:
        self._append(self.builds_path, row)

    def results(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The latest row per (question id, system, mode)."""
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in read_jsonl(self.results_path):
            if {"qid", "system", "mode"} <= row.keys():
                latest[row_key(row)] = row
        return latest

    def builds(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """One build record per (system, history hash, kind of build: a memory, embeddings, the
        no-context baselines): the latest that really built (a resumed run reloads its own
        memory from the cache), else the latest."""
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in read_jsonl(self.builds_path):
            if {"system", "history_hash"} <= row.keys():
                key = (row["system"], row["history_hash"], str(row.get("kind", "")))
                if row.get("cached") and key in latest and not latest[key].get("cached"):
                    continue
                latest[key] = row
        return latest
