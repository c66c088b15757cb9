#!/usr/bin/env bash
# Copyright 2026 The Custos Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Builds kwok, which fakes the nodes of the local cluster and the status of
# the pods scheduled onto them (test/e2e, make dev), from the Go module pinned
# in hack/tools/kwok/go.mod, into bin/tools/kwok-<version>/. Beside it, in
# stages/, go the Stage objects of kwok's own module that it is started with
# (kwok v0.8.0 refuses to start without stages): node/fast (nodes become
# Ready), node/heartbeat (and stay so) and pod/fast (pods run, are Ready and
# go when deleted). A binary that is already there, built the way this script
# builds it, is never rebuilt. Prints the binary's path.
#
#   hack/kwok.sh                                 # bin/tools/kwok-v0.8.0/kwok
#   ls "$(dirname "$(hack/kwok.sh)")/stages"     # the Stage files
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod="$root/hack/tools/kwok"

# The version is read from the pinning module so there is one place to bump.
version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "sigs.k8s.io/kwok" && $(i+1) ~ /^v[0-9]/) { print $(i+1); exit } }' "$mod/go.mod")
if [[ -z "$version" ]]; then
  echo "kwok: cannot read the pinned version of sigs.k8s.io/kwok from $mod/go.mod" >&2
  exit 1
fi

dir="$root/bin/tools/kwok-$version"
bin="$dir/kwok"
mkdir -p "$dir"

# Two builds at once (make e2e beside make dev) would race on the same files.
exec 9>"$dir/.lock"
flock 9

# Unstamped: the module's own sources already carry its version.
ldflags="-s -w"

# The binary is current when it exists and was built the way this script
# builds it now (its recipe: the flags).
recipe="sigs.k8s.io/kwok/cmd/kwok $ldflags"
if [[ ! -x "$bin" || "$(cat "$bin.recipe" 2>/dev/null)" != "$recipe" ]]; then
  echo "kwok: building kwok $version into $dir; a first build takes a few minutes" >&2
  start=$SECONDS
  (cd "$mod" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$bin.partial" sigs.k8s.io/kwok/cmd/kwok)
  mv "$bin.partial" "$bin"
  echo "$recipe" >"$bin.recipe"
  echo "kwok: built kwok $version in $((SECONDS - start))s" >&2
fi

# The stages come from the very module the binary was built from, so they
# always match it. Copied afresh each time (they are small), never committed.
src=$(cd "$mod" && go list -mod=mod -m -f '{{.Dir}}' sigs.k8s.io/kwok)
if [[ -z "$src" || ! -d "$src/kustomize/stage" ]]; then
  echo "kwok: cannot find the stages of sigs.k8s.io/kwok $version in the module cache ($src)" >&2
  exit 1
fi
stages="$dir/stages"
rm -rf "$stages.partial"
mkdir -p "$stages.partial"
for stage in node/fast node/heartbeat pod/fast; do
  found=0
  for f in "$src/kustomize/stage/$stage"/*.yaml; do
    [[ "$(basename "$f")" == kustomization.yaml ]] && continue
    cp "$f" "$stages.partial/${stage//\//-}-$(basename "$f")"
    found=1
  done
  if [[ $found == 0 ]]; then
    echo "kwok: sigs.k8s.io/kwok $version has no stage files in kustomize/stage/$stage" >&2
    exit 1
  fi
done
chmod -R u+w "$stages.partial"
rm -rf "$stages"
mv "$stages.partial" "$stages"

echo "$bin"
