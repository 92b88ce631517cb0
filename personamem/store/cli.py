"""``personamem user ...``: the memory store on the command line (a thin layer over ``Memory``).

The store is ``--store`` or ``$PERSONAMEM_STORE`` (default ``sqlite:///personamem.db``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..memory.agent import MemoryUpdateError
from ..models import DEFAULT_MEMORY_MODEL, ModelError, WeightsError
from .api import Memory
from .base import StoreError, UnknownUser
from .results import MemoryBusy, UpdateFailed, VersionInfo

user_app = typer.Typer(
    help="Per-user memories in a durable store: add conversations, read, audit, correct, export.",
    no_args_is_help=True,
)

console = Console(stderr=True)
out = Console()

StoreOpt = Annotated[
    str,
    typer.Option(
        "--store",
        "-s",
        envvar="PERSONAMEM_STORE",
        help="Store URL, e.g. sqlite:///memory.db (env PERSONAMEM_STORE).",
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", envvar="PERSONAMEM_MODEL", help="Model spec (see personamem --help)."
    ),
]
StrategyOpt = Annotated[
    str | None,
    typer.Option(
        envvar="PERSONAMEM_STRATEGY",
        help="Memory update strategy of the agent (select, extract, rewrite, profile; default: the "
        "agent's).",
    ),
]
ChunkOpt = Annotated[int, typer.Option(help="Tokens of new messages per memory update.")]
CapOpt = Annotated[int, typer.Option(help="Token cap of the memory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
UserArg = Annotated[str, typer.Argument(help="The user's id.")]
DEFAULT_STORE = "sqlite:///personamem.db"


def _fail(msg: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(msg)}")
    raise typer.Exit(code)


def _open(
    store: str,
    model: str = DEFAULT_MEMORY_MODEL,
    chunk_tokens: int = 5000,
    memory_tokens: int = 2048,
    strategy: str | None = None,
) -> Memory:
    options = {"strategy": strategy} if strategy else {}
    try:
        return Memory(store, model, chunk_tokens, memory_tokens, **options)
    except (StoreError, ValueError) as e:
        _fail(str(e))


@contextmanager
def _memory(store: str, *args: Any, **kwargs: Any) -> Iterator[Memory]:
    """:func:`_open` for one command: an unknown user is a clear error; always closed."""
    mem = _open(store, *args, **kwargs)
    try:
        yield mem
    except UnknownUser as e:
        _fail(str(e))
    finally:
        mem.close()


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def _read_messages(path: str | None, text: str | None, role: str) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if path is not None:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        try:
            data: Any = json.loads(raw)
        except json.JSONDecodeError:
            try:
                data = [json.loads(line) for line in raw.splitlines() if line.strip()]
            except json.JSONDecodeError as e:
                _fail(f"{path}: not JSON or JSON lines ({e})")
        if isinstance(data, dict):
            data = data.get("chat_history", data.get("messages", [data]))
        if not isinstance(data, list):
            _fail(f"{path}: expected a list of messages")
        msgs += data
    if text is not None:
        msgs.append({"role": role, "content": text})
    if not msgs:
        _fail("give a FILE of messages (JSON, JSON lines or '-' for stdin) or --text")
    return msgs


def _version_line(v: VersionInfo) -> str:
    what = v.note or ""
    if v.source == "update":
        what = f"messages {v.message_ids[0]}-{v.message_ids[-1]}" if v.message_ids else ""
        what += f", {v.chunk_tokens} tok in chunk, {v.tokens_in}/{v.tokens_out} tok in/out, "
        what += f"{v.seconds:.1f}s, {v.model} {v.prompt_version}"
    return f"[bold]v{v.version}[/] {v.source} (from v{v.parent}) {escape(what)}"


def _print_diff(diff: str) -> None:
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            continue
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        out.print(f"[{style}]{escape(line)}[/]")


@user_app.command("add")
def add(
    user_id: UserArg,
    file: Annotated[
        str | None, typer.Argument(help="Messages: JSON list, chat-history JSON, JSON lines, '-'.")
    ] = None,
    text: Annotated[str | None, typer.Option("--text", "-t", help="One message's text.")] = None,
    role: Annotated[str, typer.Option(help="Role of --text.")] = "user",
    flush: Annotated[bool, typer.Option(help="Also read a partial chunk now.")] = False,
    update: Annotated[bool, typer.Option(help="Update the memory (else only store).")] = True,
    store: StoreOpt = DEFAULT_STORE,
    model: ModelOpt = DEFAULT_MEMORY_MODEL,
    chunk_tokens: ChunkOpt = 5000,
    memory_tokens: CapOpt = 2048,
    strategy: StrategyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store messages (ids seen before are skipped) and update the memory."""
    msgs = _read_messages(file, text, role)
    mem = _open(store, model, chunk_tokens, memory_tokens, strategy)
    try:
        res = mem.add(msgs, user_id, update=update)
        versions = list(res.versions)
        if flush and update:
            versions += mem.flush(user_id)
        info = mem.get(user_id)
    except UpdateFailed as e:
        _fail(f"{e} ({len(e.result.stored)} message(s) stored)")
    except (MemoryUpdateError, MemoryBusy, ModelError, WeightsError, ValueError, StoreError) as e:
        _fail(str(e))
    finally:
        mem.close()
    if as_json:
        d = res.model_dump()
        d["versions"] = [v.model_dump() for v in versions]
        d["pending_messages"], d["pending_tokens"] = info.pending_messages, info.pending_tokens
        _print_json(d)
        return
    out.print(
        f"{user_id}: stored {len(res.stored)} message(s), {len(res.duplicates)} duplicate(s), "
        f"{res.redactions} redaction(s); {len(versions)} new version(s); "
        f"now v{info.version}, {info.pending_messages} message(s) "
        f"({info.pending_tokens} tok) pending"
    )


