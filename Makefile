# proglogctl — build, test and benchmark.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/proglogctl
BENCH    ?= .
BENCHTIME ?= 1s
COUNT    ?= 1

.PHONY: all build run test test-short bench fmt vet clean tools proto image compose-up compose-down chaos soak install uninstall release

# Containers: the image, and the 3-node cluster of compose.yaml.
IMAGE    ?= proglogctl:dev
# docker compose v2, else the standalone docker-compose.
COMPOSE  ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
COMPOSE_PROJECT ?= proglog
# Where compose-up puts what the host's client commands need (.gitignored).
COMPOSE_CLIENT := .compose

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
SERVE    ?=
chaos:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 90m -run '^TestChaos$$' -v . \
		-chaos.runs $(RUNS) -chaos.duration $(DURATION) -chaos.interval $(INTERVAL) -chaos.seed $(SEED) -chaos.faults '$(FAULTS)' \
		-chaos.serve '$(SERVE)'

# The workload under a fault every 30 s for DURATION (default 10m), sampling RSS, open files and disk.
soak:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 3h -run '^TestChaosSoak$$' -v . \
		-chaos.soak $(if $(filter command line environment,$(origin DURATION)),$(DURATION),10m) -chaos.seed $(SEED) -chaos.faults '$(FAULTS)'

# The Go benchmarks, then the load command's standard scenarios (medians of
# BENCH_RUNS runs, each beside the in-memory floor) into BENCH_MD.
BENCH_RUNS ?= 5
BENCH_MD   ?= docs/BENCH.md
bench: build
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -count $(COUNT) ./...
	./$(BIN) bench --scenarios standard --runs $(BENCH_RUNS) --markdown $(BENCH_MD)

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin dist

# Install the binary on PATH: $(DESTDIR)$(PREFIX)/bin/proglogctl. DESTDIR
# stages the install in another root (packaging); docs/proglogctl.service is
# the systemd unit to go with it.
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
install: build
	install -d '$(DESTDIR)$(BINDIR)'
	install -m 0755 $(BIN) '$(DESTDIR)$(BINDIR)/proglogctl'

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/proglogctl'

# Static binaries for every RELEASE_PLATFORMS entry in dist/, named
# proglogctl-VERSION-OS-ARCH, with SHA256SUMS; --version reports VERSION.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
release:
	rm -rf dist
	mkdir -p dist
	for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/proglogctl-$(VERSION)-$$os-$$arch . || exit 1; \
	done
	cd dist && sha256sum proglogctl-* > SHA256SUMS
	@cat dist/SHA256SUMS

# The FROM scratch image around the static binary, tagged $(IMAGE) and with
# the version.
image: build
	mkdir -p bin/.emptydir
	docker build -t $(IMAGE) -t proglogctl:$(VERSION) .

# Start the 3-node cluster and copy the CA and root's client certificate out,
# with an env file that points client commands at it: `. $(COMPOSE_CLIENT)/env`.
compose-up: image
	PROGLOG_IMAGE=$(IMAGE) $(COMPOSE) -p $(COMPOSE_PROJECT) -f compose.yaml up -d
	mkdir -p $(COMPOSE_CLIENT)
	for f in ca.pem root.pem root-key.pem; do \
		docker cp "$$($(COMPOSE) -p $(COMPOSE_PROJECT) -f compose.yaml ps -q node1):/etc/proglog/$$f" $(COMPOSE_CLIENT)/$$f || exit 1; \
	done
	{ echo "export PROGLOG_ADDR=proglog://127.0.0.1:$${PROGLOG_NODE1_PORT:-18400},127.0.0.1:$${PROGLOG_NODE2_PORT:-18410},127.0.0.1:$${PROGLOG_NODE3_PORT:-18420}"; \
	  echo "export PROGLOG_CONNECT_TO=node1:8400=127.0.0.1:$${PROGLOG_NODE1_PORT:-18400},node2:8400=127.0.0.1:$${PROGLOG_NODE2_PORT:-18410},node3:8400=127.0.0.1:$${PROGLOG_NODE3_PORT:-18420}"; \
	  echo "export PROGLOG_CA_FILE=$(CURDIR)/$(COMPOSE_CLIENT)/ca.pem"; \
	  echo "export PROGLOG_CERT_FILE=$(CURDIR)/$(COMPOSE_CLIENT)/root.pem"; \
	  echo "export PROGLOG_KEY_FILE=$(CURDIR)/$(COMPOSE_CLIENT)/root-key.pem"; } > $(COMPOSE_CLIENT)/env
	@echo "cluster up; for client commands on this host: . $(COMPOSE_CLIENT)/env"

# Stop the cluster and delete its volumes (data, certificates and ACL).
compose-down:
	PROGLOG_IMAGE=$(IMAGE) $(COMPOSE) -p $(COMPOSE_PROJECT) -f compose.yaml down -v
	rm -rf $(COMPOSE_CLIENT)

# Code generators, at the versions pinned by the tool directives in go.mod, into bin/.
tools:
	GOBIN=$(CURDIR)/bin $(GO) install tool

# Regenerate api/v1 from log.proto (needs protoc: apt-get install protobuf-compiler).
# The generated files are committed, so building and testing need no protoc.
proto: tools
	PATH=$(CURDIR)/bin:$$PATH protoc -I . --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative api/v1/log.proto
