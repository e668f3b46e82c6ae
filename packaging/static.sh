#!/usr/bin/env bash
# Builds health-probe and health-probe-watch linked statically against glibc
# (`-C target-feature=+crt-static`) into target/static/, for copying to
# servers whose glibc is older than this machine's. Usage:
#   packaging/static.sh
# No musl: the musl target cannot be installed on the build machine (one
# rustup toolchain, no downloads), and glibc's static libc.a is enough.
#
# The limit (docs in README "Install"): a static glibc still loads the NSS
# modules named in /etc/nsswitch.conf (libnss_*.so of *its own* glibc
# version) to resolve host names, so names other than numeric addresses may
# fail on a server with another glibc. Checks by IP address, which is what
# keepalived and HAProxy configs use, need no NSS at all.
set -euo pipefail
cd "$(dirname "$0")/.."

host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  *-linux-gnu*) ;;
  *) echo "static.sh: host $host is not a glibc Linux target" >&2; exit 1 ;;
esac
# --target keeps RUSTFLAGS off build scripts and proc macros, which must
# stay dynamic; only the two binaries are static.
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
# Each crate on its own: the probe without the watcher's `async` feature,
# as in the package.
cargo build --release --locked --target "$host" -p health-probe --bin health-probe
cargo build --release --locked --target "$host" -p health-watch --bin health-probe-watch
mkdir -p target/static
for bin in health-probe health-probe-watch; do
  install -m 0755 "target/$host/release/$bin" "target/static/$bin"
done
# Refuse to hand out a binary that still needs a loader or a libc.so.
for bin in target/static/health-probe target/static/health-probe-watch; do
  if readelf -l "$bin" | grep -q 'INTERP' || readelf -d "$bin" | grep -q 'NEEDED'; then
    echo "static.sh: $bin is not static" >&2
    readelf -d "$bin" >&2
    exit 1
  fi
done
ls -l target/static/health-probe target/static/health-probe-watch
