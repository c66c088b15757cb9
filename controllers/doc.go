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

// Package controllers holds Custos's reconcilers, one per kind, with the
// status functions beside them. Its tests run against a real kube-apiserver
// and etcd (see test/controlplane).
//
// The Agent reconciler is a table of steps (agentSteps in
// agent_controller.go), one file per step named by capability:
// agent_boundary.go, agent_identity.go, agent_image.go, agent_network.go,
// agent_credentials.go and agent_workload.go. A step reads and writes its
// objects, observes its condition (agentScope.observe) and returns its
// requeue wish and error (stepResult); the results are merged in one place,
// and the status is computed from the observations by one pure function
// (agentStatus, agent_status.go). A step that fails switches off the steps
// that need it for that pass. The watches and predicates are in
// agent_watches.go, the helpers every step uses for its children in
// agent_children.go, the kinds an agent has in agent_kinds.go, and the one
// decommission path in agent_decommission.go.
package controllers
