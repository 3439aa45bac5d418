#!/usr/bin/env bash
# Installs ferry's Debian package into a clean root and checks that it works there: the
# maintainer scripts run (the `ferry` user, /var/lib/ferry), `ferry --version` and
# `ferry man` answer, the completion files are in place, and the agent starts the way its
# systemd unit starts it (ExecStartPre and ExecStart read from the installed unit, as the
# unit's user) on the loopback, answers `ferry agent status`, and stops on SIGTERM.
#
#   packaging/check-deb.sh target/debian/ferry_0.1.0-1_amd64.deb
#
# Runs as root (chroot). systemd cannot run in a chroot, so the unit's sandbox itself is not
# exercised here; `systemd-analyze verify` checks the unit when systemd-analyze is present.
#
# The root: debootstrap --variant=minbase took 3 min 18 s here (mmdebstrap 3 min 7 s), too
# much for CI, so the root is made from the host's own Debian packages instead: the Essential
# set, adduser and everything they depend on, their files copied and their dpkg records
# written into the root's status file, so that dpkg in the root sees a minimal Debian
# system (a few seconds). Nothing is mounted; the root is removed at the end.
set -euo pipefail

deb=$(realpath "${1:?usage: check-deb.sh PACKAGE.deb}")
[ "$(id -u)" = 0 ] || { echo "check-deb.sh needs root (chroot)" >&2; exit 1; }
command -v dpkg-query >/dev/null || { echo "check-deb.sh needs a Debian host (dpkg)" >&2; exit 1; }

root=$(mktemp -d /tmp/ferry-deb-root.XXXXXX)
chmod 755 "$root" # mktemp made it 0700: the unit's user must enter it
agent_pid=
cleanup() {
  if [ -n "$agent_pid" ]; then kill -TERM "$agent_pid" 2>/dev/null || true; fi
  rm -rf "$root"
}
trap cleanup EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }
in_root() { chroot "$root" "$@"; }

