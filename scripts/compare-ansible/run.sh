#!/usr/bin/env bash
# ferry against ansible-core on the same rolling upgrade (a benchmark, not CI).
#
#   scripts/compare-ansible/run.sh N        # N agents on the loopback, e.g. 20 or 100
#
# Installs ansible-core (pinned below) from PyPI into a virtual environment, builds ferry in
# release, starts `ferry agent bench --fleet N`: N agents in this machine's loopback, each with
# a demo service, in clusters of a publisher and 4 subscribers. ferry upgrades them twice
# (`ferry apply --driver agent`, as the plan allows and one step at a time); then, with the same
# agents still running, play.sh upgrades them twice more with ansible-playbook (upgrade.yml: the
# same steps through the same HTTPS API, with 5 forks and with N). Prints orchestration time per
# host-step for both, and the ratio.
set -euo pipefail
n=${1:?usage: run.sh N (agents, e.g. 20 or 100)}
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/scripts/compare-ansible"
ansible_version=${ANSIBLE_CORE_VERSION:-2.19.14}
export VENV=${VENV:-$root/target/compare-ansible/venv}
export COMPARE_OUT="$root/target/compare-ansible/$n"
mkdir -p "$COMPARE_OUT"
rm -f "$COMPARE_OUT"/*.json

if ! "$VENV/bin/ansible-playbook" --version 2>/dev/null | grep -q "core $ansible_version"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "ansible-core==$ansible_version"
fi
(cd "$root" && cargo build --release -p ferry-cli -p ferry-demo-service)

"$root/target/release/ferry" agent bench --fleet "$n" --hand-over "$here/play.sh" >"$COMPARE_OUT/ferry.txt"
cat "$COMPARE_OUT/ferry.txt"

python3 - "$COMPARE_OUT" "$ansible_version" <<'PY'
import glob, json, os, sys
out, version = sys.argv[1:]
ferry = json.load(open(os.path.join(out, "ferry.json")))
runs = sorted((json.load(open(p)) for p in glob.glob(os.path.join(out, "ansible-*.json"))),
              key=lambda r: r["forks"])
par = ferry["upgrades"][0]
ferry_ms = par["seconds"] * 1000 / par["steps"]
print(f"\n{ferry['agents']} agents, {par['steps']} host-steps a run, on {os.cpu_count()} cores")
print(f"  ferry apply (as the plan allows):  {par['seconds']:6.1f} s  {ferry_ms:7.1f} ms per host-step")
one = ferry["upgrades"][1]
print(f"  ferry apply (one step at a time):  {one['seconds']:6.1f} s  "
      f"{one['seconds'] * 1000 / one['steps']:7.1f} ms per host-step")
for r in runs:
    if r["host_steps"] != par["steps"]:
        print(f"  (ansible counted {r['host_steps']} host-steps, ferry's plan {par['steps']})")
    print(f"  ansible-core {version}, forks {r['forks']:>3}:   {r['seconds']:6.1f} s  "
          f"{r['ms_per_host_step']:7.1f} ms per host-step  "
          f"({r['ms_per_host_step'] / ferry_ms:.1f}x ferry's)")
PY
