/*
Copyright 2026 The Custos Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package e2e walks the journeys Custos's users walk, on a whole cluster on
// this machine: etcd and kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok's fake nodes in three regions
// (test/controlplane.StartCluster). A platform team installs Custos
// with helm and applies a DataBoundary; an owner applies an Agent with
// kubectl, watches it become Ready on nodes of its regions, is refused what
// the boundary does not allow, suspends, resumes, lets it expire, and
// deletes it, after which nothing of it remains.
//
// The tests are behind the build tag e2e, so that `go test ./...` (make
// test) does not run them; make e2e does, with the binaries they need:
//
//	make e2e
//	KUBEBUILDER_ASSETS=… HELM=… KWOK=… go test -tags e2e ./test/e2e/ -count=1 -v
package e2e
