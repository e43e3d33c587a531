#!/usr/bin/env bash
# Scaling benchmark for a machine with neither Go nor wrk (the 16-core device).
#
#   bench/device.sh build OUTDIR          here: static balancer, worker and bench into OUTDIR
#   bench/device.sh run OUTDIR [FLAGS]    there: the scaling benchmark with those binaries
#
# OUTDIR is relative to the repository root; bin/device is ignored by git, so
# carry it to the device. `run` writes docs/PERFORMANCE-16core.md and, when
# $OUT is set, copies it and the full log there. Extra FLAGS go to the bench
# after the defaults, so they win (e.g. -rounds 1 -duration 3s).
set -euo pipefail
cd "$(dirname "$0")/.."

report=docs/PERFORMANCE-16core.md

# x prints a command, then runs it.
x() { printf '+ %s\n' "$*" >&2; "$@"; }

[ $# -ge 2 ] || { echo "usage: $0 build|run OUTDIR [bench flags]" >&2; exit 2; }
cmd=$1 dir=$2
shift 2

case $cmd in
build)
	export CGO_ENABLED=0
	x go build -trimpath -ldflags='-s -w' -o "$dir/" ./balancer ./worker
	x go build -trimpath -ldflags='-s -w' -o "$dir/bench" ./bench
	ls -l "$dir"
	;;
run)
	for b in balancer worker bench; do
		[ -x "$dir/$b" ] || { echo "$dir/$b missing: run '$0 build $dir' first" >&2; exit 1; }
	done
	echo "machine: $(nproc) CPUs; about 4 minutes of rounds" >&2
	# 6 systems × 2 paths × (3 rounds × 5s + 1s warm-up) ≈ 3.2 min, plus start-up.
	flags=(-build=false -bin "$dir" -load go -scale 1,2,4,8,16
		-paths '/api/health,/api/work?n=200' -connections 256 -threads 8
		-rounds 3 -duration 5s -warmup 1s -docs "$report")
	if [ -n "${OUT:-}" ]; then
		mkdir -p "$OUT"
		x "$dir/bench" "${flags[@]}" "$@" 2>&1 | tee "$OUT/bench.log"
		if [ -f "$report" ]; then x cp "$report" "$OUT/"; fi
	else
		x "$dir/bench" "${flags[@]}" "$@"
	fi
	;;
*)
	echo "usage: $0 build|run OUTDIR [bench flags]" >&2
	exit 2
	;;
esac
