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

package controllers

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/imagetest"
)

// pastReverify moves the reconcilers' clock past the re-verification
// interval and pokes the agent, as the scheduled re-verification would.
func pastReverify(g Gomega, a *custosv1alpha1.Agent) {
	testClock.Step(11 * time.Minute)
	poke(g, a)
}

// deploymentOf reads the agent's Deployment.
func deploymentOf(g Gomega, a *custosv1alpha1.Agent) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: a.Namespace, Name: "agent-" + a.Name}, d)).To(Succeed())
	return d
}

// bareAgentPod is a pod of agent a as someone might create it around the
// operator: the agent's own Deployment template with another image.
func bareAgentPod(g Gomega, a *custosv1alpha1.Agent, d *appsv1.Deployment, image string) *corev1.Pod {
	tmpl := d.Spec.Template.DeepCopy()
	tmpl.Spec.Containers[0].Image = image
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: a.Name + "-bare-", Namespace: a.Namespace,
			Labels: maps.Clone(tmpl.Labels), Annotations: maps.Clone(tmpl.Annotations)},
		Spec: tmpl.Spec,
	}
}

// pinnedIn is repository@digest of an image reference in the test registry.
func pinnedIn(ref, digest string) string {
	repo, _, _ := strings.Cut(ref[len(testRegistry.Host()):], ":")
	return testRegistry.Host() + repo + "@" + digest
}

