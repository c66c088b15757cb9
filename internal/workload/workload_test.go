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

package workload

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

func TestDeploymentIsRestricted(t *testing.T) {
	g := NewWithT(t)
	d := Deployment(Params{
		Name: "agent-x", Namespace: "ns", ServiceAccount: "agent-x",
		Selector:  map[string]string{"custos.dev/agent": "x"},
		PodLabels: map[string]string{"custos.dev/agent": "x", "custos.dev/tenant": "t"},
		Image:     "registry.acme.example/agents/x:1",
		Runtime: custosv1alpha1.AgentRuntime{
			Args:      []string{"--serve"},
			Env:       []custosv1alpha1.AgentEnvVar{{Name: "A", Value: "b"}},
			Resources: &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
		},
		Replicas:   2,
		Regions:    []string{"eu-west-1", "eu-central-1"},
		ConfigHash: "abc",
	})
	g.Expect(*d.Spec.Replicas).To(Equal(int32(2)))
	g.Expect(d.Spec.Selector.MatchLabels).To(Equal(map[string]string{"custos.dev/agent": "x"}))
	tpl := d.Spec.Template
	g.Expect(tpl.Labels).To(HaveKeyWithValue("custos.dev/tenant", "t"))
	g.Expect(tpl.Annotations).To(HaveKeyWithValue(ConfigHashAnnotation, "abc"))
	pod := tpl.Spec
	g.Expect(*pod.ServiceAccountName).To(Equal("agent-x"))
	g.Expect(*pod.AutomountServiceAccountToken).To(BeFalse())
	g.Expect(*pod.HostNetwork || *pod.HostPID || *pod.HostIPC).To(BeFalse())
	g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
	req := pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
	g.Expect(*req.Key).To(Equal(RegionLabel))
	g.Expect(*req.Operator).To(Equal(corev1.NodeSelectorOpIn))
	g.Expect(req.Values).To(Equal([]string{"eu-central-1", "eu-west-1"}))
	c := pod.Containers[0]
	g.Expect(*c.Image).To(Equal("registry.acme.example/agents/x:1"))
	g.Expect(c.Args).To(Equal([]string{"--serve"}))
	g.Expect(*c.Env[0].Name).To(Equal("A"))
	sc := c.SecurityContext
	g.Expect(*sc.AllowPrivilegeEscalation || *sc.Privileged).To(BeFalse())
	g.Expect(*sc.ReadOnlyRootFilesystem && *sc.RunAsNonRoot).To(BeTrue())
	g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(*sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	g.Expect((*c.Resources.Limits)[corev1.ResourceMemory]).To(Equal(resource.MustParse("256Mi")))
	g.Expect(*c.VolumeMounts[0].MountPath).To(Equal("/tmp"), "a read-only root needs a writable /tmp")
}

func TestConfigHash(t *testing.T) {
	g := NewWithT(t)
	aws := &custosv1alpha1.IdentityBindings{AWS: &custosv1alpha1.AWSIdentity{RoleARN: "arn:aws:iam::111122223333:role/a"}}
	creds := []custosv1alpha1.CredentialSpec{{Name: "c", KubernetesToken: &custosv1alpha1.KubernetesTokenCredential{Audience: "a"},
		TTL: metav1.Duration{Duration: 10 * time.Minute}}}
	h := ConfigHash(aws, creds)
	g.Expect(ConfigHash(aws.DeepCopy(), []custosv1alpha1.CredentialSpec{*creds[0].DeepCopy()})).To(Equal(h), "stable for equal input")

	other := aws.DeepCopy()
	other.AWS.RoleARN = "arn:aws:iam::111122223333:role/b"
	g.Expect(ConfigHash(other, creds)).NotTo(Equal(h), "a new role rolls the pods")
	longer := []custosv1alpha1.CredentialSpec{*creds[0].DeepCopy()}
	longer[0].TTL.Duration = 20 * time.Minute
	g.Expect(ConfigHash(aws, longer)).NotTo(Equal(h), "a credential change rolls the pods")
}

func TestVerifiedImage(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		reference, digest string
		want              string
	}{
		{"registry.acme.example/agents/invoice-reconciler:1.4.2", "", ""},
		{"registry.acme.example/agents/invoice-reconciler:1.4.2", digest, "registry.acme.example/agents/invoice-reconciler@" + digest},
		{"registry.acme.example/agents/x:1@sha256:" + strings.Repeat("a", 64), digest, "registry.acme.example/agents/x@" + digest},
		{"registry.acme.example:5000/agents/x", digest, "registry.acme.example:5000/agents/x@" + digest},
		{"127.0.0.1:5000/agents/x:2", digest, "127.0.0.1:5000/agents/x@" + digest},
		// One spelling for Docker Hub images, the operator's and the guard's.
		{"busybox:1.37", digest, "index.docker.io/library/busybox@" + digest},
		{"docker.io/library/busybox", digest, "index.docker.io/library/busybox@" + digest},
	}
	for _, tc := range tests {
		t.Run(tc.reference+"/"+tc.digest, func(t *testing.T) {
			g := NewWithT(t)
			a := &custosv1alpha1.Agent{Spec: custosv1alpha1.AgentSpec{Image: "registry.acme.example/agents/other:9"}}
			if tc.digest != "" {
				a.Status.Image = &custosv1alpha1.ImageStatus{Reference: tc.reference, Digest: tc.digest}
			}
			g.Expect(VerifiedImage(a)).To(Equal(tc.want))
		})
	}
	// A status written before references were recorded pins spec.image.
	a := &custosv1alpha1.Agent{Spec: custosv1alpha1.AgentSpec{Image: "registry.acme.example/agents/a:1"},
		Status: custosv1alpha1.AgentStatus{Image: &custosv1alpha1.ImageStatus{Digest: digest}}}
	NewWithT(t).Expect(VerifiedImage(a)).To(Equal("registry.acme.example/agents/a@" + digest))
}

// TestDeploymentPullsWithTheAgentsPullSecrets: the Secrets the image was
// verified with are the ones its pods pull with.
func TestDeploymentPullsWithTheAgentsPullSecrets(t *testing.T) {
	g := NewWithT(t)
	d := Deployment(Params{Name: "agent-a", Namespace: "ns", Image: "r.example/a@sha256:" + strings.Repeat("0", 64),
		Runtime: custosv1alpha1.AgentRuntime{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}})
	g.Expect(d.Spec.Template.Spec.ImagePullSecrets).To(HaveLen(1))
	g.Expect(*d.Spec.Template.Spec.ImagePullSecrets[0].Name).To(Equal("regcred"))
}
