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

// Package workload renders an agent's Deployment: its own ServiceAccount, a
// restricted security context, the tenant labels, required node affinity to
// the boundary's regions, and a config hash that rolls the pods when the
// agent's identity or credentials change.
package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	corev1 "k8s.io/api/core/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/imageverify"
)

const (
	// ConfigHashAnnotation on the pod template changes, and so rolls the
	// pods, whenever what the pods were started with changes.
	ConfigHashAnnotation = "custos.dev/config-hash"

	// RegionLabel is the well-known node label of a node's region.
	RegionLabel = "topology.kubernetes.io/region"

	// ContainerName is the name of the agent's container.
	ContainerName = "agent"

	// tmpVolume gives the agent a writable /tmp on a read-only root.
	tmpVolume = "tmp"
)

// Params is everything an agent's Deployment is made of.
type Params struct {
	Name           string
	Namespace      string
	ServiceAccount string
	// Selector selects the agent's pods; it must never change for a
	// Deployment (the API server refuses it), so it holds only stable labels.
	Selector map[string]string
	// PodLabels are the pods' labels; they include Selector.
	PodLabels map[string]string
	Image     string
	Runtime   custosv1alpha1.AgentRuntime
	Replicas  int32
	Regions   []string
	// ConfigHash is ConfigHash of what the pods were started with.
	ConfigHash string
	// Leases are the agent's credential leases to mount, each from its
	// Secret at LeasesDir/<name>/; renewed material reaches the files
	// without a restart.
	Leases []MountedLease
}

// MountedLease is a credential lease a pod mounts.
type MountedLease struct {
	// Name is the credential's name; Secret holds its material.
	Name   string
	Secret string
}

// LeasesDir is where an agent's pods find their credentials:
// LeasesDir/<credential>/token for a bearer token, …/credentials for an AWS
// shared-credentials file.
const LeasesDir = "/var/run/secrets/custos.dev/leases"

// Deployment renders an agent's Deployment for server-side apply.
func Deployment(p Params) *appsv1ac.DeploymentApplyConfiguration {
	regions := slices.Clone(p.Regions)
	slices.Sort(regions)

	container := corev1ac.Container().
		WithName(ContainerName).
		WithImage(p.Image).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithPrivileged(false).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(tmpVolume).WithMountPath("/tmp"))
	if len(p.Runtime.Args) > 0 {
		container.WithArgs(p.Runtime.Args...)
	}
	for _, e := range p.Runtime.Env {
		container.WithEnv(corev1ac.EnvVar().WithName(e.Name).WithValue(e.Value))
	}
	if r := p.Runtime.Resources; r != nil {
		res := corev1ac.ResourceRequirements()
		if len(r.Requests) > 0 {
			res.WithRequests(r.Requests)
		}
		if len(r.Limits) > 0 {
			res.WithLimits(r.Limits)
		}
		container.WithResources(res)
	}

	volumes := []*corev1ac.VolumeApplyConfiguration{corev1ac.Volume().WithName(tmpVolume).WithEmptyDir(corev1ac.EmptyDirVolumeSource())}
	for _, l := range p.Leases {
		vol := "lease-" + l.Name
		volumes = append(volumes, corev1ac.Volume().WithName(vol).
			WithSecret(corev1ac.SecretVolumeSource().WithSecretName(l.Secret).WithDefaultMode(0o444)))
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(vol).WithMountPath(LeasesDir + "/" + l.Name).WithReadOnly(true))
	}

	pod := corev1ac.PodSpec().
		WithServiceAccountName(p.ServiceAccount).
		// Credentials come as leases mounted on purpose, never as the
		// ServiceAccount's default token.
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithHostNetwork(false).
		WithHostPID(false).
		WithHostIPC(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithAffinity(corev1ac.Affinity().WithNodeAffinity(corev1ac.NodeAffinity().
			WithRequiredDuringSchedulingIgnoredDuringExecution(corev1ac.NodeSelector().
				WithNodeSelectorTerms(corev1ac.NodeSelectorTerm().
					WithMatchExpressions(corev1ac.NodeSelectorRequirement().
						WithKey(RegionLabel).
						WithOperator(corev1.NodeSelectorOpIn).
						WithValues(regions...)))))).
		WithContainers(container).
		WithVolumes(volumes...)

	// The registry credentials the image was verified with pull it too.
	for _, ref := range p.Runtime.ImagePullSecrets {
		pod.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(ref.Name))
	}
	return appsv1ac.Deployment(p.Name, p.Namespace).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(p.Replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(p.Selector)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(p.PodLabels).
				WithAnnotations(map[string]string{ConfigHashAnnotation: p.ConfigHash}).
				WithSpec(pod)))
}

// ConfigHash is a short digest of what an agent's pods are started with
// that is not already in the pod template: identity bindings and
// credentials. It is stable across runs for equal input.
func ConfigHash(identity *custosv1alpha1.IdentityBindings, credentials []custosv1alpha1.CredentialSpec) string {
	data, err := json.Marshal(struct {
		Identity    *custosv1alpha1.IdentityBindings `json:"identity,omitempty"`
		Credentials []custosv1alpha1.CredentialSpec  `json:"credentials,omitempty"`
	}{identity, credentials})
	if err != nil {
		// Both types are plain data; encoding them cannot fail.
		panic(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// VerifiedImage is the one image an agent's pods may run: the digest Custos
// resolved spec.image to and verified (status.image), pinned, as
// repository@sha256:…. A tag can be moved to other content after
// verification, so a tag never runs. "" when no digest is verified: not
// yet, or not any more (its signer was rotated out). The Agent reconciler
// writes it into the Deployment and the pod guard admits nothing else.
func VerifiedImage(agent *custosv1alpha1.Agent) string {
	st := agent.Status.Image
	if st == nil || st.Digest == "" {
		return ""
	}
	ref := st.Reference
	if ref == "" {
		ref = agent.Spec.Image
	}
	return imageverify.PinnedReference(ref, st.Digest)
}
