# Two set-up commands: `make demo` and `make test`. Both create/update the virtual environment.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch keeps the environment small; on a GPU machine use e.g.
#   make demo TORCH='torch>=2.3,<2.15'
TORCH ?= torch==2.13.0
ROOT ?= $(CURDIR)/runs
RESULTS ?= $(ROOT)/results/vocab_ablation_demo
REPORT ?= $(RESULTS)/report
export SPLADE_EXP_ROOT := $(ROOT)
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_VERBOSITY ?= error

.PHONY: venv demo test report smoke bench-head bench-encode bench-scifact bench-data bench-identity bench-eval bench-unigram bench-pretrain-memory bench-paper clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test,backbones]"
	touch $@

venv: $(VENV)/.installed

demo: venv  ## the vocab ablation at demo scale, then its frontier plot and table
	$(PY) -m splade_exp +experiment=vocab_ablation_demo -m
	$(PY) -m splade_exp.analysis $(RESULTS) --out $(REPORT)

test: venv  ## the test suite
	$(PY) -m pytest -q

report: venv  ## figures + markdown report for RESULTS=<dir>
	$(PY) -m splade_exp.analysis $(RESULTS) --out $(REPORT)

smoke: venv  ## seconds-long end-to-end run
	$(PY) -m splade_exp +experiment=smoke

bench-head: venv  ## memory/speed of the naive vs chunked SPLADE head, head alone and a training step (writes JSON)
	$(PY) benchmarks/head_memory.py

bench-encode: venv  ## corpus encoding docs/s of splade_tiny: chunked head vs HF materialised logits (writes JSON)
	$(PY) benchmarks/encode_throughput.py

SCIFACT ?= $(CURDIR)/../shared/datasets/scifact
bench-scifact: venv  ## zero-shot + fine-tuned SPLADE and BM25 on SciFact (any BEIR dir: SCIFACT=/path)
	$(PY) benchmarks/scifact.py --data $(SCIFACT)

bench-data: venv  ## reading a large collection and tokenising it once for a sweep (writes JSON)
	$(PY) benchmarks/data_loading.py

bench-identity: venv  ## fingerprinting input files (first, cached), the file:line readers vs text mode (writes JSON)
	$(PY) benchmarks/identity.py

bench-eval: venv  ## evaluation at 100K-1M synthetic documents: in-memory path vs shards on disk (writes JSON)
	$(PY) benchmarks/eval_scale.py

bench-unigram: venv  ## unigram word counts over a generated 1 GB text file: MB/s serial vs parallel (writes JSON)
	$(PY) benchmarks/unigram_count.py

bench-pretrain-memory: venv  ## stage=pretrain on a generated 2 GB text file: peak RSS and step time (writes JSON)
	$(PY) benchmarks/pretrain_memory.py

bench-paper: venv  ## time and peak memory per stage of each paper experiment at its papers' model shapes (writes JSON)
	$(PY) benchmarks/paper_shape.py

clean:
	rm -rf $(ROOT)
