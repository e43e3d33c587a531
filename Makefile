# procbal: a process balancer for HTTP backends.
GO        ?= go
BIN       := bin
GOFLAGS   ?=
BENCH_FLAGS ?=

.PHONY: all build run test test-go deps vet bench clean

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/ ./balancer ./worker

# The main job: the balancer with its workers on the defaults (:3001, admin 127.0.0.1:3002).
run: build
	./$(BIN)/balancer

# Every test, with the race detector. Installs what the tests need first.
test: deps build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

deps:
	@./scripts/deps.sh

bench: build
	./scripts/deps.sh bench
	$(GO) run ./bench $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)
