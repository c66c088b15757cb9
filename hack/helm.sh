#!/usr/bin/env bash
# Copyright 2026 The Custos Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Builds the helm CLI the chart tests (test/chart, test/install) use from the
# Go module pinned in hack/tools/helm/go.mod, into bin/tools/helm-<version>/.
# A binary that is already there, built the way this script builds it, is
# never rebuilt. Prints the binary's path.
#
#   hack/helm.sh                                 # bin/tools/helm-v3.22.0/helm
#   "$(hack/helm.sh)" template custos charts/custos
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod="$root/hack/tools/helm"

# The version is read from the pinning module so there is one place to bump.
version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "helm.sh/helm/v3" && $(i+1) ~ /^v[0-9]/) { print $(i+1); exit } }' "$mod/go.mod")
if [[ -z "$version" ]]; then
  echo "helm: cannot read the pinned version of helm.sh/helm/v3 from $mod/go.mod" >&2
  exit 1
fi

dir="$root/bin/tools/helm-$version"
bin="$dir/helm"
mkdir -p "$dir"

# Two builds at once (make test beside make verify) would race on the same files.
exec 9>"$dir/.lock"
flock 9

# Stamped as helm's own release build is: its version, and the Kubernetes
# version `helm template` and `helm lint` assume without a cluster (that of
# the client-go helm is built with; unstamped it is 1.20, which the chart's
# kubeVersion constraint refuses).
client_go=$(cd "$mod" && go list -mod=mod -m -f '{{.Version}}' k8s.io/client-go) # v0.37.0
kube_minor=$(cut -d. -f2 <<<"$client_go")
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kube_minor"
done

# The binary is current when it exists and was built the way this script
# builds it now (its recipe: the flags).
recipe="helm.sh/helm/v3/cmd/helm $ldflags"
if [[ ! -x "$bin" || "$(cat "$bin.recipe" 2>/dev/null)" != "$recipe" ]]; then
  echo "helm: building helm $version into $dir; a first build takes a few minutes (about 2 on 2 cores)" >&2
  start=$SECONDS
  # -mod=mod, not go mod tidy: tidy would pull test-only modules too.
  (cd "$mod" && go build -mod=mod -trimpath -ldflags "$ldflags" -o "$bin.partial" helm.sh/helm/v3/cmd/helm)
  mv "$bin.partial" "$bin"
  echo "$recipe" >"$bin.recipe"
  echo "helm: built helm $version in $((SECONDS - start))s" >&2
fi

echo "$bin"
