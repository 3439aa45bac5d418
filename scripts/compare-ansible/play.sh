#!/usr/bin/env bash
# The hand-over program of `ferry agent bench --fleet N --hand-over` (run by run.sh): upgrades
# the live fleet in FLEET_DIR with ansible-playbook, twice (1.2.0 -> 1.3.0 with Ansible's default
# 5 forks, 1.3.0 -> 1.4.0 with one fork per host), timing each run, and writes the figures and
# ferry's into $COMPARE_OUT.
set -euo pipefail
fleet=$1
here=$(cd "$(dirname "$0")" && pwd)
: "${COMPARE_OUT:?set by run.sh}" "${VENV:?set by run.sh}"
cp "$fleet/ferry.json" "$COMPARE_OUT/ferry.json"
hosts=$(python3 -c 'import json,sys; i=json.load(open(sys.argv[1]))["all"]["children"]; print(len(i["publishers"]["hosts"])+len(i["subscribers"]["hosts"]))' "$fleet/inventory.yml")
export PYTHONWARNINGS=ignore ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
step() { # FROM TO FORKS LABEL
    local log="$COMPARE_OUT/ansible-$4.log"
    local t0 t1
    t0=$(date +%s.%N)
    ANSIBLE_FORKS=$3 "$VENV/bin/ansible-playbook" -i "$fleet/inventory.yml" "$here/upgrade.yml" \
        -e "ansible_python_interpreter=$VENV/bin/python" \
        -e "from_version=$1" -e "to_version=$2" -e "run=ansible-$$-$2" >"$log" 2>&1 || {
        tail -40 "$log" >&2
        echo "ansible-playbook failed ($1 -> $2, forks $3): see $log" >&2
        exit 1
    }
    t1=$(date +%s.%N)
    python3 - "$log" "$t0" "$t1" "$3" "$4" "$1" "$2" >"$COMPARE_OUT/ansible-$4.json" <<'PY'
import json, re, sys
log, t0, t1, forks, label, frm, to = sys.argv[1:]
ok = sum(int(m) for m in re.findall(r"\bok=(\d+)", open(log).read()))
# Every task's ok counts one host-step, except reading the package once on the controller.
steps = ok - 1
seconds = float(t1) - float(t0)
print(json.dumps({"label": label, "forks": int(forks), "from": frm, "to": to,
                  "host_steps": steps, "seconds": seconds,
                  "ms_per_host_step": seconds * 1000 / max(steps, 1)}))
PY
}
step 1.2.0 1.3.0 5 forks-5
step 1.3.0 1.4.0 "$hosts" "forks-$hosts"
