#!/usr/bin/env bash
# Copyright 2026 The Custos Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Fetches promtool, for `promtool check rules` and `promtool test rules` on
# the chart's alerting rules (test/chart), and prometheus beside it (the
# dashboard's queries are run against it), from Debian's prometheus package
# at the version pinned below, into bin/tools/prometheus-<version>/. A
# binary already there is never fetched again. Prints promtool's path.
#
#   hack/promtool.sh                          # bin/tools/prometheus-2.42.0+ds-5+b6/promtool
#   "$(hack/promtool.sh)" test rules test/rules/custos.test.yaml
set -euo pipefail

version="2.42.0+ds-5+b6"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/bin/tools/prometheus-$version"
bin="$dir/promtool"
mkdir -p "$dir"

exec 9>"$dir/.lock"
flock 9

if [[ ! -x "$bin" ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # apt-get download needs the package lists; a fresh machine has none.
  if ! (cd "$work" && apt-get download "prometheus=$version" >/dev/null 2>&1); then
    apt-get update >/dev/null
    (cd "$work" && apt-get download "prometheus=$version" >/dev/null 2>&1) || {
      echo "promtool: cannot download Debian's prometheus=$version (apt-get download)" >&2
      exit 1
    }
  fi
  # The binaries alone: the package's documentation holds Go examples,
  # which go list ./... (and controller-gen) would take for the project's.
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  cp "$work/x/usr/bin/promtool" "$work/x/usr/bin/prometheus" "$dir/"
  "$bin" --version >/dev/null
fi
echo "$bin"
