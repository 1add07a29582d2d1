# proglogctl — build, test and benchmark.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/proglogctl
BENCH    ?= .
BENCHTIME ?= 1s
COUNT    ?= 1

.PHONY: all build run test test-short bench fmt vet clean tools proto chaos soak

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

# The main job: a local 3-node TLS cluster in one process (Ctrl-C stops it).
run: build
	./$(BIN) serve --dev

# Every test, with the race detector (it needs cgo, hence gcc).
test:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Fault tests (root for partitions and disk-full faults; without root those are skipped):
# RUNS runs of DURATION each with a fault every INTERVAL, per-run verdicts and a summary table.
RUNS     ?= 12
DURATION ?= 60s
INTERVAL ?= 10s
SEED     ?= 0
FAULTS   ?=
chaos:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 90m -run '^TestChaos$$' -v . \
		-chaos.runs $(RUNS) -chaos.duration $(DURATION) -chaos.interval $(INTERVAL) -chaos.seed $(SEED) -chaos.faults '$(FAULTS)'

# The workload under a fault every 30 s for DURATION (default 10m), sampling RSS, open files and disk.
soak:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 3h -run '^TestChaosSoak$$' -v . \
		-chaos.soak $(if $(filter command line environment,$(origin DURATION)),$(DURATION),10m) -chaos.seed $(SEED) -chaos.faults '$(FAULTS)'

bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(COUNT) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin

# Code generators, at the versions pinned by the tool directives in go.mod, into bin/.
tools:
	GOBIN=$(CURDIR)/bin $(GO) install tool

# Regenerate api/v1 from log.proto (needs protoc: apt-get install protobuf-compiler).
# The generated files are committed, so building and testing need no protoc.
proto: tools
	PATH=$(CURDIR)/bin:$$PATH protoc -I . --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative api/v1/log.proto
