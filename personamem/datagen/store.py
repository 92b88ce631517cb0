"""Per-stage artifacts under ``OUT/work/<stage>/<unit>.json``: written atomically, so a stopped
run leaves only finished units behind and a rerun skips them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


class ResumeError(RuntimeError):
    """The output folder was made with different content settings."""


class Artifacts:
    """A folder of JSON artifacts, one file per finished unit of work."""

    def __init__(self, out: Path) -> None:
        self.root = Path(out) / "work"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, stage: str, unit: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", unit)
        return self.root / stage / f"{safe}.json"

    def has(self, stage: str, unit: str) -> bool:
        return self.path(stage, unit).is_file()

    def load(self, stage: str, unit: str) -> Any:
        return json.loads(self.path(stage, unit).read_text(encoding="utf-8"))

    def save(self, stage: str, unit: str, data: Any) -> None:
        p = self.path(stage, unit)
        write_json(p, data)

    def units(self, stage: str) -> list[str]:
        d = self.root / stage
        return sorted(f.stem for f in d.glob("*.json")) if d.is_dir() else []

    def check_config(self, key: str, config: dict[str, Any]) -> None:
        """Record the content key on first use; refuse a folder made with other settings."""
        p = self.root / "config.json"
        if p.is_file():
            old = json.loads(p.read_text(encoding="utf-8"))
            if old.get("content_key") != key:
                raise ResumeError(
                    f"{self.root.parent} was generated with different settings "
                    f"(model, seed or sizes; see {p}); use a new --out folder or the same settings"
                )
            return
        write_json(p, {"content_key": key, "config": config})


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
