#!/usr/bin/env bash
# provision.sh: put fleetd on one host. The single provisioning path of both clusters:
# the Vagrant VMs (vagrant/Vagrantfile runs every stage) and the local nspawn cluster
# (vagrant/local-cluster runs `containers` and `fleet`, inside each host, from the checkout bound
# at /opt/fleet).
#
#   provision.sh packages   apt: python3, python3-venv, podman, busybox-static (+ etcd-server
#                           with FLEET_ETCD_MEMBER=1), the missing ones only; a venv at
#                           FLEET_VENV with fleetd pip-installed from FLEET_SRC (its dependencies
#                           from FLEET_WHEELS if set); /usr/local/bin/fleetctl. Needs the internet
#                           unless the packages are there (the fleetd/debian12 box has them) and
#                           FLEET_WHEELS is given.
#   provision.sh etcd       configure Debian's etcd-server as member ETCD_NAME of the static
#                           cluster ETCD_INITIAL_CLUSTER and (re)start it
#   provision.sh containers configure podman for fleet units (storage driver, keyring; see
#                           docs/units.md, "Containers"), build the demo image into
#                           FLEET_IMAGE_DIR unless it is there, install and start
#                           fleet-images.service, which loads that directory into podman at boot
#   provision.sh fleet      write /etc/fleet/fleet.conf and /etc/fleet/environment, install
#                           fleet.service (+ a drop-in saying which python runs fleetd), enable
#                           and start it
#
# Inputs (environment; every stage checks the ones it needs and says which is missing):
#   FLEET_ETCD_ENDPOINTS  comma list of etcd client URLs               (fleet)
#   FLEET_PUBLIC_IP       this host's address                          (fleet)
#   FLEET_METADATA        fleet metadata, e.g. node=1,zone=a           (fleet; optional)
#   FLEET_HOST            name in /etc/fleet/environment (default: hostname)
#   FLEET_MACHINE_ID      id in /etc/fleet/environment (default: DESTDIR/etc/machine-id)
#   FLEET_PYTHON          interpreter that runs fleetd (default FLEET_VENV/bin/python3 if that
#                         exists, else /usr/bin/python3)
#   FLEET_PYTHONPATH      PYTHONPATH for fleetd (optional; local-cluster: /opt/fleet-hostlib:/opt/fleet)
#   FLEET_API_LISTEN, FLEET_API_TLS_CERT, FLEET_API_TLS_KEY, FLEET_API_TOKEN_FILE
#                         optional TCP API (paths on the host; key and token are chmod 0600)
#   FLEET_API_TLS_CLIENT_CA, FLEET_API_AUTH
#                         its client CA and api_auth (token, cert, token+cert, token/cert)
#   FLEET_API_SOCKET_GROUP  group that may use /run/fleet.sock (optional)
#   FLEET_ETCD_CAFILE, FLEET_ETCD_USERNAME, FLEET_ETCD_PASSWORD_FILE
#                         etcd's CA and this host's etcd user (paths on the host; the password
#                         file is chmod 0600; the user is made by `fleetd etcd-setup`)
#   FLEET_ETCD_INSECURE=1 accept plain http:// etcd URLs (etcd_insecure=true: fleetd warns at
#                         every start; without it fleetd refuses them)
#   FLEET_ROLES           the host's roles (default agent,engine,api)
#   FLEET_EXTRA_CONF      more fleet.conf lines, separated by newlines or spaces (optional)
#   FLEET_NO_START=1      write files only (no daemon-reload, start or restart; containers still
#                         enables fleet-images.service); implied when DESTDIR is set
#   DESTDIR               root to write into (default /), e.g. for tests
#   FLEET_SRC             fleetd source tree (packages; default: this script's checkout)
#   FLEET_VENV            venv for fleetd (packages; default /opt/fleetd)
#   FLEET_WHEELS          directory of wheels: pip installs from it alone (packages; optional)
#   FLEET_ETCD_MEMBER=1   also install etcd-server (packages)
#   FLEET_IMAGE_DIR       container images loaded at boot (containers; default /var/lib/fleet/images)
#   ETCD_NAME, ETCD_IP, ETCD_INITIAL_CLUSTER   (etcd) e.g. node1, 192.168.56.11,
#                         node1=http://192.168.56.11:2380,node2=http://192.168.56.12:2380
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DESTDIR=${DESTDIR:-}
FLEET_VENV=${FLEET_VENV:-/opt/fleetd}

