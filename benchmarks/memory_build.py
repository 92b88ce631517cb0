"""Measure building the memory of the real sample persona with the default model.

Writes a Markdown table: seconds per chunk, prefill and generation tokens/s, total tokens
processed versus the history's length, final memory size, and answer-time input tokens with the
memory versus with the full history.

    python benchmarks/memory_build.py [--data DIR] [--model local/qwen2.5-1.5b] \
        [--strategy select] [--no-notes] [--out benchmarks/memory_build.md]
    python benchmarks/memory_build.py --result ~/.cache/personamem/memories/<hash>.json ...

``--result`` reports a build that already ran (a ``bench run`` memory cache file) instead of
building again.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from pathlib import Path

from personamem.answer import Answerer
from personamem.data import load_release
from personamem.memory import BuildResult, MemoryAgent, prompts
from personamem.models import DEFAULT_MEMORY_MODEL, get_model


def rate(tokens: float, seconds: float) -> str:
    return f"{tokens / seconds:.0f}" if seconds > 0 and tokens > 0 else "–"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data", default=str(Path(__file__).parents[1] / "../shared/data/personamem-v2-sample")
    )
    ap.add_argument("--model", default=DEFAULT_MEMORY_MODEL)
    ap.add_argument("--no-notes", dest="notes", action="store_false", help="select: verbatim")
    ap.add_argument("--strategy", default="select", choices=["select", "extract", "rewrite"])
    ap.add_argument("--chunk-tokens", type=int, default=5000)
    ap.add_argument("--memory-tokens", type=int, default=2048)
    ap.add_argument("--out", default=None, help="Markdown file to write (default: print)")
    ap.add_argument("--result", default=None, help="a saved BuildResult JSON to report")
    ap.add_argument(
        "--conditions",
        default="llama.cpp on both cores, nothing else running.",
        help="with --result: how the machine was used while it built (goes in the report)",
    )
    args = ap.parse_args()

    rel = load_release(args.data)
    link = rel.history_paths("32k")[0]
    history = rel.history(link)
    questions = [q for q in rel.items if q.history_32k == link]
    model = get_model(args.model)
    agent = MemoryAgent(
        model, args.chunk_tokens, args.memory_tokens, strategy=args.strategy, notes=args.notes
    )
    if args.result:
        result = BuildResult.model_validate_json(Path(args.result).read_text(encoding="utf-8"))
        wall = result.seconds
    else:
        t0 = time.perf_counter()
        result = await agent.build(history.messages)
        wall = time.perf_counter() - t0
    history_prompt_tokens = model.count_message_tokens(history.messages)

    mem_in, hist_in = [], []
    for q in questions:
        opts = [q.correct_answer, *q.incorrect_answers]
        mem_in.append(
            model.count_message_tokens(
                Answerer.messages(q.query, options=opts, memory=result.memory)
            )
        )
        hist_in.append(
            model.count_message_tokens(
                Answerer.messages(q.query, options=opts, history=history.messages)
            )
        )

    lines = [
        f"# Memory build on the real sample persona ({args.strategy} strategy)",
        "",
        "Command: `python benchmarks/memory_build.py"
        + (f" --strategy {args.strategy}" if args.strategy != "select" else "")
        + (f" --model {args.model}" if args.model != DEFAULT_MEMORY_MODEL else "")
        + ("" if args.notes else " --no-notes")
        + (" --result CACHE_FILE" if args.result else "")
        + "`",
        "",
        *(
            [
                "The build was measured inside `bench run` (its cached memory file is reported "
                f"here: `{Path(args.result).name}`); {args.conditions}",
                "",
            ]
            if args.result
            else []
        ),
        f"Model `{args.model}`, chunks of {args.chunk_tokens} tokens, memory cap "
        f"{args.memory_tokens} tokens, history `{link}` ({len(history.messages)} messages). "
        f"Machine: {platform.machine()}, 2 cores, one run (the machine is shared and noisy: "
        "read ratios, not absolute seconds).",
        "",
        "| chunk | chunk tokens | seconds | prompt tokens (evaluated) | prefill tok/s | generated tokens | generation tok/s | lines +/- | memory tokens |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result.reports:
        lines.append(
            f"| {r.chunk} | {r.chunk_tokens} | {r.seconds:.1f} | {r.tokens_in} ({r.prefill_tokens}) "
            f"| {rate(r.prefill_tokens, r.prefill_seconds)} | {r.tokens_out} "
            f"| {rate(r.tokens_out, r.decode_seconds)} | +{r.added}/-{r.removed} | {r.memory_tokens} |"
        )
    pre_s = sum(r.prefill_seconds for r in result.reports)
    dec_s = sum(r.decode_seconds for r in result.reports)
    lines += [
        "",
        "| measure | value |",
        "|---|---:|",
        f"| history length (rendered chunks, tokens) | {result.history_tokens:,} |",
        f"| chunks | {result.chunks} |",
        f"| wall seconds to build | {wall:.0f} |",
        f"| seconds per chunk (mean) | {statistics.mean(r.seconds for r in result.reports):.1f} |",
        f"| tokens sent to the model (prompt) | {result.tokens_in:,} |",
        f"| of which evaluated (after KV prefix reuse) | {result.prefill_tokens:,} |",
        f"| tokens generated | {result.tokens_out:,} |",
        f"| prefill tok/s (overall) | {rate(result.prefill_tokens, pre_s)} |",
        f"| generation tok/s (overall) | {rate(result.tokens_out, dec_s)} |",
        f"| tokens processed / history length | {(result.tokens_in + result.tokens_out) / result.history_tokens:.2f} |",
        f"| final memory | {result.memory_tokens} tokens, {len(result.state.lines)} lines |",
        f"| lines written by the model (the rest: the user's words) | "
        f"{sum(ln.evidence is not None for ln in result.state.lines)} |",
        f"| of which what the user asked about | "
        f"{sum(ln.text.startswith(prompts.ASKED) for ln in result.state.lines)} |",
        f"| answer-time input tokens, memory (mean over {len(questions)} questions) | {statistics.mean(mem_in):,.0f} |",
        f"| answer-time input tokens, full history (mean) | {statistics.mean(hist_in):,.0f} |",
        f"| ratio history / memory | {statistics.mean(hist_in) / statistics.mean(mem_in):.1f}x |",
        f"| full history as a chat prompt (tokens) | {history_prompt_tokens:,} |",
        "",
        f"Warnings: {len(result.warnings)}" + "".join(f"\n- {w}" for w in result.warnings[:20]),
        "",
        "## The memory",
        "",
        "```",
        result.memory,
        "```",
        "",
    ]
    text = "\n".join(lines)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    asyncio.run(main())
