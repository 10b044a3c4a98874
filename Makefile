# Switchyard build and test entry points.
#
#   make test    install what the tests need, then vet and run every test
#   make fuzz    run every fuzz target for FUZZTIME each (docs/fuzzing.md)
#   make build   build the binaries into bin/
#   make demo    run the embedded demo
#   make bench   compare the proxy with nginx, HAProxy and Caddy (docs/benchmarks.md)
#   make bench-go  the hot path's Go benchmarks, with allocs/op

GO ?= go

.PHONY: all build test test-deps vet race alloc fuzz fuzz-smoke demo clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# The README's test command. It installs the tests' system packages when
# they are missing, then vets, runs every test under the race detector,
# runs the allocation tests (which the race detector would skew) once more
# without it, and fuzzes every fuzz target for a few seconds so that none
# of them rots.
test: test-deps vet race alloc fuzz-smoke

test-deps:
	./scripts/install-test-deps.sh

vet:
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

race:
	$(GO) test -race -count=1 -timeout 20m ./...

alloc:
	$(GO) test -count=1 -run 'Alloc' ./...

# Every fuzz target of the module (found by scripts/fuzz.sh, not listed
# here), one after another, FUZZTIME each; the first failure stops the run
# and its input is left in the package's testdata/fuzz/. fuzz-smoke is the
# short run of make test: about 7 s a target, building included.
FUZZTIME ?= 30s
fuzz:
	GO=$(GO) ./scripts/fuzz.sh $(FUZZTIME)

fuzz-smoke:
	GO=$(GO) ./scripts/fuzz.sh 3s

demo:
	$(GO) run ./cmd/switchyard demo

clean:
	rm -rf bin

# The peer benchmark: Switchyard against nginx, HAProxy and Caddy on this
# machine (tools/peerbench, docs/benchmarks.md). It installs nginx-light,
# haproxy, caddy, wrk and h2load when they are missing. "make bench" runs
# the full default (about 40 minutes), prints the report and writes it to bench/results/ as
# <UTC start time>.md and latest.md; it edits no document.
# "make bench-quick" is a one-round smoke run that only prints its report.
# Extra flags go in BENCHFLAGS, e.g. make bench BENCHFLAGS='-rounds 5'.
.PHONY: bench bench-quick bench-deps bench-go

bench: bench-deps
	$(GO) run ./tools/peerbench $(BENCHFLAGS)

bench-quick: bench-deps
	$(GO) run ./tools/peerbench -quick -out - $(BENCHFLAGS)

bench-deps:
	./tools/peerbench/install-deps.sh

# The hot path's Go benchmarks (docs/benchmarks.md, "Hot path"): key
# extraction, table lookup, balancer picks, the access log line, the
# socket calls and whole proxied requests, with allocs/op. They run on one
# CPU with GOMAXPROCS=1, as the proxy does in the peer benchmark.
HOTBENCH = RouteKey|Lookup|Pick|Weighted|AppendEntry|SocketCalls|HandlerInMemory|ProxyRoundTrip
bench-go:
	GOMAXPROCS=1 taskset -c 0 $(GO) test -run '^$$' -bench '$(HOTBENCH)' -benchmem -count 3 \
		./routes ./zones ./proxy ./proxy/accesslog ./proxy/internal/sockio
