#!/usr/bin/env bash
# Copyright 2026 The Custos Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Fetches promtool, for `promtool check rules` and `promtool test rules` on
# the chart's alerting rules (test/chart), and prometheus beside it (the
# dashboard's queries are run against it), from Debian's prometheus package
# at a version pinned below, into bin/tools/prometheus-<version>/. A
# binary already there is never fetched again. Prints promtool's path.
#
#   hack/promtool.sh                          # bin/tools/prometheus-2.42.0+ds-5+deb12u1/promtool
#   "$(hack/promtool.sh)" test rules test/rules/custos.test.yaml
set -euo pipefail

# Debian bookworm's prometheus package, pinned: the versions known to work,
# newest first. A point release replaces a version on the mirror (2.42.0+ds-5+b6
# gave way to 2.42.0+ds-5+deb12u1), so the script takes the first the
# mirror still has, and a copy already fetched of any of them.
versions=("2.42.0+ds-5+deb12u1" "2.42.0+ds-5+b6")

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for version in "${versions[@]}"; do
  if [[ -x "$root/bin/tools/prometheus-$version/promtool" ]]; then
    echo "$root/bin/tools/prometheus-$version/promtool"
    exit 0
  fi
done

mkdir -p "$root/bin/tools"
exec 9>"$root/bin/tools/.prometheus.lock"
flock 9

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() {
  local v
  for v in "${versions[@]}"; do
    if (cd "$work" && apt-get download "prometheus=$v" >/dev/null 2>&1); then
      echo "$v"
      return 0
    fi
  done
  return 1
}
# apt-get download needs the package lists; a fresh machine has none.
if ! version=$(fetch); then
  apt-get update >/dev/null
  version=$(fetch) || {
    echo "promtool: cannot download Debian's prometheus (apt-get download), any of: ${versions[*]}" >&2
    exit 1
  }
fi
dir="$root/bin/tools/prometheus-$version"
bin="$dir/promtool"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$dir"
  # The binaries alone: the package's documentation holds Go examples,
  # which go list ./... (and controller-gen) would take for the project's.
  dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
  cp "$work/x/usr/bin/promtool" "$work/x/usr/bin/prometheus" "$dir/"
  "$bin" --version >/dev/null
fi
echo "$bin"