@user_app.command("flush")
def flush_cmd(
    user_id: UserArg,
    store: StoreOpt = DEFAULT_STORE,
    model: ModelOpt = DEFAULT_MEMORY_MODEL,
    chunk_tokens: ChunkOpt = 5000,
    memory_tokens: CapOpt = 2048,
    strategy: StrategyOpt = None,
) -> None:
    """Read every pending message into the memory now."""
    with _memory(store, model, chunk_tokens, memory_tokens, strategy) as mem:
        try:
            versions = mem.flush(user_id)
        except (MemoryUpdateError, MemoryBusy, ModelError, WeightsError) as e:
            _fail(f"{e}; pending messages stay pending")
    for v in versions:
        out.print(_version_line(v))
    if not versions:
        out.print("nothing pending")


@user_app.command("show")
def show(
    user_id: UserArg,
    sources: Annotated[bool, typer.Option("--sources", help="Show each line's messages.")] = False,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Print the user's memory (each line cites the messages behind it)."""
    with _memory(store) as mem:
        info = mem.get(user_id)
        lines = mem.sources(user_id) if sources else []
    if as_json:
        d = info.model_dump()
        if sources:
            d["sources"] = [ls.model_dump() for ls in lines]
        _print_json(d)
        return
    if sources:
        for ls in lines:
            out.print(f"- {escape(ls.text)}")
            for m in ls.sources:
                snippet = " ".join(m.content.split())[:110]
                out.print(f"    [dim]{escape(f'[msg {m.seq}] {m.role}: {snippet}')}[/]")
    else:
        out.print(escape(info.text))
    console.print(
        f"[dim]v{info.version}, {info.tokens} tokens, {info.messages} messages, "
        f"{info.pending_messages} pending ({info.pending_tokens} tok)"
        + (f", forgotten: {'; '.join(info.forgotten)}" if info.forgotten else "")
        + "[/]"
    )


@user_app.command("history")
def history(
    user_id: UserArg,
    diff: Annotated[bool, typer.Option(help="Show the diff of each version.")] = True,
    store: StoreOpt = DEFAULT_STORE,
    as_json: JsonOpt = False,
) -> None:
    """Every version of the memory, what produced it, and what it changed."""
    with _memory(store) as mem:
        versions = mem.history(user_id)
    if as_json:
        _print_json([v.model_dump() for v in versions])
        return
    for v in versions:
        out.print(_version_line(v))
        for w in v.warnings:
            out.print(f"  [yellow]{escape(w)}[/]")
        if diff:
            _print_diff(v.diff)
    if not versions:
        out.print("no versions yet")


@user_app.command("edit")
def edit(
    user_id: UserArg,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="New memory text (else opens $EDITOR).")
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    model: ModelOpt = DEFAULT_MEMORY_MODEL,
) -> None:
    """Correct the memory by hand: one statement per line, citations optional."""
    with _memory(store, model) as mem:
        current = mem.get(user_id)
        if file is not None:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        else:
            edited = typer.edit(current.text + "\n")
            if edited is None:
                out.print("no change")
                return
            text = edited
        if text.strip() == current.text.strip():
            out.print("no change")
            return
        v = mem.edit(user_id, text)
    out.print(_version_line(v))
    _print_diff(v.diff)
    for w in v.warnings:
        console.print(f"[yellow]{escape(w)}[/]")


