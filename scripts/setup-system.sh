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
)

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
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-system: done"
