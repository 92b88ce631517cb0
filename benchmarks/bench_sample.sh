#!/usr/bin/env bash
# The full real sample (36 questions, MCQ) with the embedded default model, all four systems.
# Writes the run folder benchmarks/bench_sample/run/ (committed and resumable: re-run this script
# after an interruption and it asks only what is missing) and then benchmarks/bench_sample.md
# with its plots in benchmarks/bench_sample/plots/.
# From scratch expect about 1.5 hours on 2 idle CPU cores (the 32k prefill of long-context takes
# about 25 minutes, the 1.5B memory build about 5-10, the rest about 9-40 s per question).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${PERSONAMEM_SAMPLE:-/work/shared/data/personamem-v2-sample}"

personamem bench run "$DATA" \
  --systems memory,memory+retrieval,long-context,retrieval,no-history \
  --model local/qwen2.5-0.5b \
  --memory-model local/qwen2.5-1.5b \
  --context 32k \
  --mode mcq \
  --out benchmarks/bench_sample/run

personamem bench report benchmarks/bench_sample/run --out benchmarks/bench_sample
# The report goes below the hand-written notes at the top of bench_sample.md (up to the marker).
notes=""
if grep -q '^<!-- report -->$' benchmarks/bench_sample.md 2>/dev/null; then
  notes="$(sed '/^<!-- report -->$/q' benchmarks/bench_sample.md)"
fi
{ [ -n "$notes" ] && printf '%s\n\n' "$notes"
  sed 's#](plots/#](bench_sample/plots/#g' benchmarks/bench_sample/report.md; } > benchmarks/bench_sample.md.new
mv benchmarks/bench_sample.md.new benchmarks/bench_sample.md
rm benchmarks/bench_sample/report.md
echo "wrote benchmarks/bench_sample.md"