@user_app.command("forget")
def forget(
    user_id: UserArg,
    what: Annotated[str, typer.Argument(help="What to forget, e.g. 'that I smoke'.")],
    store: StoreOpt = DEFAULT_STORE,
    model: ModelOpt = DEFAULT_MEMORY_MODEL,
    strategy: StrategyOpt = None,
) -> None:
    """Remove something from the memory and keep it out of later updates."""
    with _memory(store, model, strategy=strategy) as mem:
        try:
            v = mem.forget(user_id, what)
        except (MemoryUpdateError, ModelError, WeightsError, ValueError) as e:
            _fail(str(e))
    out.print(_version_line(v) + f", removed {v.report.get('removed', 0)} line(s)")
    _print_diff(v.diff)


@user_app.command("undo")
def undo(
    user_id: UserArg,
    version: Annotated[
        int | None, typer.Option("--version", "-v", help="Restore this version (0 = empty).")
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    model: ModelOpt = DEFAULT_MEMORY_MODEL,
) -> None:
    """Restore the previous version (or --version N) as a new version; nothing is lost."""
    with _memory(store, model) as mem:
        try:
            v = mem.undo(user_id, version)
        except ValueError as e:
            _fail(str(e))
    out.print(_version_line(v))
    _print_diff(v.diff)


@user_app.command("export")
def export(
    user_id: UserArg,
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write here.")] = None,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Everything stored about the user as JSON (memory, versions, messages, redaction log)."""
    with _memory(store) as mem:
        data = mem.export(user_id)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if out_file:
        out_file.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {out_file}")
    else:
        sys.stdout.write(text + "\n")


@user_app.command("delete")
def delete(
    user_id: UserArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Delete everything stored about the user."""
    with _memory(store) as mem:
        mem.get(user_id)
        if not yes and not typer.confirm(f"Delete all data of {user_id}?"):
            raise typer.Exit(1)
        counts = mem.delete_user(user_id)
    out.print(f"deleted {user_id}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@user_app.command("list")
def list_users(store: StoreOpt = DEFAULT_STORE, as_json: JsonOpt = False) -> None:
    """The users in the store."""
    mem = _open(store)
    try:
        rows = [mem.get(u) for u in mem.users()]
    finally:
        mem.close()
    if as_json:
        _print_json(
            [
                {
                    "user_id": r.user_id,
                    "version": r.version,
                    "messages": r.messages,
                    "pending_messages": r.pending_messages,
                }
                for r in rows
            ]
        )
        return
    t = Table("user", "version", "messages", "pending", "tokens")
    for r in rows:
        t.add_row(
            r.user_id, str(r.version), str(r.messages), str(r.pending_messages), str(r.tokens)
        )
    out.print(t)


@user_app.command("answer")
def answer(
    user_id: UserArg,
    query: Annotated[str, typer.Option("--query", "-q", help="The user's request.")],
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="An MCQ option (repeat).")
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    model: ModelOpt = DEFAULT_MEMORY_MODEL,
    as_json: JsonOpt = False,
) -> None:
    """Answer a request from the user's memory."""
    mem = _open(store, model)
    try:
        a = mem.answer(user_id, query, list(option) if option else None)
    except (ModelError, WeightsError, ValueError) as e:
        _fail(str(e))
    finally:
        mem.close()
    if as_json:
        _print_json(a.model_dump())
    elif option:
        out.print(f"{a.letter}. {escape(a.text)}" if a.letter else f"(no answer parsed) {a.text}")
    else:
        out.print(escape(a.text))