// TestImageMustBeSignedByATrustedSigner: an unsigned image and one signed
// by a key the boundary does not trust never run, and say why; once signed
// by a trusted key, the image runs by its digest.
func TestImageMustBeSignedByATrustedSigner(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("img")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	unsignedRef, unsignedDigestRef, err := testRegistry.Push("agents/unsigned:1")
	g.Expect(err).NotTo(HaveOccurred())
	stranger, err := imagetest.NewSigner()
	g.Expect(err).NotTo(HaveOccurred())
	foreignRef, _, err := testRegistry.PushSigned("agents/foreign:1", stranger)
	g.Expect(err).NotTo(HaveOccurred())
	missingBefore := testutil.ToFloat64(imageVerifications.WithLabelValues(custosv1alpha1.SignatureMissingReason))

	unsigned := newAgent(ns, "unsigned", tenant, fixtures.WithImage(unsignedRef))
	foreign := newAgent(ns, "foreign", tenant, fixtures.WithImage(foreignRef))
	g.Expect(k8sClient.Create(ctx, unsigned)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, foreign)).To(Succeed())

	for _, tc := range []struct {
		agent  *custosv1alpha1.Agent
		reason string
		msg    string
	}{
		{unsigned, custosv1alpha1.SignatureMissingReason, "spec.image has no signature: sign it with a key the DataBoundary trusts"},
		{foreign, custosv1alpha1.UntrustedSignerReason, "spec.image is not signed by a signer the DataBoundary trusts"},
	} {
		g.Eventually(func(g Gomega) {
			a := getAgent(g, tc.agent)
			expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, tc.reason)
			g.Expect(conditionMessage(a, custosv1alpha1.ImageVerifiedCondition)).To(HavePrefix(tc.msg))
			expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, tc.reason)
			expectCondition(g, a, custosv1alpha1.WorkloadAvailableCondition, metav1.ConditionFalse, custosv1alpha1.ImageNotVerifiedReason)
			g.Expect(kstatusOf(g, a)).To(Equal(status.FailedStatus))
			g.Expect(a.Status.Image).To(BeNil())
			// Identity and network are in place; only the workload waits.
			expectCondition(g, a, custosv1alpha1.IdentityBoundCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-" + tc.agent.Name}, &appsv1.Deployment{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no Deployment for an image that does not verify: %v", err)
	}
	g.Expect(testutil.ToFloat64(imageVerifications.WithLabelValues(custosv1alpha1.SignatureMissingReason))).To(BeNumerically(">", missingBefore))
	var denied int
	for _, r := range auditTrail(getAgent(g, unsigned).UID) {
		if r.Action == "image.verified" && r.Decision == "deny" {
			denied++
			g.Expect(r.Details).To(HaveKeyWithValue("reason", custosv1alpha1.SignatureMissingReason))
		}
	}
	g.Expect(denied).To(BeNumerically(">=", 1), "the refusal is on the audit trail")

	// The platform team signs it: at the next re-verification it runs, by
	// its digest.
	g.Expect(testRegistry.Sign(unsignedDigestRef, testSigner)).To(Succeed())
	pastReverify(g, unsigned)
	_, digest, _ := strings.Cut(unsignedDigestRef, "@")
	g.Eventually(func(g Gomega) {
		a := getAgent(g, unsigned)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionTrue, custosv1alpha1.VerifiedReason)
		g.Expect(a.Status.Image).NotTo(BeNil())
		g.Expect(a.Status.Image.Digest).To(Equal(digest))
		g.Expect(deploymentOf(g, a).Spec.Template.Spec.Containers[0].Image).To(Equal(unsignedDigestRef))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestImageTagMovedOrRegistryDown: a tag moved to an unsigned image does
// not replace the verified digest, which keeps running; the new digest is
// refused, in the Deployment and at admission. A registry outage changes
// nothing and is retried.
func TestImageTagMovedOrRegistryDown(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("tag")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	ref, digest, err := testRegistry.PushSigned("agents/moving:1", testSigner)
	g.Expect(err).NotTo(HaveOccurred())
	verified := pinnedIn(ref, digest)

	agent := newAgent(ns, "moving", tenant, fixtures.WithImage(ref))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(deploymentOf(g, agent).Spec.Template.Spec.Containers[0].Image).To(Equal(verified))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Someone pushes an unsigned image under the same tag.
	_, movedDigestRef, err := testRegistry.Push("agents/moving:1")
	g.Expect(err).NotTo(HaveOccurred())
	pastReverify(g, agent)
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.SignatureMissingReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ImageVerifiedCondition)).To(And(
			ContainSubstring(movedDigestRef), HaveSuffix("New pods keep running the verified "+verified)))
		g.Expect(a.Status.Image.Digest).To(Equal(digest))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	d := deploymentOf(g, agent)
	g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(verified), "the running digest stays")
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(1))))

	// A pod of the new digest is refused; the verified one is admitted.
	err = k8sClient.Create(ctx, bareAgentPod(g, agent, d, movedDigestRef), client.DryRunAll)
	assertRefused(g, err, "spec.containers[0].image", "run only its verified image, pinned by digest: "+verified)
	g.Expect(k8sClient.Create(ctx, bareAgentPod(g, agent, d, verified), client.DryRunAll)).To(Succeed())

	// The registry goes down: nothing changes but the condition, which is
	// not Stalled: the check is retried.
	testRegistry.SetUnavailable(true)
	defer testRegistry.SetUnavailable(false)
	pastReverify(g, agent)
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.ResolveFailedReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ImageVerifiedCondition)).To(HaveSuffix("pods keep running the verified " + verified))
		g.Expect(findCondition(a, custosv1alpha1.StalledCondition)).To(BeNil())
		expectCondition(g, a, custosv1alpha1.ReconcilingCondition, metav1.ConditionTrue, custosv1alpha1.ResolveFailedReason)
		g.Expect(a.Status.Image.Digest).To(Equal(digest))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(deploymentOf(g, agent).Spec.Template.Spec.Containers[0].Image).To(Equal(verified))
	requests := testRegistry.Requests()

	// It comes back: the retry, with no help, finds the tag still unsigned.
	testRegistry.SetUnavailable(false)
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.SignatureMissingReason)
		g.Expect(a.Status.Image.Digest).To(Equal(digest))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(testRegistry.Requests()).To(BeNumerically(">", requests), "retried")
}

