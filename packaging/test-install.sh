#!/usr/bin/env bash
# Installs what packaging/ builds, the ways README "Install" shows, and
# checks each on this machine. Needs root; .ci/run runs it after
# packaging/deb.sh and packaging/static.sh. It changes the system (installs
# and purges the health-probe package), so it is not part of `cargo test`.
#
#  1. The .deb with `dpkg -i`: binaries, version, man pages, bash
#     completion, the unit (systemd-analyze verify; not enabled), the
#     conffile, the system user and /var/lib/health-probe, `dpkg --verify`,
#     a real check against a loopback service, the installed watcher's
#     config check as its user, and keepalived -t on docs/KEEPALIVED.md's
#     configs calling /usr/bin/health-probe. Then `dpkg --purge` leaves no
#     file and no user behind.
#  2. README's `apt install ./target/debian/health-probe_*.deb`, then purge.
#  3. README's `cargo install` line, into a scratch root.
#  4. The static binaries (packaging/static.sh's): no dynamic dependencies,
#     every check kind in an empty chroot.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-install: FAIL: $*" >&2; exit 1; }
step() { echo "test-install: $*"; }

[ "$(id -u)" = 0 ] || fail "needs root"
deb=$(ls target/debian/health-probe_*.deb 2>/dev/null) || fail "no package: run packaging/deb.sh"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
scratch=$(mktemp -d)
service=""
cleanup() {
  [ -n "$service" ] && kill "$service" 2>/dev/null || true
  rm -rf "$scratch"
  # A failed step leaves nothing installed behind.
  if dpkg-query -W health-probe >/dev/null 2>&1; then
    dpkg --purge health-probe >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# The README's install commands, so that what it shows is what is tested.
readme_line() {
  local line
  line=$(grep -E "^(sudo )?$1" README.md | head -1) || fail "README shows no '$1' command"
  echo "${line#sudo }"
}
apt_line=$(readme_line 'apt install ./target/debian/')
cargo_line=$(readme_line 'cargo install --locked --path health-probe')
readme_line 'packaging/static.sh' >/dev/null
readme_line 'packaging/deb.sh' >/dev/null

# Every file outside the caches, logs and package databases, as paths.
snapshot() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/tmp -o -path /var/cache -o -path /var/log -o -path /var/lib/dpkg \
    -o -path /var/lib/apt -o -path /work -o -path /root -o -path /home -o -path "$PWD" \) \
    -prune -o -print | sort
}

if dpkg-query -W health-probe >/dev/null 2>&1; then
  fail "health-probe is already installed; purge it first"
fi
getent passwd health-probe >/dev/null && fail "user health-probe exists before install"
# The package's dependencies (adduser) must be there for dpkg -i.
command -v adduser >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adduser
snapshot > "$scratch/before"

step "dpkg -i $deb"
dpkg -i "$deb"
[ "$(/usr/bin/health-probe --version)" = "health-probe $version" ] ||
  fail "health-probe --version: $(/usr/bin/health-probe --version)"
/usr/bin/health-probe-watch --version >/dev/null || fail "health-probe-watch --version"
for page in health-probe health-probe-tcp health-probe-ping health-probe-watch \
            health-probe-report health-probe-silence health-probe-connections; do
  path=$(man -w "$page") || fail "man -w $page"
  [[ "$path" == /usr/share/man/man1/$page.1.gz ]] || fail "man -w $page: $path"
done
# bash completion loads, and completes the subcommands.
out=$(bash -c 'source /usr/share/bash-completion/completions/health-probe && complete -p health-probe')
[[ "$out" == *"health-probe"* ]] || fail "complete -p health-probe: $out"
[ -s /usr/share/zsh/vendor-completions/_health-probe ] || fail "zsh completion"
[ -s /usr/share/fish/vendor_completions.d/health-probe.fish ] || fail "fish completion"
# The unit: installed where systemd looks, valid, not enabled.
unit=$(dpkg -L health-probe | grep '/systemd/system/health-probe-watch.service$') || fail "no unit"
out=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
[ -z "$out" ] || fail "systemd-analyze verify $unit complained: $out"
if ls /etc/systemd/system/*.wants/health-probe-watch.service >/dev/null 2>&1; then
  fail "health-probe-watch.service was enabled by the install"
fi
# The example config is a conffile, and valid.
dpkg-query -W -f='${Conffiles}\n' health-probe | grep -q '^ /etc/health-probe/watch.toml ' ||
  fail "/etc/health-probe/watch.toml is not a conffile"
# The user and its history folder.
getent passwd health-probe >/dev/null || fail "no user health-probe"
[ "$(stat -c '%U:%G %a' /var/lib/health-probe)" = "health-probe:health-probe 750" ] ||
  fail "/var/lib/health-probe: $(stat -c '%U:%G %a' /var/lib/health-probe)"
runuser -u health-probe -- /usr/bin/health-probe watch --check-config /etc/health-probe/watch.toml ||
  fail "the packaged config, checked as the unit's user"
# Every installed file is as packaged (md5sums).
dpkg --verify health-probe || fail "dpkg --verify"

step "the installed probe against a loopback service"
cargo build --quiet -p health-examples --example landmark_service
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/examples/landmark_service --listen 127.0.0.1:0 --health "127.0.0.1:$port" >/dev/null 2>&1 &
service=$!
for _ in $(seq 50); do
  /usr/bin/health-probe "127.0.0.1:$port" --expect ok >/dev/null 2>&1 && break
  sleep 0.1
done
out=$(/usr/bin/health-probe "127.0.0.1:$port" --expect ok) || fail "probe: $out"
kill "$service"; wait "$service" 2>/dev/null || true; service=""
if out=$(/usr/bin/health-probe "127.0.0.1:$port" --expect ok 2>&1); then
  fail "probe of a dead service passed: $out"
fi

step "keepalived -t on docs/KEEPALIVED.md with /usr/bin/health-probe"
cargo test --quiet -p health-examples --test peer_keepalived -- --ignored \
  documented_configs_pass_keepalived_check_with_the_installed_package

step "dpkg --purge"
# Some history and a running watcher's lock, as the unit would leave them.
runuser -u health-probe -- touch /var/lib/health-probe/watch.db
dpkg --purge health-probe
snapshot > "$scratch/after"
if ! diff -u "$scratch/before" "$scratch/after"; then
  fail "dpkg --purge left files behind (above)"
fi
getent passwd health-probe >/dev/null && fail "purge left the user health-probe"
getent group health-probe >/dev/null && fail "purge left the group health-probe"

step "README: $apt_line"
DEBIAN_FRONTEND=noninteractive bash -c "$apt_line" </dev/null
[ "$(/usr/bin/health-probe --version)" = "health-probe $version" ] || fail "apt install"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq health-probe
snapshot > "$scratch/after-apt"
diff -u "$scratch/before" "$scratch/after-apt" || fail "apt purge left files behind (above)"

step "README: $cargo_line"
CARGO_INSTALL_ROOT="$scratch/cargo" bash -c "$cargo_line"
[ "$("$scratch/cargo/bin/health-probe" --version)" = "health-probe $version" ] || fail "cargo install"
# health-probe watch execs the health-probe-watch installed beside it.
"$scratch/cargo/bin/health-probe" watch --check-config contrib/watch.toml >/dev/null ||
  fail "cargo-installed health-probe watch"

step "static binaries"
cargo test --quiet -p health-probe-assets --test static_binary -- --ignored

step "all passed"