die() { echo "provision.sh: error: $*" >&2; exit 1; }
log() { echo "provision.sh: $*" >&2; }
need() { local v; for v in "$@"; do [ -n "${!v:-}" ] || die "$STAGE needs $v (see the top of $0)"; done; }
starting() { [ -z "$DESTDIR" ] && [ "${FLEET_NO_START:-}" != 1 ]; }

# ---------------------------------------------------------------- packages (VM only)

apt_missing() {  # install those of the packages that are not installed (no apt at all if none)
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "apt: $* already installed"; return; fi
  log "apt: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
}

stage_packages() {
  local src=${FLEET_SRC:-$(cd "$HERE/.." && pwd)} pkgs=(python3 python3-venv podman busybox-static)
  [ -f "$src/pyproject.toml" ] || die "FLEET_SRC=$src is not fleetd's source tree (no pyproject.toml)"
  [ "${FLEET_ETCD_MEMBER:-}" = 1 ] && pkgs+=(etcd-server etcd-client)
  apt_missing "${pkgs[@]}"
  [ -x "$FLEET_VENV/bin/python3" ] || python3 -m venv "$FLEET_VENV"
  local pip=(-q --disable-pip-version-check)
  [ -z "${FLEET_WHEELS:-}" ] || pip+=(--no-index --find-links "$FLEET_WHEELS")
  log "pip: fleetd from $src into $FLEET_VENV${FLEET_WHEELS:+ (dependencies from $FLEET_WHEELS)}"
  "$FLEET_VENV/bin/pip" install "${pip[@]}" "$src" ||
    die "pip install of $src into $FLEET_VENV failed"
  ln -sfn "$FLEET_VENV/bin/fleetctl" /usr/local/bin/fleetctl
}

# ---------------------------------------------------------------- etcd (VM only)

# Debian's etcd.service reads /etc/default/etcd. The package starts a one-member cluster at
# install; its data is wiped once when the member joins another cluster (marker file).
stage_etcd() {
  need ETCD_NAME ETCD_IP ETCD_INITIAL_CLUSTER
  local conf=/etc/default/etcd data=/var/lib/etcd/fleet marker=/var/lib/etcd/fleet.cluster
  command -v etcd >/dev/null || die "etcd is not installed (run: FLEET_ETCD_MEMBER=1 $0 packages)"
  cat >"$conf.new" <<EOF
# written by vagrant/provision.sh etcd
ETCD_NAME=$ETCD_NAME
ETCD_DATA_DIR=$data
ETCD_LISTEN_CLIENT_URLS=http://$ETCD_IP:2379,http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=http://$ETCD_IP:2379
ETCD_LISTEN_PEER_URLS=http://$ETCD_IP:2380
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://$ETCD_IP:2380
ETCD_INITIAL_CLUSTER=$ETCD_INITIAL_CLUSTER
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=fleet-vagrant
EOF
  if [ "$(cat "$marker" 2>/dev/null)" != "$ETCD_INITIAL_CLUSTER" ]; then
    systemctl stop etcd.service || true
    rm -rf "$data"
    echo "$ETCD_INITIAL_CLUSTER" >"$marker"
  fi
  mv "$conf.new" "$conf"
  systemctl enable --quiet etcd.service
  # --no-block: the first member waits for a quorum that the next VMs bring
  systemctl restart --no-block etcd.service
  log "etcd member $ETCD_NAME of $ETCD_INITIAL_CLUSTER (re)started"
}

# ---------------------------------------------------------------- containers (shared)

# Nested in a container (the local cluster's nspawn hosts), the kernel's overlayfs is out of
# reach (the root is itself overlayfs, and whiteout devices cannot be made), and nspawn's seccomp
# filter refuses keyctl(2). A VM has neither limit.
nested() { systemd-detect-virt --container --quiet 2>/dev/null; }