// TestImageSignerRotatedOut: when the boundary stops trusting the key that
// signed the running digest, new pods are refused at once (Block); with
// onVerificationFailure Suspend the agent is suspended too. Signed by the
// new key, it runs again.
func TestImageSignerRotatedOut(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("rot")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	ref, digest, err := testRegistry.PushSigned("agents/rotating:1", testSigner)
	g.Expect(err).NotTo(HaveOccurred())
	verified := pinnedIn(ref, digest)
	agent := newAgent(ns, "rotating", tenant, fixtures.WithImage(ref))
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func() error { return fixtures.MarkRolledOut(k8sClient, ns, "agent-rotating") }).WithTimeout(eventually).Should(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ReadyCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The platform team rotates to a new key, in a new Secret.
	next, err := imagetest.NewSigner()
	g.Expect(err).NotTo(HaveOccurred())
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: trustNamespace, Name: tenant + "-signers"},
		Data:       map[string][]byte{"cosign.pub": next.PublicKeyPEM()},
	}
	g.Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), secret) })
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images.PublicKeys = []custosv1alpha1.TrustSource{{SecretRef: &custosv1alpha1.ObjectKeyReference{
			Namespace: trustNamespace, Name: secret.Name, Key: "cosign.pub"}}}
	})
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.UntrustedSignerReason)
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.UntrustedSignerReason)
		g.Expect(a.Status.Image).To(BeNil(), "no digest is verified any more")
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseActive), "Block does not suspend")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	d := deploymentOf(g, agent)
	g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(1))), "Block leaves the running pods be")
	g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(verified))
	err = k8sClient.Create(ctx, bareAgentPod(g, agent, d, verified), client.DryRunAll)
	assertRefused(g, err, "spec.containers[0].image", "agent rotating has no verified image (ImageVerified False, UntrustedSigner")

	// Suspend: scaled to zero, deny-all, leases revoked.
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images.OnVerificationFailure = custosv1alpha1.ImageFailureSuspend
	})
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseSuspended))
		expectCondition(g, a, custosv1alpha1.ReadyCondition, metav1.ConditionFalse, custosv1alpha1.UntrustedSignerReason)
		g.Expect(a.Status.Leases).To(BeEmpty(), "leases revoked")
		g.Expect(deploymentOf(g, a).Spec.Replicas).To(HaveValue(Equal(int32(0))))
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-rotating"}, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(BeEmpty())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// An outage while suspended changes nothing: no lease, no egress.
	testRegistry.SetUnavailable(true)
	pastReverify(g, agent)
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.ResolveFailedReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		a := getAgent(g, agent)
		g.Expect(a.Status.Lifecycle.Phase).To(Equal(custosv1alpha1.AgentPhaseSuspended))
		g.Expect(a.Status.Leases).To(BeEmpty())
		g.Expect(deploymentOf(g, a).Spec.Replicas).To(HaveValue(Equal(int32(0))))
		np := &networkingv1.NetworkPolicy{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-rotating"}, np)).To(Succeed())
		g.Expect(np.Spec.Egress).To(BeEmpty())
	}).WithTimeout(3 * time.Second).WithPolling(poll).Should(Succeed())
	testRegistry.SetUnavailable(false)

	// Signed with the new key, it verifies at the next check and resumes.
	g.Expect(testRegistry.Sign(verified, next)).To(Succeed())
	pastReverify(g, agent)
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionTrue, custosv1alpha1.VerifiedReason)
		g.Expect(a.Status.Image.Digest).To(Equal(digest))
		g.Expect(deploymentOf(g, a).Spec.Replicas).To(HaveValue(Equal(int32(1))))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestImagePolicyNeedsItsKeyMaterial: a boundary that trusts no signer runs
