#!/usr/bin/env bash
# Side by side: two release builds of ferry on the same site files, run alternately as separate
# processes, each figure the median of RUNS runs (default 3): elapsed time, CPU time (user +
# system) and peak resident memory (`/usr/bin/time -v`), and the new build's over the old's.
#
#   scripts/bench-against.sh BASE_BIN NEW_BIN [SITES_DIR]
#
# SITES_DIR (default: a temporary folder) holds the sites; those missing are written by
# `NEW_BIN bench --write-sites SITES_DIR` (the fleet as `ferry bench` builds it, with and
# without the inhibitor examples, and one linux-ha cluster of 500 to 5,000 nodes).
# BASE_SIZES (default "500 1000 2000") are the one-cluster sizes the base build is run on (a
# build whose memory grows with the square of a cluster's nodes cannot run 5,000).
# NEW_PLAN_ARGS (default "--runs 0") are given to the new build's `plan` of a site, so that
# `plan` plans as the base build does, without rehearsing for the plan's odds.
set -euo pipefail
base=${1:?usage: bench-against.sh BASE_BIN NEW_BIN [SITES_DIR]}
new=${2:?usage: bench-against.sh BASE_BIN NEW_BIN [SITES_DIR]}
dir=${3:-$(mktemp -d)}
runs=${RUNS:-3}
base_sizes=${BASE_SIZES:-500 1000 2000}
new_plan_args=${NEW_PLAN_ARGS:---runs 0}
mkdir -p "$dir"
[ -f "$dir/one-5000.toml" ] && [ -f "$dir/fleet-all.toml" ] || "$new" bench --write-sites "$dir"

timed() { # timed BIN ARGS...: "elapsed_s cpu_s peak_mb" of one process
  local tmp; tmp=$(mktemp)
  /usr/bin/time -o "$tmp" -f "%e %U %S %M" "$@" > /dev/null 2>&1 || true
  awk '{ printf "%.3f %.3f %.1f\n", $1, $2 + $3, $4 / 1024 }' "$tmp"
  rm -f "$tmp"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

row() { # row LABEL RUN_BASE(0/1) -- BASE_ARGS... -- NEW_ARGS...
  local label=$1 with_base=$2; shift 3
  local bargs=() nargs=() side=b
  for a in "$@"; do
    if [ "$a" = "--" ] && [ $side = b ]; then side=n; continue; fi
    if [ $side = b ]; then bargs+=("$a"); else nargs+=("$a"); fi
  done
  local fb fn; fb=$(mktemp); fn=$(mktemp)
  for _ in $(seq "$runs"); do
    [ "$with_base" = 1 ] && timed "$base" "${bargs[@]}" >> "$fb"
    timed "$new" "${nargs[@]}" >> "$fn"
  done
  local be bc bm ne nc nm
  ne=$(cut -d' ' -f1 "$fn" | median); nc=$(cut -d' ' -f2 "$fn" | median); nm=$(cut -d' ' -f3 "$fn" | median)
  if [ "$with_base" = 1 ]; then
    be=$(cut -d' ' -f1 "$fb" | median); bc=$(cut -d' ' -f2 "$fb" | median); bm=$(cut -d' ' -f3 "$fb" | median)
    awk -v l="$label" -v be="$be" -v bc="$bc" -v bm="$bm" -v ne="$ne" -v nc="$nc" -v nm="$nm" 'BEGIN {
      printf "| %s | %.2f s | %.2f s | %.2f | %.2f s | %.2f s | %.2f | %.0f MB | %.0f MB | %.2f |\n",
        l, be, ne, (be > 0 ? ne / be : 0), bc, nc, (bc > 0 ? nc / bc : 0), bm, nm, (bm > 0 ? nm / bm : 0) }'
  else
    awk -v l="$label" -v ne="$ne" -v nc="$nc" -v nm="$nm" 'BEGIN {
      printf "| %s | - | %.2f s | | - | %.2f s | | - | %.0f MB | |\n", l, ne, nc, nm }'
  fi
  rm -f "$fb" "$fn"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| command | base elapsed | new elapsed | ratio | base CPU | new CPU | ratio | base peak | new peak | ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
# shellcheck disable=SC2086
row "plan, fleet of 10,000 nodes" 1 -- plan "$dir/fleet-all.toml" -- plan "$dir/fleet-all.toml" $new_plan_args
row "rehearse, fleet of 10,000 nodes" 1 -- rehearse "$dir/fleet-clean.toml" -- rehearse "$dir/fleet-clean.toml"
for n in 500 1000 2000 5000; do
  with=0
  for b in $base_sizes; do [ "$b" = "$n" ] && with=1; done
  for cmd in check plan rehearse; do
    extra=""
    [ $cmd = plan ] && extra=$new_plan_args
    # shellcheck disable=SC2086
    row "$cmd, one cluster of $n" $with -- $cmd "$dir/one-$n.toml" -- $cmd "$dir/one-$n.toml" $extra
  done
done
row "plan example:ucm-standard --compare" 0 -- -- plan example:ucm-standard --compare
# FLEET_ODDS=1: also the new build's `plan` of the fleet as it runs by default (500 rehearsals).
[ "${FLEET_ODDS:-0}" = 1 ] && row "plan, fleet of 10,000 nodes, with its 500 rehearsals" 0 -- -- plan "$dir/fleet-all.toml"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
