#!/usr/bin/env bash
# procbal quick start: a menu, or the choice as the first argument for scripts.
#
#   ./quick-start.sh            # asks: 1) single worker  2) cluster  3) production compose
#   ./quick-start.sh single     # the balancer with exactly one worker (CLUSTER_MODE=false)
#   ./quick-start.sh cluster    # the balancer with MAX_WORKERS workers (default: every CPU)
#   ./quick-start.sh prod       # docker-compose.prod.yml; without a Docker engine it only
#                               # prints the commands it would run
#
# single and cluster build bin/ with Go and run the balancer in the foreground
# (Ctrl-C stops it and its workers). Settings come from the environment, as for
# the balancer itself (README: Settings). For scripts and tests:
#   QUICK_START_SMOKE=1   start, check one request through the balancer and the
#                         admin API's worker count, stop, exit 0 (non-zero on failure)
#   BIN=dir               where the binaries are built (default: bin)
#   PROD_ENV=file         the production env file (default: configs/.env.prod)
set -euo pipefail
cd "$(dirname "$0")"

BIN=${BIN:-bin}
PROD_ENV=${PROD_ENV:-configs/.env.prod}
COMPOSE_FILES=(-f docker-compose.prod.yml)

say() { printf '%s\n' "$*"; }
die() { printf 'quick-start: %s\n' "$*" >&2; exit 1; }

usage() {
	say "usage: $0 [single|cluster|prod]"
	say "  single   the balancer with one worker"
	say "  cluster  the balancer with MAX_WORKERS workers (default: every CPU)"
	say "  prod     the production compose stack (docker-compose.prod.yml)"
}

# menu asks for the choice on the terminal (or standard input) and prints it.
menu() {
	say "procbal quick start" >&2
	say "  1) single worker        the balancer with one worker, on this machine" >&2
	say "  2) cluster              the balancer with MAX_WORKERS workers (default: every CPU)" >&2
	say "  3) production compose   balancer, PostgreSQL and Redis in Docker" >&2
	local answer
	read -r -p "choose 1-3: " answer || die "no choice made"
	case $answer in
	1 | single) echo single ;;
	2 | cluster) echo cluster ;;
	3 | prod) echo prod ;;
	*) die "unknown choice '$answer'" ;;
	esac
}

build() {
	if command -v go >/dev/null; then
		say "building $BIN/balancer and $BIN/worker"
		go build -o "$BIN/" ./balancer ./worker
	elif [[ ! -x $BIN/balancer || ! -x $BIN/worker ]]; then
		die "Go is not installed and $BIN/ holds no balancer: install Go 1.26 (README)"
	fi
}

# local_addr turns a listen address (":3001", "0.0.0.0:3001") into one to dial.
local_addr() {
	local host=${1%:*} port=${1##*:}
	case $host in "" | 0.0.0.0 | "[::]") host=127.0.0.1 ;; esac
	printf '%s %s\n' "$host" "$port"
}

# http_get HOST PORT PATH prints the whole answer (status line, headers, body),
# over bash's /dev/tcp, so neither curl nor wget is needed.
http_get() {
	local auth=""
	[[ -n ${ADMIN_TOKEN:-} ]] && auth="Authorization: Bearer $ADMIN_TOKEN"$'\r\n'
	# shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
	timeout 5 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: %s\r\n%s\r\n" "$3" "$1" "$4" >&3
		cat <&3' _ "$1" "$2" "$3" "$auth"
}

# smoke runs the balancer in the background until a request through it and
# the admin API's report pass, then stops it with SIGTERM and returns its
# exit status.
smoke() {
	local want=$1
	read -r host port < <(local_addr "${LISTEN_ADDR:-:3001}")
	read -r ahost aport < <(local_addr "${ADMIN_ADDR:-127.0.0.1:3002}")
	"$BIN/balancer" &
	local pid=$! answer="" report="" healthy=0
	# shellcheck disable=SC2064 # this pid, now
	trap "kill -TERM $pid 2>/dev/null || true" EXIT
	for _ in $(seq 150); do # 30 s, the default WORKER_START_TIMEOUT
		answer=$(http_get "$host" "$port" /api/health 2>/dev/null || true)
		report=$(http_get "$ahost" "$aport" /admin/workers 2>/dev/null || true)
		healthy=$(grep -c '"state": "healthy"' <<<"$report" || true)
		[[ $answer == "HTTP/1.1 200"* && $healthy == "$want" ]] && break
		kill -0 "$pid" 2>/dev/null || die "the balancer exited before answering"
		sleep 0.2
	done
	[[ $answer == "HTTP/1.1 200"* ]] || die "GET /api/health did not answer 200: ${answer:-no answer}"
	[[ $healthy == "$want" ]] || die "/admin/workers lists $healthy healthy workers, want $want"
	say "GET /api/health: ${answer##*$'\r\n\r\n'}"
	say "GET /admin/workers: $healthy healthy worker(s)"
	trap - EXIT
	kill -TERM "$pid"
	wait "$pid"
}

run_local() {
	local mode=$1 want
	build
	if [[ $mode == single ]]; then
		export CLUSTER_MODE=false
		want=1
	else
		export CLUSTER_MODE=true
		want=${MAX_WORKERS:-$(nproc)}
	fi
	say "$mode: the balancer on ${LISTEN_ADDR:-:3001}, admin API on ${ADMIN_ADDR:-127.0.0.1:3002}, $want worker(s)"
	if [[ -n ${QUICK_START_SMOKE:-} ]]; then
		smoke "$want"
		say "$mode: stopped cleanly"
		return
	fi
	say "try: curl localhost:${LISTEN_ADDR##*:}/api/health   (Ctrl-C stops it)"
	exec "$BIN/balancer"
}

# new_secret prints 32 random hex digits.
new_secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# make_prod_env writes PROD_ENV from the example with fresh secrets.
make_prod_env() {
	umask 077
	sed -e "s/^ADMIN_TOKEN=\$/ADMIN_TOKEN=$(new_secret)/" \
		-e "s/^POSTGRES_PASSWORD=\$/POSTGRES_PASSWORD=$(new_secret)/" \
		-e "s/^REDIS_PASSWORD=\$/REDIS_PASSWORD=$(new_secret)/" \
		configs/.env.prod.example >"$PROD_ENV"
	say "wrote $PROD_ENV with fresh secrets (ADMIN_TOKEN, POSTGRES_PASSWORD, REDIS_PASSWORD)"
}

run_prod() {
	local up=(docker compose "${COMPOSE_FILES[@]}" --env-file "$PROD_ENV" up -d --build --wait)
	if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
		say "no Docker engine here; on a machine with one, run:"
		[[ -f $PROD_ENV ]] || say "  cp configs/.env.prod.example $PROD_ENV   # then fill in the three secrets"
		say "  ${up[*]}"
		say "  docker compose ${COMPOSE_FILES[*]} --env-file $PROD_ENV ps"
		return 0
	fi
	[[ -f $PROD_ENV ]] || make_prod_env
	say "running: ${up[*]}"
	"${up[@]}"
	say "up: http://localhost:3001; admin API on 127.0.0.1:3002 with the ADMIN_TOKEN of $PROD_ENV"
	say "logs: make compose-prod-logs   (docs/DEPLOYMENT.md)"
}

choice=${1:-}
[[ -n $choice ]] || choice=$(menu)
case $choice in
single | cluster) run_local "$choice" ;;
prod) run_prod ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