# --- the root: the host's Essential packages and adduser, with what they depend on ---
# One reading of the host's dpkg status: each dependency is the first alternative installed
# here (versions and :any dropped).
packages=$(dpkg-query -W -f='${Package}\t${Essential}\t${db:Status-Abbrev}\t${Pre-Depends}, ${Depends}\n' | awk -F'\t' '
  $3 ~ /^ii/ { installed[$1] = 1; deps[$1] = $4; if ($2 == "yes") want[++n] = $1 }
  END {
    want[++n] = "adduser"
    for (i = 1; i <= n; i++) {
      p = want[i]; if (p in seen) continue; seen[p] = 1; print p
      k = split(deps[p], ds, ",")
      for (j = 1; j <= k; j++) {
        m = split(ds[j], alts, "|")
        for (a = 1; a <= m; a++) {
          name = alts[a]; sub(/\(.*\)/, "", name); sub(/:any/, "", name); gsub(/ /, "", name)
          if (name in installed) { want[++n] = name; break }
        }
      }
    }
  }')
# The merged /usr of current Debian, as on the host.
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/usr/lib64"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done
mkdir -p "$root/etc" "$root/tmp" "$root/dev" "$root/proc" "$root/run" "$root/var/lib/dpkg/info" \
  "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" "$root/var/log" "$root/root"
chmod 1777 "$root/tmp"
for p in $packages; do
  for list in /var/lib/dpkg/info/"$p".list /var/lib/dpkg/info/"$p":*.list; do
    [ -e "$list" ] && cat "$list"
  done
done | while IFS= read -r f; do
  if [ -L "$f" ] || [ -f "$f" ]; then printf '%s\0' "$f"; fi
done | (cd / && xargs -0 cp -a --parents -t "$root" 2>/dev/null) || true
for p in $packages; do
  cp -a /var/lib/dpkg/info/"$p".* /var/lib/dpkg/info/"$p":*.* "$root/var/lib/dpkg/info/" 2>/dev/null || true
done
# Their records in the root's status file (a paragraph each).
awk -v want=" $(echo $packages) " 'BEGIN { RS = ""; ORS = "\n\n" }
  { split($0, l, "\n"); name = substr(l[1], 10) } index(want, " " name " ")' \
  /var/lib/dpkg/status > "$root/var/lib/dpkg/status"
# What base-passwd's and base-files' scripts would have written.
cp /usr/share/base-passwd/passwd.master "$root/etc/passwd"
cp /usr/share/base-passwd/group.master "$root/etc/group"
sed 's/^\([^:]*\):.*/\1:*:19000:0:99999:7:::/' "$root/etc/passwd" > "$root/etc/shadow"
sed 's/^\([^:]*\):.*/\1:*::/' "$root/etc/group" > "$root/etc/gshadow"
chmod 640 "$root/etc/shadow" "$root/etc/gshadow"
# What libpam-runtime's pam-auth-update would have written (adduser calls chfn, through PAM).
cp -a /etc/pam.d/common-* "$root/etc/pam.d/" 2>/dev/null || true
[ -e "$root/etc/nsswitch.conf" ] || printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' > "$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/urandom" c 1 9
echo "-- root of $(echo $packages | wc -w) host packages: $(du -sh "$root" | cut -f1) ($SECONDS s)"

# --- the package ---
cp "$deb" "$root/tmp/ferry.deb"
in_root dpkg -i /tmp/ferry.deb > "$root/tmp/dpkg.log" 2>&1 || { cat "$root/tmp/dpkg.log" >&2; fail "dpkg -i failed"; }
in_root dpkg-query -W -f='${Status}\n' ferry | grep -q 'install ok installed' || fail "ferry is not installed"
echo "-- installed: $(in_root dpkg-query -W -f='${Package} ${Version}' ferry) ($SECONDS s)"

version=$(in_root ferry --version)
echo "-- ferry --version: $version"
in_root ferry man > "$root/tmp/ferry.1" || fail "ferry man failed"
head -n 5 "$root/tmp/ferry.1" | grep -q '^\.TH' || fail "ferry man printed no manual page"
echo "-- ferry man: $(grep -m 1 '^\.TH' "$root/tmp/ferry.1")"
for f in /usr/share/bash-completion/completions/ferry /usr/share/zsh/vendor-completions/_ferry \
  /usr/share/fish/vendor_completions.d/ferry.fish /usr/share/man/man1/ferry.1.gz \
  /usr/share/man/man1/ferry-agent.1.gz /etc/default/ferry-agent; do
  [ -s "$root$f" ] || fail "$f is missing"
done
grep -q '_ferry' "$root/usr/share/bash-completion/completions/ferry" || fail "the bash completion is empty"
uid=$(in_root id -u ferry) || fail "no user ferry"
gid=$(in_root id -g ferry)
[ "$uid" -lt 1000 ] || fail "ferry is not a system user (uid $uid)"
[ "$(stat -c %u "$root/var/lib/ferry")" = "$uid" ] || fail "/var/lib/ferry is not the agent's"
unit=$(find "$root/lib/systemd/system" "$root/usr/lib/systemd/system" -name ferry-agent.service 2>/dev/null | head -n 1)
[ -n "$unit" ] || fail "no ferry-agent.service installed"
[ -L "$root/etc/systemd/system/multi-user.target.wants/ferry-agent.service" ] \
  || echo "-- note: the unit is not enabled in the root (deb-systemd-helper is not installed here)"
if command -v systemd-analyze >/dev/null; then
  # Against the host's systemd (the root has none): only the binary, absent there, may be missing.
  problems=$(systemd-analyze verify --man=no "$unit" 2>&1 | grep -v 'Command /usr/bin/ferry is not executable' || true)
  [ -z "$problems" ] || { echo "$problems" >&2; fail "systemd-analyze verify found problems in the unit"; }
  exposure=$(systemd-analyze security --offline=yes --threshold=25 --no-pager "$unit" 2>&1 | tail -n 1 | tr -cd "[:print:]") \
    || { echo "$exposure" >&2; fail "the unit's sandbox is weaker than expected"; }
  echo "-- systemd-analyze verify: no problem; security: ${exposure#*: }"
fi

# --- the agent, as the unit starts it ---
port=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free port on the loopback"
in_root ferry agent certs --out /etc/ferry/tls --name ci > /dev/null 2>&1
in_root ferry agent keygen --out /etc/ferry/keys > /dev/null 2>&1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$root/etc/ferry/token"
sed -e "s/^name = .*/name = \"ci\"/" -e "s/^listen = .*/listen = \"127.0.0.1:$port\"/" \
  -e 's#tls/node-a#tls/ci#' "$root/usr/share/doc/ferry/examples/agent.toml" > "$root/etc/ferry/agent.toml"
chgrp "$gid" "$root/etc/ferry/token" "$root/etc/ferry/tls/ci-key.pem"
chmod 640 "$root/etc/ferry/token" "$root/etc/ferry/tls/ci-key.pem"

# ExecStartPre= and ExecStart= of the installed unit, run by sh with the unit's
# EnvironmentFile= (sh expands $VAR as systemd does: split into words).
exec_line() { sed -n "s/^$1=//p" "$unit" | head -n 1; }
start_pre=$(exec_line ExecStartPre)
start=$(exec_line ExecStart)
user=$(sed -n 's/^User=//p' "$unit")
[ "$user" = ferry ] || fail "the unit runs as '$user', not ferry"
as_agent() { # COMMAND LINE: run as the unit's user, with its environment file
  exec chroot --userspec="$uid:$gid" --groups="$gid" "$root" /bin/sh -c \
    "set -a; [ -r /etc/default/ferry-agent ] && . /etc/default/ferry-agent; set +a; exec $1"
}
(as_agent "$start_pre") > /dev/null || fail "ExecStartPre failed: $start_pre"
as_agent "$start" > "$root/tmp/agent.log" 2>&1 &
agent_pid=$!
answer=
for _ in $(seq 1 100); do
  if answer=$(in_root ferry agent status --url "127.0.0.1:$port" --ca /etc/ferry/tls/ca.pem \
    --token-file /etc/ferry/token --timeout 5 2>&1); then
    break
  fi
  answer=
  kill -0 "$agent_pid" 2>/dev/null || { cat "$root/tmp/agent.log" >&2; fail "the agent exited"; }
  sleep 0.2
done
[ -n "$answer" ] || { cat "$root/tmp/agent.log" >&2; fail "the agent did not answer on 127.0.0.1:$port"; }
[ "$(ps -o uid= -p "$agent_pid" | tr -d ' ')" = "$uid" ] || fail "the agent does not run as ferry"
echo "-- the agent answers on 127.0.0.1:$port, as ferry (uid $uid): $(echo "$answer" | head -n 1)"
[ -e "$root/var/lib/ferry/agent.sqlite" ] || fail "the agent wrote no journal in /var/lib/ferry"
[ "$(stat -c %u "$root/var/lib/ferry/agent.sqlite")" = "$uid" ] || fail "the journal is not the agent's"
kill -TERM "$agent_pid"
for _ in $(seq 1 50); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$agent_pid" 2>/dev/null; then fail "the agent did not stop on SIGTERM"; fi
agent_pid=
echo "-- the package installs and its agent starts and stops: $SECONDS s"