storage_conf() {
  local driver=overlay
  nested && driver=vfs
  echo "# written by vagrant/provision.sh containers"
  echo "[storage]"
  echo "driver = \"$driver\""
  echo 'runroot = "/run/containers/storage"'
  echo 'graphroot = "/var/lib/containers/storage"'
}

containers_conf() {
  echo "# written by vagrant/provision.sh containers"
  echo "[containers]"
  if nested; then echo "keyring = false"; fi
}

stage_containers() {
  local etc=/etc images="${FLEET_IMAGE_DIR:-/var/lib/fleet/images}"
  command -v podman >/dev/null || die "podman is not installed (run: $0 packages)"
  mkdir -p "$etc/containers/containers.conf.d"
  storage_conf >"$etc/containers/storage.conf"
  containers_conf >"$etc/containers/containers.conf.d/50-fleet.conf"
  if [ ! -e "$images/fleet-demo.tar" ]; then
    mkdir -p "$images"
    python3 "$HERE/container-image.py" --busybox /bin/busybox "$images/fleet-demo.tar"
  fi
  sed "s|/var/lib/fleet/images|$images|g" "$HERE/fleet-images.service" \
    >"$etc/systemd/system/fleet-images.service"
  systemctl enable --quiet --no-reload fleet-images.service  # only links: works before a reload
  starting || return 0
  systemctl daemon-reload
  systemctl restart --no-block fleet-images.service
}

# ---------------------------------------------------------------- fleet (shared)

fleet_python() {
  if [ -n "${FLEET_PYTHON:-}" ]; then echo "$FLEET_PYTHON"
  elif [ -x "$DESTDIR$FLEET_VENV/bin/python3" ]; then echo "$FLEET_VENV/bin/python3"
  else echo /usr/bin/python3; fi
}

fleet_conf() {
  echo "# written by vagrant/provision.sh fleet"
  echo "etcd_servers=$FLEET_ETCD_ENDPOINTS"
  echo "public_ip=$FLEET_PUBLIC_IP"
  [ -z "${FLEET_METADATA:-}" ] || echo "metadata=$FLEET_METADATA"
  [ -z "${FLEET_API_SOCKET_GROUP:-}" ] || echo "api_socket_group=$FLEET_API_SOCKET_GROUP"
  if [ -n "${FLEET_API_LISTEN:-}" ]; then
    echo "api_listen=$FLEET_API_LISTEN"
    [ -z "${FLEET_API_TLS_CERT:-}" ] || echo "api_tls_cert_file=$FLEET_API_TLS_CERT"
    [ -z "${FLEET_API_TLS_KEY:-}" ] || echo "api_tls_key_file=$FLEET_API_TLS_KEY"
    [ -z "${FLEET_API_TOKEN_FILE:-}" ] || echo "api_token_file=$FLEET_API_TOKEN_FILE"
    [ -z "${FLEET_API_TLS_CLIENT_CA:-}" ] || echo "api_tls_client_ca_file=$FLEET_API_TLS_CLIENT_CA"
    [ -z "${FLEET_API_AUTH:-}" ] || echo "api_auth=$FLEET_API_AUTH"
  fi
  etcd_conf
  local line
  for line in ${FLEET_EXTRA_CONF:-}; do
    [[ $line == *=* ]] || die "FLEET_EXTRA_CONF: '$line' is not key=value"
    echo "$line"
  done
}

etcd_conf() {  # how fleetd reaches etcd: TLS, its user; or, said explicitly, plain http://
  [ -z "${FLEET_ETCD_CAFILE:-}" ] || echo "etcd_cafile=$FLEET_ETCD_CAFILE"
  [ -z "${FLEET_ETCD_USERNAME:-}" ] || echo "etcd_username=$FLEET_ETCD_USERNAME"
  [ -z "${FLEET_ETCD_PASSWORD_FILE:-}" ] || echo "etcd_password_file=$FLEET_ETCD_PASSWORD_FILE"
  [ "${FLEET_ETCD_INSECURE:-}" != 1 ] || echo "etcd_insecure=true"
  [ -z "${FLEET_ROLES:-}" ] || echo "roles=$FLEET_ROLES"
}

