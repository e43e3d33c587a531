# procbal: a process balancer for HTTP backends.
GO        ?= go
BIN       := bin
GOFLAGS   ?=
BENCH_FLAGS ?=
# Images' tag and the binaries' version (-X main.version).
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMPOSE   ?= docker compose
PROD_ENV  ?= configs/.env.prod
PROD_COMPOSE = $(COMPOSE) -f docker-compose.prod.yml --env-file $(PROD_ENV)

.PHONY: all build run test test-deps bench clean docker-build compose-up compose-prod-up compose-prod-logs

all: build

build:
	$(GO) build $(GOFLAGS) -o $(BIN)/ ./balancer ./worker

# The main job: the balancer with its workers on the defaults (:3001, admin 127.0.0.1:3002).
run: build
	./$(BIN)/balancer

# Every test, with the race detector; then the allocation tests, which the
# race detector would disturb, in a plain pass. The proxy's tests wait on
# sockets, not the CPU, so they run 8 at a time even on 2 cores.
test: build test-deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/balancer/proxy$$')
	$(GO) test -race -count=1 -parallel 8 ./balancer/proxy/
	$(GO) test -count=1 -run Allocs ./balancer/proxy/
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

# nginx and HAProxy check the configurations make bench generates, and the
# end-to-end tests run gunicorn (python3-gunicorn) as a real upstream and node
# (nodejs) for the example worker of docs/WORKERS.md and for socket.io (which
# npm installs from balancer/testdata/socketio/package-lock.json), and the data tests start
# a throwaway PostgreSQL and Redis (postgresql, redis-server: worker/store/storetest),
# the dashboard's test drives headless Chromium (chromium, with chromedp), and
# the bench's tests run wrk;
# what is missing is installed from Debian, with one apt-get update, when we are root.
test-deps:
	@missing=""; \
	command -v nginx >/dev/null || missing="$$missing nginx-light"; \
	command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	gunicorn --version >/dev/null 2>&1 || /usr/bin/python3 -m gunicorn --version >/dev/null 2>&1 || \
	  missing="$$missing python3-gunicorn"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	[ -z "$$missing" ] || { \
	  [ "$$(id -u)" = 0 ] || { echo "install$$missing (or run as root)"; exit 1; }; \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

# Measures the balancer against nginx and HAProxy fronting the same workers
# (installs nginx-light, haproxy and wrk from Debian when missing and root).
bench: build
	$(GO) run ./bench -build=false -bin $(BIN) $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)

# Deployment (docs/DEPLOYMENT.md). Both images, tagged and stamped $(VERSION).
docker-build:
	docker build -f Dockerfile.balancer --build-arg VERSION=$(VERSION) -t procbal/balancer:$(VERSION) .
	docker build -f Dockerfile.worker --build-arg VERSION=$(VERSION) -t procbal/worker:$(VERSION) .

# Development: balancer, PostgreSQL and Redis, env from configs/.env.example.
compose-up:
	VERSION=$(VERSION) $(COMPOSE) up --build

# Production, from $(PROD_ENV) (made from configs/.env.prod.example).
compose-prod-up: $(PROD_ENV)
	VERSION=$(VERSION) $(PROD_COMPOSE) up -d --build --wait
	$(PROD_COMPOSE) ps

compose-prod-logs: $(PROD_ENV)
	$(PROD_COMPOSE) logs -f --tail=200

$(PROD_ENV):
	@echo "$(PROD_ENV) is missing: cp configs/.env.prod.example $(PROD_ENV) and fill in ADMIN_TOKEN," \
	  "POSTGRES_PASSWORD and REDIS_PASSWORD (or run ./quick-start.sh prod, which writes it)"; exit 1
