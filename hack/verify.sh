#!/usr/bin/env bash
# Copyright 2026 The Custos Authors.
# SPDX-License-Identifier: Apache-2.0
#
# The checks of `make verify`, run after the generators: generated files match
# what is committed, Go files are formatted, carry the licence header and pass
# go vet, and every kustomization renders.
#
#   hack/verify.sh <kubectl> <generated path>...
set -euo pipefail

kubectl=$1
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
failed=0

stale=$(git status --porcelain --untracked-files=all -- "$@")
if [[ -n "$stale" ]]; then
  echo "verify: generated files differ from what is committed (run make generate manifests and commit):" >&2
  echo "$stale" >&2
  git --no-pager diff --stat -- "$@" >&2
  failed=1
fi

mapfile -t gofiles < <(git ls-files --cached --others --exclude-standard '*.go')
unformatted=$(gofmt -l "${gofiles[@]}")
if [[ -n "$unformatted" ]]; then
  echo "verify: not gofmt-formatted (run make fmt):" >&2
  echo "$unformatted" >&2
  failed=1
fi

for f in "${gofiles[@]}"; do
  if ! grep -q "Licensed under the Apache License, Version 2.0" <(head -n 15 "$f"); then
    echo "verify: $f lacks the licence header of hack/boilerplate.go.txt" >&2
    failed=1
  fi
done

# The end-to-end suite is behind a build tag: vet it with the tag on.
if ! go vet ./... || ! go vet -tags e2e ./test/e2e/; then
  echo "verify: go vet failed" >&2
  failed=1
fi

for k in config/crd config/rbac config/manager config/webhook config/default config/samples; do
  if ! "$kubectl" kustomize "$k" >/dev/null; then
    echo "verify: $k does not render with kubectl kustomize" >&2
    failed=1
  fi
done

if [[ $failed -ne 0 ]]; then
  exit 1
fi
echo "verify: ok"
