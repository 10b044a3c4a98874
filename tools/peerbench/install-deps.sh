#!/usr/bin/env bash
# Installs the system packages the peer benchmark (tools/peerbench, "make
# bench") uses, when they are missing: nginx-light (the backend and the
# nginx peer), haproxy (the HAProxy peer), caddy (the Caddy peer), wrk
# (closed-loop load), nghttp2-client (h2load, HTTP/2 load) and util-linux
# (taskset, for CPU pinning). The tests do not need them.
# Needs root (or sudo) only when something must be installed.
set -euo pipefail

has() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

need=()
has nginx || need+=(nginx-light)
has haproxy || need+=(haproxy)
has caddy || need+=(caddy)
has wrk || need+=(wrk)
has h2load || need+=(nghttp2-client)
has taskset || need+=(util-linux)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "installing benchmark dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
