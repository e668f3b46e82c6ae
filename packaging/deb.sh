#!/usr/bin/env bash
# Builds the Debian package health-probe into target/debian/. Usage:
#   packaging/deb.sh
# Then: apt install ./target/debian/health-probe_*.deb
#
# The package (health-probe/Cargo.toml, [package.metadata.deb]) ships
# health-probe and health-probe-watch, man pages and bash/zsh/fish
# completions generated from the clap definitions (health-probe-assets),
# the health-probe-watch systemd unit (installed, not enabled),
# /etc/health-probe/watch.toml as a conffile, and the docs. Its postinst
# creates the system user health-probe, owner of /var/lib/health-probe.
#
# Installs cargo-deb if it is missing. If lintian is installed, the package
# must have no lintian errors (the warnings kept are listed in README
# "Install").
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  # A plain, parallel release build of the tool: about a minute instead of
  # its LTO profile's several. Only the tool is built this way.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    cargo install --locked --quiet cargo-deb@3.8.0
fi

# Each binary from its own crate, as `cargo install` would: the probe
# without the watcher's `async` feature (no tokio in the one-shot binary).
cargo build --release --locked -p health-probe --bin health-probe
cargo build --release --locked -p health-watch --bin health-probe-watch
# Man pages and completions from the same clap definitions as --help (a
# debug build: the text is the same, and `cargo test` has built it).
rm -rf target/assets
cargo run --locked --quiet -p health-probe-assets -- --out target/assets >/dev/null

rm -f target/debian/health-probe_*.deb
cargo deb --no-build -p health-probe
deb=$(ls target/debian/health-probe_*.deb)

# cargo-deb writes no md5sums, so `dpkg --verify` and debsums could not
# check the installed files. Add them: unpack, sum, pack again.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --raw-extract "$deb" "$work/pkg"
(cd "$work/pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum) > "$work/pkg/DEBIAN/md5sums"
chmod 0644 "$work/pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$work/pkg" "$deb" >/dev/null

if command -v lintian >/dev/null; then
  # Exit status 0 unless an error (or worse) is found; warnings and
  # information tags are printed for the reader.
  lintian --fail-on error --display-info "$deb"
fi
echo "$deb"