// no agent; one whose key Secret is missing says which field names it, and
// recovers on its own once the Secret exists.
func TestImagePolicyNeedsItsKeyMaterial(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("key")
	b := createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) { b.Spec.Images = nil })
	agent := newAgent(ns, "keyless", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.NoTrustedSignersReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ImageVerifiedCondition)).To(ContainSubstring("trusts no image signer"))
		expectCondition(g, a, custosv1alpha1.StalledCondition, metav1.ConditionTrue, custosv1alpha1.NoTrustedSignersReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		got := &custosv1alpha1.DataBoundary{}
		g.Expect(k8sClient.Get(ctx, keyOf(b), got)).To(Succeed())
		g.Expect(conditionMessageOf(got.Status.Conditions, custosv1alpha1.ReadyCondition)).To(ContainSubstring("trusts no image signer"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	missing := tenant + "-later"
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images = &custosv1alpha1.ImagePolicy{PublicKeys: []custosv1alpha1.TrustSource{{SecretRef: &custosv1alpha1.ObjectKeyReference{
			Namespace: trustNamespace, Name: missing, Key: "cosign.pub"}}}}
	})
	wantMsg := `spec.images.publicKeys[0].secretRef: Not found: "Secret ` + trustNamespace + "/" + missing + `"`
	g.Eventually(func(g Gomega) {
		got := &custosv1alpha1.DataBoundary{}
		g.Expect(k8sClient.Get(ctx, keyOf(b), got)).To(Succeed())
		g.Expect(conditionMessageOf(got.Status.Conditions, custosv1alpha1.StalledCondition)).To(ContainSubstring(wantMsg))
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.InvalidImagePolicyReason)
		g.Expect(conditionMessage(a, custosv1alpha1.ImageVerifiedCondition)).To(ContainSubstring(wantMsg))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// GitOps applied the Secret last: everything converges without a touch.
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: trustNamespace, Name: missing},
		Data:       map[string][]byte{"cosign.pub": testSigner.PublicKeyPEM()},
	}
	g.Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), secret) })
	g.Eventually(func(g Gomega) {
		got := &custosv1alpha1.DataBoundary{}
		g.Expect(k8sClient.Get(ctx, keyOf(b), got)).To(Succeed())
		g.Expect(got.Status.ImagePolicyHash).To(HavePrefix("sha256:"))
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionTrue, custosv1alpha1.VerifiedReason)
		g.Expect(a.Status.Image.PolicyHash).To(Equal(got.Status.ImagePolicyHash))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// conditionMessageOf is the message of a condition of a list, "" when absent.
func conditionMessageOf(conditions []metav1.Condition, conditionType string) string {
	for _, c := range conditions {
		if c.Type == conditionType {
			return c.Message
		}
	}
	return ""
}

// TestImageKeylessSigner: a boundary trusts a keyless identity (issuer and
// subject of the signing certificate) verified offline against a trusted
// root in a ConfigMap; a certificate for another subject does not verify.
func TestImageKeylessSigner(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sky")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)

	ca, err := imagetest.NewCA()
	g.Expect(err).NotTo(HaveOccurred())
	trustedRoot, err := ca.TrustedRoot()
	g.Expect(err).NotTo(HaveOccurred())
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: trustNamespace, Name: tenant + "-sigstore"},
		Data:       map[string]string{"trusted_root.json": string(trustedRoot)},
	}
	g.Expect(k8sClient.Create(ctx, cm)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), cm) })
	const issuer = "https://token.actions.example"
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images = &custosv1alpha1.ImagePolicy{
			Keyless: []custosv1alpha1.KeylessIdentity{{Issuer: issuer, SubjectRegExp: `^release@acme\.example$`}},
			TrustedRoot: &custosv1alpha1.TrustSource{ConfigMapRef: &custosv1alpha1.ObjectKeyReference{
				Namespace: trustNamespace, Name: cm.Name, Key: "trusted_root.json"}},
		}
	})

	release, err := ca.Signer(issuer, "release@acme.example")
	g.Expect(err).NotTo(HaveOccurred())
	intern, err := ca.Signer(issuer, "intern@acme.example")
	g.Expect(err).NotTo(HaveOccurred())
	goodRef, goodDigest, err := testRegistry.PushSigned("agents/keyless:1", release)
	g.Expect(err).NotTo(HaveOccurred())
	badRef, _, err := testRegistry.PushSigned("agents/keyless:2", intern)
	g.Expect(err).NotTo(HaveOccurred())

	good := newAgent(ns, "released", tenant, fixtures.WithImage(goodRef))
	bad := newAgent(ns, "unreleased", tenant, fixtures.WithImage(badRef))
	g.Expect(k8sClient.Create(ctx, good)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, bad)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, good)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionTrue, custosv1alpha1.VerifiedReason)
		g.Expect(a.Status.Image.Digest).To(Equal(goodDigest))
		g.Expect(a.Status.Image.Signer).To(Equal("release@acme.example (" + issuer + ")"))
		g.Expect(deploymentOf(g, a).Spec.Template.Spec.Containers[0].Image).To(Equal(pinnedIn(goodRef, goodDigest)))
		expectCondition(g, getAgent(g, bad), custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.UntrustedSignerReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestImageKeyRotatedInItsSecret: a key replaced inside the Secret the
// boundary names (no change to the boundary) is noticed at the next read of
// the key material, and, while the registry is down, the digest signed by
// the old key is no longer trusted either: judged offline.
func TestImageKeyRotatedInItsSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sec")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: trustNamespace, Name: tenant + "-signers"},
		Data:       map[string][]byte{"cosign.pub": testSigner.PublicKeyPEM()},
	}
	g.Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), secret) })
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images.PublicKeys = []custosv1alpha1.TrustSource{{SecretRef: &custosv1alpha1.ObjectKeyReference{
			Namespace: trustNamespace, Name: secret.Name, Key: "cosign.pub"}}}
	})
	agent := newAgent(ns, "kept", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ImageVerifiedCondition, metav1.ConditionTrue, custosv1alpha1.VerifiedReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The registry is down when the platform team replaces the key.
	testRegistry.SetUnavailable(true)
	defer testRegistry.SetUnavailable(false)
	next, err := imagetest.NewSigner()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8sClient.Get(ctx, keyOf(secret), secret)).To(Succeed())
	secret.Data["cosign.pub"] = next.PublicKeyPEM()
	g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.ResolveFailedReason)
		g.Expect(a.Status.Image).To(BeNil(), "a digest signed by a key rotated out is not trusted while the registry is down")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	d := deploymentOf(g, agent)
	err = k8sClient.Create(ctx, bareAgentPod(g, agent, d, testPinned()), client.DryRunAll)
	assertRefused(g, err, "spec.containers[0].image", "agent kept has no verified image")

	// Back up: the verdict is final, told once on the audit trail.
	testRegistry.SetUnavailable(false)
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.UntrustedSignerReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	pastReverify(g, agent)
	untrusted := func() int {
		n := 0
		for _, r := range auditTrail(getAgent(g, agent).UID) {
			if r.Action == "image.verified" && r.Details["reason"] == custosv1alpha1.UntrustedSignerReason {
				n++
			}
		}
		return n
	}
	// The record is written once the status is: wait for it, then hold.
	g.Eventually(untrusted).WithTimeout(eventually).WithPolling(poll).Should(Equal(1), "a refusal that stands is recorded")
	g.Consistently(untrusted).WithTimeout(3*time.Second).WithPolling(poll).Should(Equal(1), "a refusal that stands is recorded once")
}

