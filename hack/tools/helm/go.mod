// Module helm builds the helm CLI that the chart tests (test/chart) and
// hack/helm.sh use, from the pinned helm.sh/helm/v3 release. It is a separate
// module so that helm's dependency graph never leaks into Custos's own.
module github.com/custos-dev/custos/hack/tools/helm

go 1.26.0

require helm.sh/helm/v3 v3.22.0
