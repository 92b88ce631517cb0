"""``memory``: the agentic memory. One memory per history, built once, shared by all its questions.

The memory is the one users get: the same :class:`MemoryAgent` (chunking, strategy, ownership
and forget rules, cap, privacy) that :class:`personamem.store.Memory` runs over a user's stored
messages, with the same :class:`MemoryConfig`; ``tests/test_one_pipeline.py`` checks that both
give byte-identical memories.

Built memories are cached on disk, keyed by (history content, model, prompt version, chunk size,
memory cap, chunk limit, strategy), so another run with the same settings reuses them. A build is
checkpointed after every chunk: an interrupted build resumes at the next chunk. A copy of each
memory is written to ``RUN_DIR/memories/`` for people to read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ...data import ChatHistory, QAItem
from ...memory import ChunkReport, MemoryAgent, MemoryConfig, MemoryState
from ...memory.agent import AGENT_VERSION
from ...models import Model
from ..store import write_json_atomic
from .base import Context, Prepared, System, register


@register
class Memory(System):
    name = "memory"
    sequential = True  # one memory prefix per history: answer its questions back to back
    description = "agentic memory (chunk by chunk, capped) + query"

    @property
    def writer(self) -> Model:
        """The model that writes this system's memories."""
        return self.env.memory_model or self.env.model

    def memory_config(self) -> MemoryConfig:
        """The agent's settings (what ``Memory(..., chunk_tokens=, memory_tokens=, strategy=,
        notes=)`` gives the store)."""
        cfg = self.env.config
        return MemoryConfig(
            chunk_tokens=cfg.chunk_tokens,
            memory_tokens=cfg.memory_tokens,
            strategy=cfg.strategy,
            notes=cfg.notes,
        )

    def agent(self) -> MemoryAgent:
        return MemoryAgent(self.writer, config=self.memory_config())

    def version(self) -> dict[str, Any]:
        cfg = self.env.config
        return {
            "prompt_version": self.agent().prompt_version,
            "agent_version": AGENT_VERSION,
            "chunk_tokens": cfg.chunk_tokens,
            "memory_tokens": cfg.memory_tokens,
            "max_chunks": cfg.max_chunks,
            "strategy": cfg.strategy,
        }

    def cache_path(self, history: ChatHistory) -> Path:
        key = json.dumps(
            {
                "history": history.content_hash,
                "model": self.writer.name,
                **self.version(),
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.env.cache_dir / f"{history.content_hash}-{digest}.json"

    async def prepare(self, history: ChatHistory, link: str) -> Prepared:
        path = self.cache_path(history)
        record: dict[str, Any] | None = None
        if path.is_file():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                record = None
        cached = record is not None
        if record is None:
            record = await self._build(history, link, path)
            write_json_atomic(path, record)
            path.with_name(path.stem + ".partial.json").unlink(missing_ok=True)
        else:
            self.env.progress.note(f"memory: reusing the cached memory of {link} ({path.name})")
        audit = self.env.run_dir / "memories" / f"{history.content_hash}.md"
        audit.parent.mkdir(parents=True, exist_ok=True)
        audit.write_text(f"<!-- {link} -->\n{record['memory']}\n", encoding="utf-8")
        build = {
            "kind": "memory",
            "cached": cached,
            "cache_file": str(path),
            **{
                k: record.get(k)
                for k in (
                    "tokens_in",
                    "tokens_out",
                    "prefill_tokens",
                    "seconds",
                    "chunks",
                    "memory_tokens",
                    "prompt_version",
                    "resumed",
                )
            },
            "warnings": len(record.get("warnings", [])),
        }
        return Prepared(data=record, build=build)

    async def _build(self, history: ChatHistory, link: str, path: Path) -> dict[str, Any]:
        agent = self.agent()
        cfg = self.env.config
        msgs = history.messages
        chunks = agent.chunk(msgs)
        if cfg.max_chunks is not None:
            chunks = chunks[: cfg.max_chunks]
        partial_path = path.with_name(path.stem + ".partial.json")
        partial = _read(partial_path)
        key = f"memory:{history.content_hash}"
        progress = self.env.progress
        progress.start(key, f"memory build {Path(link).name}", len(chunks))
        reports: list[ChunkReport] = []

        def checkpoint(report: ChunkReport, state: MemoryState) -> None:
            reports.append(report)
            write_json_atomic(
                partial_path,
                {"state": state.model_dump(), "reports": [r.model_dump() for r in reports]},
            )
            progress.advance(key, 1, f"memory build {Path(link).name} ({state.tokens} tok)")
            for w in report.warnings:
                progress.note(f"memory chunk {report.chunk}: {w}")

        resumed = bool(partial and partial.get("reports"))
        state = None
        if resumed:
            assert partial is not None
            reports.extend(ChunkReport.model_validate(r) for r in partial["reports"])
            state = MemoryState.model_validate(partial["state"])
            progress.advance(key, len(reports))
            progress.note(f"memory: resuming the build of {link} at chunk {len(reports) + 1}")
        try:
            result = await agent.build(
                msgs,
                max_chunks=cfg.max_chunks,
                state=state,
                done=list(reports),
                on_chunk=checkpoint,
            )
        finally:
            progress.stop(key)
        record = result.model_dump(mode="json")
        record["context"] = result.state.context()
        record["max_chunks"] = cfg.max_chunks
        record["history_hash"] = history.content_hash
        record["resumed"] = resumed
        return record

    async def context(
        self, item: QAItem, history: ChatHistory, prepared: Prepared, mode: str
    ) -> Context:
        rec = prepared.data
        return Context(
            kwargs={"memory": rec["context"]},
            info={"memory_tokens": rec.get("memory_tokens"), "memory_chunks": rec.get("chunks")},
        )


def _read(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
