#!/usr/bin/env bash
# Copyright 2026 The Custos Authors.
# SPDX-License-Identifier: Apache-2.0
#
# Builds the Kubernetes control plane Custos's tests and `make dev` run on
# (kube-apiserver, etcd, kubectl by default) from the Go modules pinned in
# hack/controlplane/{kube,etcd}/go.mod, into bin/k8s/<kube>-<etcd>/.
# A binary that is already there is never rebuilt. Prints the directory, which
# is what envtest expects in KUBEBUILDER_ASSETS.
#
#   hack/controlplane.sh                       # kube-apiserver etcd kubectl
#   hack/controlplane.sh kube-scheduler ...    # any other binary of the kube module
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kube_mod="$root/hack/controlplane/kube"
etcd_mod="$root/hack/controlplane/etcd"

# The versions are read from the pinning modules so there is one place to bump.
pinned() { # module go.mod: the version go.mod requires of module
  awk -v m="$1" '{ for (i = 1; i < NF; i++) if ($i == m && $(i+1) ~ /^v[0-9]/) { print $(i+1); exit } }' "$2"
}
kube_version=$(pinned k8s.io/kubernetes "$kube_mod/go.mod")
etcd_version=$(pinned go.etcd.io/etcd/server/v3 "$etcd_mod/go.mod")
if [[ -z "$kube_version" || -z "$etcd_version" ]]; then
  echo "controlplane: cannot read the pinned versions from $kube_mod/go.mod and $etcd_mod/go.mod" >&2
  exit 1
fi

dir="$root/bin/k8s/${kube_version}-etcd${etcd_version}"
mkdir -p "$dir"

binaries=("$@")
if [[ ${#binaries[@]} -eq 0 ]]; then
  binaries=(kube-apiserver etcd kubectl)
fi

# Two builds at once (make test beside make dev) would race on the same files.
exec 9>"$dir/.lock"
flock 9

# Kubernetes binaries are stamped with their version, as a release build
# is: `kubectl version` and Helm's kubeVersion checks read it (unstamped, the
# API server says v0.0.0-master).
minor=$(cut -d. -f2 <<<"$kube_version")
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

for name in "${binaries[@]}"; do
  case "$name" in
    etcd) mod="$etcd_mod" pkg="go.etcd.io/etcd/server/v3" ldflags="" ;;
    kube-apiserver|kubectl|kube-controller-manager|kube-scheduler)
      mod="$kube_mod" pkg="k8s.io/kubernetes/cmd/$name" ldflags="$kube_ldflags" ;;
    *) echo "controlplane: unknown binary $name" >&2; exit 2 ;;
  esac
  # A binary is current when it exists and was built the way this script
  # builds it now (its recipe: package and flags).
  recipe="$pkg $ldflags"
  if [[ -x "$dir/$name" && "$(cat "$dir/$name.recipe" 2>/dev/null)" == "$recipe" ]]; then
    continue
  fi
  echo "controlplane: building $name ($pkg) into $dir; a first build takes minutes (kube-apiserver about 8 on 2 cores)" >&2
  start=$SECONDS
  # -mod=mod, not go mod tidy: tidy would pull test-only modules that need a newer Go.
  (cd "$mod" && go build -mod=mod -ldflags "$ldflags" -o "$dir/$name.partial" "$pkg")
  mv "$dir/$name.partial" "$dir/$name"
  echo "$recipe" >"$dir/$name.recipe"
  echo "controlplane: built $name in $((SECONDS - start))s" >&2
done

echo "$dir"
