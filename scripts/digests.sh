#!/usr/bin/env bash
# Prints one line per bundled scenario: the `explore` traces digest of seeds 1..20 (every run's
# trace hash folded in seed order). Two builds that print the same lines ran the same events.
# Usage: scripts/digests.sh BINARY [SEEDS]   (scale-1000 scenarios are skipped: too slow)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: scripts/digests.sh BINARY [SEEDS]}
seeds=${2:-1..20}
out=$(mktemp -d /tmp/digests.XXXXXX)
trap 'rm -rf "$out"' EXIT
for f in scenarios/*/*.toml; do
    case "$f" in *scale-1000*|*probes.toml) continue ;; esac
    d=$({ "$bin" explore "$f" --seeds "$seeds" --jobs 2 --keep-going --out "$out" 2>/dev/null || true; } \
        | grep -o 'traces digest [0-9a-f]*' || echo "no digest")
    echo "$f $d"
    rm -rf "${out:?}"/*
done