fleet_environment() {
  local id=${FLEET_MACHINE_ID:-}
  [ -n "$id" ] || id=$(cat "$DESTDIR/etc/machine-id" 2>/dev/null || true)
  echo "FLEET_PUBLIC_IP=$FLEET_PUBLIC_IP"
  echo "FLEET_ETCD_ENDPOINTS=$FLEET_ETCD_ENDPOINTS"
  echo "FLEET_MACHINE_ID=$id"
  echo "FLEET_HOST=${FLEET_HOST:-$(hostname)}"
}

fleet_dropin() {
  local py; py=$(fleet_python)
  echo "# written by vagrant/provision.sh fleet: how this host runs fleetd"
  echo "[Service]"
  [ -z "${FLEET_PYTHONPATH:-}" ] || echo "Environment=PYTHONPATH=$FLEET_PYTHONPATH"
  echo "Environment=PYTHONUNBUFFERED=1"
  echo "Environment=PYTHONDONTWRITEBYTECODE=1"
  if [ "$py" != /usr/bin/python3 ]; then
    printf 'ExecStart=\nExecStart=%s -m fleetd --config /etc/fleet/fleet.conf\n' "$py"
    printf 'ExecStopPost=\nExecStopPost=%s -m fleetd --config /etc/fleet/fleet.conf --stop-at-most-once\n' "$py"
  fi
}

secret_modes() {  # fleetd refuses a key or token that group or others can read
  local f
  for f in "${FLEET_API_TLS_KEY:-}" "${FLEET_API_TOKEN_FILE:-}"; do
    [ -z "$f" ] && continue
    [ -f "$DESTDIR$f" ] || die "$f does not exist on this host"
    chmod 0600 "$DESTDIR$f"
  done
  for f in "${FLEET_API_TLS_CERT:-}" "${FLEET_API_TLS_CLIENT_CA:-}"; do
    [ -z "$f" ] || [ -f "$DESTDIR$f" ] || die "$f does not exist on this host"
  done
}

etcd_secret_mode() {
  local f=${FLEET_ETCD_PASSWORD_FILE:-}
  [ -z "$f" ] && return
  [ -f "$DESTDIR$f" ] || die "$f does not exist on this host"
  chmod 0600 "$DESTDIR$f"
}

stage_fleet() {
  need FLEET_ETCD_ENDPOINTS FLEET_PUBLIC_IP
  local etc="$DESTDIR/etc" unit="$DESTDIR/etc/systemd/system"
  [ -f "$HERE/fleet.service" ] || die "no fleet.service next to $0"
  mkdir -p "$etc/fleet" "$unit/fleet.service.d"
  [ -z "${FLEET_API_LISTEN:-}" ] || secret_modes
  etcd_secret_mode
  fleet_conf >"$etc/fleet/fleet.conf.new"
  mv "$etc/fleet/fleet.conf.new" "$etc/fleet/fleet.conf"
  fleet_environment >"$etc/fleet/environment"
  # the demo units' etcd credentials (vagrant/local-cluster writes them first): empty elsewhere
  [ -e "$etc/fleet/etcd-units.env" ] || install -m 0600 /dev/null "$etc/fleet/etcd-units.env"
  chmod 0644 "$etc/fleet/fleet.conf" "$etc/fleet/environment"
  install -m 0644 "$HERE/fleet.service" "$unit/fleet.service"
  fleet_dropin >"$unit/fleet.service.d/10-provision.conf"
  starting || return 0
  systemctl daemon-reload
  systemctl enable --quiet fleet.service
  systemctl restart --no-block fleet.service
}

STAGE=${1:-}
case $STAGE in
  packages) [ -z "$DESTDIR" ] || die "packages does not support DESTDIR"; stage_packages ;;
  etcd) [ -z "$DESTDIR" ] || die "etcd does not support DESTDIR"; stage_etcd ;;
  containers) [ -z "$DESTDIR" ] || die "containers does not support DESTDIR"; stage_containers ;;
  fleet) stage_fleet ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "usage: $0 packages|etcd|containers|fleet (see the top of this file)" >&2; exit 2 ;;
esac
