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
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/lease"
	"github.com/custos-dev/custos/internal/workload"
	"github.com/custos-dev/custos/test/fixtures"
	"github.com/custos-dev/custos/test/leasedoubles"
)

// TestAgentLeases: an agent's kubernetesToken credential becomes a token of
// its own ServiceAccount, bound to a lease Secret its pods mount, recorded
// in the ledger and on the audit trail without its material; a changed
// credential is renewed, a Secret deleted by hand is reissued, and
// suspension revokes the lease: the token stops authenticating at once.
func TestAgentLeases(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("lease")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "leased", tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())
	secretKey := client.ObjectKey{Namespace: ns, Name: "agent-leased.ledger-api"}

	secret := &corev1.Secret{}
	var ledger custosv1alpha1.LeaseStatus
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, secretKey, secret)).To(Succeed())
		g.Expect(secret.Data).To(HaveKey(lease.TokenKey))
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Leases).To(HaveLen(1))
		ledger = a.Status.Leases[0]
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(string(secret.Type)).To(Equal(custosv1alpha1.LeaseSecretType))
	g.Expect(secret.Labels).To(HaveKeyWithValue(custosv1alpha1.CredentialLabel, "ledger-api"))
	g.Expect(secret.OwnerReferences).To(ConsistOf(HaveField("Name", "leased")))
	g.Expect(ledger.Name).To(Equal("ledger-api"))
	g.Expect(ledger.Backend).To(Equal(lease.BackendKubernetesToken))
	g.Expect(ledger.SecretName).To(Equal(secretKey.Name))
	life := ledger.ExpiresAt.Sub(ledger.IssuedAt.Time)
	g.Expect(life).To(BeNumerically("~", 10*time.Minute, time.Minute))
	renewIn := ledger.RenewAt.Sub(ledger.IssuedAt.Time)
	g.Expect(renewIn).To(And(BeNumerically(">=", life*57/100), BeNumerically("<=", life*67/100)), "renewed at 67%% of its life, less up to a tenth")

	// The token is the agent's own, for the credential's audience.
	token := string(secret.Data[lease.TokenKey])
	review := tokenReview(g, token, "ledger-api")
	g.Expect(review.Status.Authenticated).To(BeTrue(), review.Status.Error)
	g.Expect(review.Status.User.Username).To(Equal("system:serviceaccount:" + ns + ":agent-leased"))

	// The pods mount it.
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-leased"}, d)).To(Succeed())
	g.Expect(d.Spec.Template.Spec.Volumes).To(ContainElement(And(
		HaveField("Name", "lease-ledger-api"), HaveField("Secret.SecretName", secretKey.Name))))
	g.Expect(d.Spec.Template.Spec.Containers[0].VolumeMounts).To(ContainElement(And(
		HaveField("MountPath", workload.LeasesDir+"/ledger-api"), HaveField("ReadOnly", true))))

	// A changed credential is a new lease in the same Secret.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Credentials[0].TTL = metav1.Duration{Duration: 20 * time.Minute} })
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, secretKey, secret)).To(Succeed())
		g.Expect(string(secret.Data[lease.TokenKey])).NotTo(Equal(token))
		l := getAgent(g, agent).Status.Leases
		g.Expect(l).To(HaveLen(1))
		g.Expect(l[0].ExpiresAt.Sub(l[0].IssuedAt.Time)).To(BeNumerically("~", 20*time.Minute, time.Minute))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	renewed := string(secret.Data[lease.TokenKey])

	// A Secret deleted by hand revokes the lease; Custos issues a new one.
	g.Expect(k8sClient.Delete(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		fresh := &corev1.Secret{}
		g.Expect(k8sClient.Get(ctx, secretKey, fresh)).To(Succeed())
		g.Expect(fresh.UID).NotTo(Equal(secret.UID))
		g.Expect(fresh.Data).To(HaveKey(lease.TokenKey))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(tokenReview(g, renewed, "ledger-api").Status.Authenticated).To(BeFalse(), "a token bound to a deleted Secret is dead")
	g.Expect(k8sClient.Get(ctx, secretKey, secret)).To(Succeed())
	current := string(secret.Data[lease.TokenKey])

	// Suspended: the lease is revoked and its token dead at once.
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, secretKey, &corev1.Secret{}))).To(BeTrue())
		a := getAgent(g, agent)
		g.Expect(a.Status.Leases).To(BeEmpty())
		g.Expect(a.Status.OutstandingLeases).To(BeEmpty(), "a bound token dies with its Secret: nothing stays valid")
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(tokenReview(g, current, "ledger-api").Status.Authenticated).To(BeFalse(), "revoked on suspension")

	// On the record: issued, renewed, issued again, revoked; never the
	// material, anywhere a user or auditor looks.
	uid := getAgent(g, agent).UID
	g.Eventually(func(g Gomega) {
		var leases []string
		for _, r := range auditTrail(uid) {
			if strings.HasPrefix(r.Action, "lease.") {
				leases = append(leases, r.Action)
			}
		}
		g.Expect(leases).To(Equal([]string{audit.ActionLeaseIssued, audit.ActionLeaseRenewed, audit.ActionLeaseIssued, audit.ActionLeaseRevoked}))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	status, err := json.Marshal(getAgent(g, agent).Status)
	g.Expect(err).NotTo(HaveOccurred())
	records, err := json.Marshal(auditTrail(uid))
	g.Expect(err).NotTo(HaveOccurred())
	var events corev1.EventList
	g.Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
	notes, err := json.Marshal(events.Items)
	g.Expect(err).NotTo(HaveOccurred())
	for _, tok := range []string{token, renewed, current} {
		g.Expect(string(status)).NotTo(ContainSubstring(tok[len(tok)-40:]))
		g.Expect(string(records)).NotTo(ContainSubstring(tok[len(tok)-40:]))
		g.Expect(string(notes)).NotTo(ContainSubstring(tok[len(tok)-40:]))
	}
}

// TestKubernetesTokenCredentialCapped: a kubernetesToken credential asking
// for 12h gets a lease of at most the manager's cap (1h by default), like
// every other backend: a Kubernetes token dies with its Secret, but what it
// was exchanged for meanwhile may not.
func TestKubernetesTokenCredentialCapped(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("cap")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	agent := newAgent(ns, "long", tenant)
	agent.Spec.Credentials[0].TTL = metav1.Duration{Duration: 12 * time.Hour}
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())

	secret := &corev1.Secret{}
	var ledger custosv1alpha1.LeaseStatus
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseSecretName("long", "ledger-api")}, secret)).To(Succeed())
		g.Expect(secret.Data).To(HaveKey(lease.TokenKey))
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
		g.Expect(a.Status.Leases).To(HaveLen(1))
		ledger = a.Status.Leases[0]
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(ledger.ExpiresAt.Sub(ledger.IssuedAt.Time)).To(BeNumerically("<=", time.Hour), "the ledger's lease is capped")

	// The token itself, not only the ledger: its exp - iat.
	parts := strings.Split(string(secret.Data[lease.TokenKey]), ".")
	g.Expect(parts).To(HaveLen(3))
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	g.Expect(err).NotTo(HaveOccurred())
	var claims struct {
		IssuedAt  int64 `json:"iat"`
		ExpiresAt int64 `json:"exp"`
	}
	g.Expect(json.Unmarshal(payload, &claims)).To(Succeed())
	g.Expect(time.Duration(claims.ExpiresAt-claims.IssuedAt)*time.Second).To(BeNumerically("<=", time.Hour), "the token is capped")

	uid := getAgent(g, agent).UID
	g.Eventually(func(g Gomega) {
		var issued []audit.Record
		for _, r := range auditTrail(uid) {
			if r.Action == audit.ActionLeaseIssued {
				issued = append(issued, r)
			}
		}
		g.Expect(issued).To(HaveLen(1))
		ttl, err := time.ParseDuration(issued[0].Details["ttl"])
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ttl).To(BeNumerically("~", time.Hour, time.Minute), "on the record as capped")
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// tokenReview asks the API server whether token authenticates for audience.
func tokenReview(g Gomega, token, audience string) *authenticationv1.TokenReview {
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	g.Expect(k8sClient.Create(context.Background(), review)).To(Succeed())
	return review
}

// TestRenewTimeSpreadsRenewals: 200 leases issued together with the same
// TTL renew spread out: the busiest 10 s holds at most twice the mean.
func TestRenewTimeSpreadsRenewals(t *testing.T) {
	g := NewWithT(t)
	issued := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	expires := issued.Add(15 * time.Minute)
	const leases, window = 200, 10 * time.Second
	var first, last time.Time
	at := make([]time.Time, 0, leases)
	for i := range leases {
		r := renewTime(issued, expires, 67, fmt.Sprintf("uid-%d/%s", i, issued))
		g.Expect(r).To(BeTemporally(">=", issued.Add(15*time.Minute*57/100)))
		g.Expect(r).To(BeTemporally("<=", issued.Add(15*time.Minute*67/100)))
		if first.IsZero() || r.Before(first) {
			first = r
		}
		if r.After(last) {
			last = r
		}
		at = append(at, r)
	}
	g.Expect(renewTime(issued, expires, 67, "same")).To(Equal(renewTime(issued, expires, 67, "same")), "stable for a lease")
	spread := last.Sub(first)
	mean := float64(leases) * float64(window) / float64(spread)
	peak := 0
	for _, start := range at {
		n := 0
		for _, r := range at {
			if !r.Before(start) && r.Before(start.Add(window)) {
				n++
			}
		}
		peak = max(peak, n)
	}
	t.Logf("200 renewals over %s: mean %.1f, peak %d per %s", spread.Round(time.Second), mean, peak, window)
	g.Expect(float64(peak)).To(BeNumerically("<=", 2*mean))
}

// TestAgentSTSLeases: an awsSTS credential is a session of the agent's own
// role, assumed with its ServiceAccount token, delivered as an AWS
// shared-credentials file, its TTL capped; a role that does not trust the
// agent leaves CredentialsIssued False with STS's reason, and no Secret.
func TestAgentSTSLeases(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("sts")
	createBoundary(t, tenant, "eu-west-1")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	role := "arn:aws:iam::111122223333:role/" + tenant + "-reader"
	testSTS.TrustRole(role, leasedoubles.Subject(ns, "agent-reader"))
	awsCredential := custosv1alpha1.CredentialSpec{
		Name: "aws", AWSSTS: &custosv1alpha1.AWSSTSCredential{}, TTL: metav1.Duration{Duration: 2 * time.Hour},
	}
	agent := newAgent(ns, "reader", tenant, fixtures.WithAWSRole(role))
	agent.Spec.Credentials = []custosv1alpha1.CredentialSpec{awsCredential}
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())

	secret := &corev1.Secret{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-reader.aws"}, secret)).To(Succeed())
		g.Expect(secret.Data).To(HaveKey(lease.AWSCredentialsKey))
		a := getAgent(g, agent)
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionTrue, custosv1alpha1.SucceededReason)
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(string(secret.Data[lease.AWSCredentialsKey])).To(HavePrefix("[default]\n"))
	session, ok := testSTS.Session(string(secret.Data[lease.AWSAccessKeyIDKey]))
	g.Expect(ok).To(BeTrue(), "the Secret holds the session STS issued")
	g.Expect(session.RoleARN).To(Equal(role))
	g.Expect(session.Subject).To(Equal(leasedoubles.Subject(ns, "agent-reader")))
	g.Expect(session.DurationSeconds).To(Equal(3600), "STS sessions cannot be revoked: their TTL is capped at an hour")

	// Suspended: the Secret goes, and the session, which STS cannot
	// revoke, is listed as valid at its source until it expires.
	expires := getAgent(g, agent).Status.Leases[0].ExpiresAt
	g.Expect(expires).NotTo(BeNil())
	updateAgent(g, agent, func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })
	g.Eventually(func(g Gomega) {
		g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-reader.aws"}, &corev1.Secret{}))).To(BeTrue())
		a := getAgent(g, agent)
		g.Expect(a.Status.OutstandingLeases).To(ConsistOf(And(HaveField("Name", "aws"), HaveField("Backend", lease.BackendAWSSTS),
			HaveField("ExpiresAt.Time", BeTemporally("==", expires.Time)))))
		c := meta.FindStatusCondition(a.Status.Conditions, custosv1alpha1.CredentialsIssuedCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Message).To(ContainSubstring("1 cannot be revoked at their source and stay valid there until " + expires.UTC().Format(time.RFC3339)))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// A role that does not trust this agent.
	rogue := newAgent(ns, "rogue", tenant, fixtures.WithAWSRole("arn:aws:iam::111122223333:role/"+tenant+"-admin"))
	rogue.Spec.Credentials = []custosv1alpha1.CredentialSpec{awsCredential}
	g.Expect(k8sClient.Create(ctx, rogue)).To(Succeed())
	g.Eventually(func(g Gomega) {
		a := getAgent(g, rogue)
		expectCondition(g, a, custosv1alpha1.CredentialsIssuedCondition, metav1.ConditionFalse, "AccessDenied")
		g.Expect(a.Status.Leases).To(ConsistOf(HaveField("LastError", ContainSubstring("AccessDenied"))))
		g.Expect(kstatusOf(g, a)).NotTo(Equal(status.CurrentStatus))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-rogue.aws"}, &corev1.Secret{}))).To(BeTrue(),
		"no Secret without a lease")
}
