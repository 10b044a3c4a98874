#!/usr/bin/env bash
# Installs the system packages the tests use, when they are missing:
# ZooKeeper (the store tests start real servers from it), curl (the
# quick-start test runs the demo's printed curl lines), gcc (the race
# detector needs cgo) and HAProxy (internal/conformance compares the
# proxy's answers to malformed requests with HAProxy's).
# Needs root (or sudo) only when something must be installed.
set -euo pipefail

need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
# go test -race needs cgo, hence a C compiler.
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -f /usr/share/java/zookeeper.jar ] || need+=(zookeeper)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
echo "installing test dependencies: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
