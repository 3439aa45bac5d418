#!/usr/bin/env bash
# Builds ferry's Debian package with cargo-deb: the `ferry` binary, its shell completions
# (bash, zsh, fish) and manual pages (generated here by the binary itself, into
# target/deb-assets), the ferry-agent systemd unit and /etc/default/ferry-agent.
#
#   packaging/build-deb.sh                  # release build, then target/debian/ferry_VERSION_ARCH.deb
#   packaging/build-deb.sh --profile dev    # package the debug binary a test build made (CI):
#                                           # no build, a large unoptimised binary, for checks only
#
# Needs cargo-deb (`cargo install cargo-deb --locked`). Prints the path of the package.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = "--profile" ]; then profile=${2:?--profile needs a name}; fi
case $profile in
  dev | debug) profile=dev; dir=debug ;;
  *) dir=$profile ;;
esac

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "cargo-deb is needed: cargo install cargo-deb --locked" >&2
  exit 1
fi

target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ "$profile" = dev ]; then
  # The test build's binary, as it is.
  [ -x "$target/debug/ferry" ] || cargo build --locked -p ferry-cli --bin ferry
else
  cargo build --locked -p ferry-cli --bin ferry --profile "$profile"
fi
ferry=$target/$dir/ferry

# The assets the binary generates: the Cargo.toml of crates/cli names them under target/.
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets/completions" "$assets/man"
"$ferry" completions bash > "$assets/completions/ferry.bash"
"$ferry" completions zsh > "$assets/completions/_ferry"
"$ferry" completions fish > "$assets/completions/ferry.fish"
"$ferry" man --output "$assets/man" > /dev/null

# --no-build: the binary above is packaged as it is. cargo-deb reads the profile's directory
# from --profile; it warns that dev is not meant for releases, which the CI check is not.
# A release binary is packaged as the profile made it (`strip = "debuginfo"`: its symbols stay,
# so a backtrace names functions; cargo-deb's own strip would drop them). The dev binary is
# stripped (its debug information is most of it) and compressed fast.
extra=(--no-strip)
if [ "$profile" = dev ]; then extra=(--strip --fast); fi
out=$(cargo deb -p ferry-cli --no-build --profile "$profile" --locked -q "${extra[@]}")
echo "$out"