// TestImageTagDeploymentFromBeforeVerificationStops: a Deployment that runs
// a tag (made before Custos verified images) is scaled to zero while no
// digest verifies: a restarting container would pull whatever the tag is.
func TestImageTagDeploymentFromBeforeVerificationStops(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("old")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	updateBoundary(g, tenant, func(b *custosv1alpha1.DataBoundary) { b.Spec.Images = nil })
	agent := newAgent(ns, "legacy", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		expectCondition(g, getAgent(g, agent), custosv1alpha1.ImageVerifiedCondition, metav1.ConditionFalse, custosv1alpha1.NoTrustedSignersReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	// The Deployment an earlier Custos made for it, running the tag.
	labels := map[string]string{
		custosv1alpha1.AgentLabel: "legacy", custosv1alpha1.AgentUIDLabel: string(getAgent(g, agent).UID),
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue, custosv1alpha1.TenantLabel: tenant,
	}
	legacy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "agent-legacy", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Agent",
				Name: "legacy", UID: getAgent(g, agent).UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{
				custosv1alpha1.AgentLabel: "legacy", custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: testImage}}},
			},
		},
	}
	g.Expect(k8sClient.Create(ctx, legacy)).To(Succeed())
	poke(g, agent)
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		g.Expect(k8sClient.Get(ctx, keyOf(legacy), d)).To(Succeed())
		g.Expect(d.Spec.Replicas).To(HaveValue(Equal(int32(0))))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestOnlyCustosSetsTheImageAnAgentRuns: status.image decides what the pod
// guard admits, so someone allowed to write agents/status, but not to
// verify agent images, cannot set it; taking it away is allowed.
func TestOnlyCustosSetsTheImageAnAgentRuns(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sts")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "guarded", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(getAgent(g, agent).Status.Image).NotTo(BeNil())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "status-writer"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"custos.dev"}, Resources: []string{"agents", "agents/status"},
			Verbs: []string{"get", "update", "patch"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "status-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "support-bot"}},
	}
	g.Expect(k8sClient.Create(ctx, role)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, binding)).To(Succeed())
	cfg, err := cp.AddUser("support-bot")
	g.Expect(err).NotTo(HaveOccurred())
	bot, err := client.New(cfg, client.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())

	forged := "sha256:" + strings.Repeat("f", 64)
	g.Eventually(func() error {
		a := &custosv1alpha1.Agent{}
		if err := bot.Get(ctx, keyOf(agent), a); err != nil {
			return err
		}
		a.Status.Image.Digest = forged
		return bot.Status().Update(ctx, a)
	}).WithTimeout(eventually).Should(MatchError(ContainSubstring(
		"status.image: Forbidden: only Custos, which verifies agent images (verb verify on agents/image), sets the image agent guarded runs")))
	g.Expect(getAgent(g, agent).Status.Image.Digest).To(Equal(testImageDigest), "nothing may be stored")

	// Taking the image away only takes trust away.
	g.Eventually(func() error {
		a := &custosv1alpha1.Agent{}
		if err := bot.Get(ctx, keyOf(agent), a); err != nil {
			return err
		}
		a.Status.Image = nil
		return bot.Status().Update(ctx, a)
	}).WithTimeout(eventually).Should(Succeed())
}
