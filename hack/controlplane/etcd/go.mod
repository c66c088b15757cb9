// Module etcd builds the etcd server Custos's tests and `make dev` use. It is
// separate from hack/controlplane/kube: in one module graph with
// k8s.io/kubernetes, resolving etcd's server module downgrades kubernetes.
// Keep it in step with ETCD_VERSION in hack/controlplane.sh.
module github.com/custos-dev/custos/hack/controlplane/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.7.3
