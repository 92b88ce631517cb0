#!/usr/bin/env bash
# The full real sample (36 questions, MCQ) with the embedded default model, all four systems.
# Writes runs/bench_sample/ (resumable: re-run this script after an interruption) and then
# benchmarks/bench_sample.md with its plots in benchmarks/bench_sample/plots/.
# Expect on the order of an hour or two on 2 CPU cores (memory build and the 32k prefill dominate).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${PERSONAMEM_SAMPLE:-/work/shared/data/personamem-v2-sample}"

personamem bench run "$DATA" \
  --systems memory,long-context,retrieval,no-history \
  --model local/qwen2.5-0.5b \
  --context 32k \
  --mode mcq \
  --out runs/bench_sample

personamem bench report runs/bench_sample --out benchmarks/bench_sample
mv benchmarks/bench_sample/report.md benchmarks/bench_sample.md
sed -i 's#](plots/#](bench_sample/plots/#g' benchmarks/bench_sample.md
echo "wrote benchmarks/bench_sample.md"
