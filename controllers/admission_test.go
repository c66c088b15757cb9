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
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/test/fixtures"
)

// admissionWorld is what the admission cases run against: two tenants
// with their boundaries and namespaces, and a Toolset in each.
type admissionWorld struct {
	tenant, other     string
	ns, otherNS       string
	plainNS, orphanNS string
}

func newAdmissionWorld(t *testing.T) admissionWorld {
	t.Helper()
	g := NewWithT(t)
	w := admissionWorld{tenant: fixtures.UniqueTenant("adm"), other: fixtures.UniqueTenant("oth")}
	createBoundary(t, w.tenant, "eu-west-1")
	// Only this registry, only EU, only the tenant's own roles.
	updateBoundary(g, w.tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images.Registries = []string{"registry.acme.example/agents/", testRegistry.Host() + "/agents/"}
		// Policy as code: only the finance platform team owns agents here.
		b.Spec.Checks = []custosv1alpha1.PolicyCheck{{
			Name:    "owner-team",
			Message: "agents of this tenant are owned by finance-platform",
			Assert:  runtime.RawExtension{Raw: []byte(`{"agent": {"spec": {"owner": {"team": "finance-platform"}}}}`)},
		}}
	})
	createBoundary(t, w.other, "us-east-1")
	w.ns = fixtures.CreateTenantNamespace(t, k8sClient, w.tenant)
	w.otherNS = fixtures.CreateTenantNamespace(t, k8sClient, w.other)
	// A namespace with no tenant label, and one whose tenant has no boundary.
	w.plainNS = fixtures.Create(t, k8sClient, fixtures.Namespace("plain-", nil)).Name
	w.orphanNS = fixtures.CreateTenantNamespace(t, k8sClient, fixtures.UniqueTenant("nobound"))
	fixtures.Create(t, k8sClient, fixtures.Toolset(w.otherNS, "their-tools", w.other))
	return w
}

// admissionCase is one request admission must refuse, with the field and
// message the client must see.
type admissionCase struct {
	name      string
	obj       func(w admissionWorld) client.Object
	wantField string
	wantMsg   string
}

func TestAdmissionRefusesWhatCrossesABoundary(t *testing.T) {
	w := newAdmissionWorld(t)
	agent := func(mut func(a *custosv1alpha1.Agent)) func(admissionWorld) client.Object {
		return func(w admissionWorld) client.Object {
			a := newAgent(w.ns, "adm-", w.tenant)
			mut(a)
			return a
		}
	}
	toolset := func(mut func(ts *custosv1alpha1.Toolset)) func(admissionWorld) client.Object {
		return func(w admissionWorld) client.Object {
			ts := fixtures.Toolset(w.ns, "adm-", w.tenant)
			mut(ts)
			return ts
		}
	}
	cases := []admissionCase{
		{"agent labelled for another tenant", agent(func(a *custosv1alpha1.Agent) { a.Labels[custosv1alpha1.TenantLabel] = w.other }),
			"metadata.labels[custos.dev/tenant]", `is not the tenant of namespace`},
		{"agent in a namespace without a tenant", agent(func(a *custosv1alpha1.Agent) { a.Namespace = w.plainNS }),
			"metadata.labels[custos.dev/tenant]", "carries no custos.dev/tenant label"},
		{"agent in a namespace no boundary covers", agent(func(a *custosv1alpha1.Agent) {
			a.Namespace = w.orphanNS
			a.Labels[custosv1alpha1.TenantLabel] = orphanTenant(w)
		}), "metadata.namespace", "no DataBoundary covers namespace"},
		{"AWS role of another account", agent(fixtures.WithAWSRole("arn:aws:iam::999999999999:role/" + w.tenant + "-x")), "spec.identity.aws.roleARN", "spec.cloudRoles.awsRoleARNs"},
		{"AWS role of another tenant", agent(fixtures.WithAWSRole(fixtures.AWSRoleARN(w.other + "-x"))), "spec.identity.aws.roleARN", "is not allowed by DataBoundary"},
		{"GCP service account of another project", agent(fixtures.WithGCPServiceAccount("reconciler@elsewhere.iam.gserviceaccount.com")), "spec.identity.gcp.serviceAccount", "spec.cloudRoles.gcpServiceAccounts"},
		{"Azure identity the boundary does not list", agent(fixtures.WithAzureClient("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002")), "spec.identity.azure.clientID", "spec.cloudRoles.azureClientIDs"},
		{"image from an untrusted registry", agent(fixtures.WithImage("docker.io/evil/agent:latest")),
			"spec.image", "spec.images.registries"},
		{"image from a look-alike registry path", agent(fixtures.WithImage("registry.acme.example/agents-evil/x:1")),
			"spec.image", "spec.images.registries"},
		{"Toolset of another tenant", agent(func(a *custosv1alpha1.Agent) {
			a.Spec.ToolsetRefs = []custosv1alpha1.ToolsetReference{{Name: "their-tools", Namespace: w.otherNS}}
		}), "spec.toolsetRefs[0]", "belongs to tenant " + `"` + w.other + `"`},
		{"agent failing the boundary's policy-as-code check", agent(func(a *custosv1alpha1.Agent) { a.Spec.Owner.Team = "payments" }),
			"spec", `check "owner-team" failed: agents of this tenant are owned by finance-platform: agent.spec.owner.team: Invalid value: "payments"`},
		{"agent without a tenant label", agent(func(a *custosv1alpha1.Agent) { delete(a.Labels, custosv1alpha1.TenantLabel) }),
			"metadata.labels[custos.dev/tenant]", "every Agent belongs to a tenant"},

		{"toolset in a region outside residency", toolset(fixtures.WithToolsetRegion("us-east-1")),
			"spec.region", "us-east-1"},
		{"toolset endpoint in another tenant's namespace", toolset(fixtures.WithInClusterNamespace(w.otherNS)), "spec.endpoint.inCluster.namespace", w.otherNS},
		{"toolset reaching outside the allowed egress", toolset(func(ts *custosv1alpha1.Toolset) {
			ts.Spec.Endpoint = custosv1alpha1.ToolEndpoint{External: &custosv1alpha1.ExternalEndpoint{
				Host: "exfil.example", CIDRs: []string{"198.51.100.0/24"}, Port: 443}}
		}), "spec.endpoint.external.cidrs[0]", "198.51.100.0/24"},
		{"toolset with a schema that does not compile", toolset(func(ts *custosv1alpha1.Toolset) {
			ts.Spec.Tools[0].InputSchema = &runtime.RawExtension{Raw: []byte(`{"type": "object", "properties": {"n": {"minimum": "zero"}}}`)}
		}), "spec.tools[0].inputSchema", "/properties/n/minimum"},
		{"toolset labelled for another tenant", toolset(func(ts *custosv1alpha1.Toolset) { ts.Labels[custosv1alpha1.TenantLabel] = w.other }),
			"metadata.labels[custos.dev/tenant]", "is not the tenant of namespace"},
		{"toolset in a namespace no boundary covers", toolset(func(ts *custosv1alpha1.Toolset) {
			ts.Namespace = w.orphanNS
			ts.Labels[custosv1alpha1.TenantLabel] = orphanTenant(w)
			ts.Spec.Endpoint.InCluster.Namespace = w.orphanNS
		}), "metadata.namespace", "no DataBoundary covers namespace"},

		{"namespace claiming a tenant whose boundary covers it not", func(w admissionWorld) client.Object {
			// The other tenant's boundary selects this label value.
			return fixtures.Namespace("adm-", map[string]string{custosv1alpha1.TenantLabel: w.tenant, "team": "x"})
		}, "", ""}, // replaced below
	}
	// A boundary that selects by another label: its namespaces must still
	// carry its tenant.
	teamTenant := fixtures.UniqueTenant("team")
	createBoundary(t, teamTenant, "eu-west-1")
	updateBoundary(NewWithT(t), teamTenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.NamespaceSelector = metav1.LabelSelector{MatchLabels: map[string]string{"team": "blue-" + teamTenant}}
	})
	cases[len(cases)-1] = admissionCase{"namespace covered by a boundary of another tenant", func(w admissionWorld) client.Object {
		return fixtures.Namespace("adm-", map[string]string{custosv1alpha1.TenantLabel: w.tenant, "team": "blue-" + teamTenant})
	}, "metadata.labels[custos.dev/tenant]", `covered by DataBoundary "` + teamTenant + `"`}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := tc.obj(w)
			err := k8sClient.Create(context.Background(), obj)
			if err == nil {
				_ = k8sClient.Delete(context.Background(), obj)
			}
			assertRefused(g, err, tc.wantField, tc.wantMsg)
			g.Expect(obj.GetName()).To(BeEmpty(), "nothing may be stored")
		})
	}
}

// TestAdmissionRefusesChecksThatDoNotCompile: a DataBoundary's checks are
// compiled when it is applied, so a typo fails there and not on every agent.
func TestAdmissionRefusesChecksThatDoNotCompile(t *testing.T) {
	g := NewWithT(t)
	tenant := fixtures.UniqueTenant("chk")
	b := fixtures.DataBoundary(tenant, fixtures.WithChecks(custosv1alpha1.PolicyCheck{
		Name:   "broken",
		Assert: runtime.RawExtension{Raw: []byte(`{"agent": {"(contains(spec.owner.team, )": true}}`)},
	}))
	err := k8sClient.Create(context.Background(), b)
	assertRefused(g, err, "spec.checks[0].assert", `check "broken"`)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(context.Background(), keyOf(b), b))).To(BeTrue(), "nothing may be stored")
}

// orphanTenant is the tenant label of the world's namespace that no
// boundary covers.
func orphanTenant(w admissionWorld) string {
	ns := &corev1.Namespace{}
	if err := k8sClient.Get(context.Background(), client.ObjectKey{Name: w.orphanNS}, ns); err != nil {
		panic(err)
	}
	return ns.Labels[custosv1alpha1.TenantLabel]
}

// TestAdmissionRefusesChangesThatCrossABoundary: updates are checked too,
// and withdrawing access is always allowed.
func TestAdmissionRefusesChangesThatCrossABoundary(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newAdmissionWorld(t)
	agent := newAgent(w.ns, "changing", w.tenant)
	g.Expect(k8sClient.Create(ctx, agent)).To(Succeed())

	change := func(mut func(a *custosv1alpha1.Agent)) error {
		var err error
		for range 20 {
			a := getAgent(g, agent)
			mut(a)
			if err = k8sClient.Update(ctx, a); !apierrors.IsConflict(err) {
				return err
			}
		}
		return err
	}
	assertRefused(g, change(func(a *custosv1alpha1.Agent) { a.Labels[custosv1alpha1.TenantLabel] = w.other }),
		"metadata.labels[custos.dev/tenant]", "the tenant label is immutable")
	assertRefused(g, change(func(a *custosv1alpha1.Agent) { a.Spec.Image = "docker.io/evil/agent:1" }),
		"spec.image", "spec.images.registries")
	g.Expect(getAgent(g, agent).Spec.Image).To(Equal(testImage), "nothing may be stored")

	// Narrow the boundary under the agent: suspending and decommissioning
	// stay possible, anything else is refused.
	updateBoundary(g, w.tenant, func(b *custosv1alpha1.DataBoundary) {
		b.Spec.Images.Registries = []string{"registry.acme.example/other/"}
	})
	g.Eventually(func() error {
		return change(func(a *custosv1alpha1.Agent) { a.Spec.Purpose += " Now with more." })
	}).WithTimeout(eventually).Should(MatchError(ContainSubstring("spec.image")))
	g.Expect(change(func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleSuspended })).To(Succeed())
	g.Expect(change(func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleDecommissioned })).To(Succeed())
	assertRefused(g, change(func(a *custosv1alpha1.Agent) { a.Spec.Lifecycle.State = custosv1alpha1.LifecycleActive }),
		"spec.lifecycle.state", "Decommissioned is final")
}

// TestAdmissionKeepsNamespacesAndTenantsTogether: a namespace's tenant label
// cannot change while Agents live there.
func TestAdmissionKeepsNamespacesAndTenantsTogether(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newAdmissionWorld(t)
	g.Expect(k8sClient.Create(ctx, newAgent(w.ns, "resident", w.tenant))).To(Succeed())
	ns := &corev1.Namespace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: w.ns}, ns)).To(Succeed())
	ns.Labels[custosv1alpha1.TenantLabel] = w.other
	err := k8sClient.Update(ctx, ns)
	assertRefused(g, err, "metadata.labels[custos.dev/tenant]", "cannot change while Agents live in the namespace")
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: w.ns}, ns)).To(Succeed())
	g.Expect(ns.Labels[custosv1alpha1.TenantLabel]).To(Equal(w.tenant), "nothing may be stored")
}

// TestAdmissionRefusesOversizedRequests: the API server refuses bodies over
// 3 MiB before any webhook sees them, with a clear error.
func TestAdmissionRefusesOversizedRequests(t *testing.T) {
	g := NewWithT(t)
	w := newAdmissionWorld(t)
	a := newAgent(w.ns, "huge", w.tenant)
	a.Annotations = map[string]string{"padding": strings.Repeat("x", 3<<20+1024)}
	err := k8sClient.Create(context.Background(), a)
	g.Expect(err).To(HaveOccurred())
	g.Expect(apierrors.IsRequestEntityTooLargeError(err)).To(BeTrue(), "%v", err)
	g.Expect(apierrors.IsNotFound(k8sClient.Get(context.Background(), keyOf(a), &custosv1alpha1.Agent{}))).To(BeTrue())
}

// TestAdmissionDenialsAreAudited: every request a webhook refuses is on the
// audit trail, by the user who sent it, with the rule that refused it.
func TestAdmissionDenialsAreAudited(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	w := newAdmissionWorld(t)
	alice, err := cp.AddUser("alice@acme.example", "system:masters", "acme:agent-owners")
	g.Expect(err).NotTo(HaveOccurred())
	asAlice, err := client.New(alice, client.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())

	agent := newAgent(w.ns, "audited-rogue", w.tenant, fixtures.WithAWSRole("arn:aws:iam::999999999999:role/someone-elses"))
	err = asAlice.Create(ctx, agent)
	assertRefused(g, err, "spec.identity.aws.roleARN", "is not allowed by DataBoundary")

	var denial audit.Record
	g.Eventually(func(g Gomega) {
		var found []audit.Record
		for _, r := range auditRecords.Events() {
			if r.Action == audit.ActionAdmissionDenied && r.Subject != nil && r.Subject.Name == "audited-rogue" {
				found = append(found, r)
			}
		}
		g.Expect(found).To(HaveLen(1))
		denial = found[0]
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Expect(denial.Actor).To(HaveValue(And(
		HaveField("Kind", audit.ActorUser),
		HaveField("Name", "alice@acme.example"),
		HaveField("Groups", ContainElement("acme:agent-owners")),
	)))
	g.Expect(denial.Subject.UID).NotTo(BeEmpty(), "the UID the refused object was given")
	g.Expect(*denial.Subject).To(Equal(audit.Subject{Kind: "Agent", Namespace: w.ns, Name: "audited-rogue", UID: denial.Subject.UID, Tenant: w.tenant}))
	g.Expect(denial.Decision).To(Equal(audit.DecisionDeny))
	g.Expect(denial.Policy).To(Equal("spec.identity.aws.roleARN: FieldValueForbidden"))
	g.Expect(denial.Reason).To(ContainSubstring("arn:aws:iam::999999999999:role/someone-elses"))
	g.Expect(denial.Details).To(HaveKeyWithValue("operation", "CREATE"))
	g.Expect(denial.TraceID).NotTo(BeEmpty(), "the admission request's UID")
}

// TestAuditTrailVerifies: the segment store the suite's records went to
// passes the offline verifier: chain, sequence and signed checkpoints.
func TestAuditTrailVerifies(t *testing.T) {
	g := NewWithT(t)
	g.Expect(auditLog.Flush(context.Background())).To(Succeed())
	report, err := audit.Verify(auditDir, audit.VerifyOptions{Key: auditKey, AllowOpenTail: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(report.Events).To(BeNumerically(">", 0))
	// Once the suite is over, runSuite closes the trail and verifies it
	// whole, up to its final signed checkpoint.
}

// TestNoAgentsWhereTheWebhooksDoNotLook: the webhooks skip kube-system and
// Custos's own namespace, so that a cluster can always be repaired; the
// tenant-label policy still keeps Agents and Toolsets out of them.
func TestNoAgentsWhereTheWebhooksDoNotLook(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "custos-system"}})
	g.Expect(err == nil || apierrors.IsAlreadyExists(err)).To(BeTrue(), "%v", err)
	for _, ns := range []string{"custos-system", "kube-system"} {
		agent := newAgent(ns, "stowaway", "acme-finance")
		assertRefused(g, k8sClient.Create(ctx, agent), "metadata.labels[custos.dev/tenant]",
			"namespace "+ns+" carries no custos.dev/tenant label, so no Agent can live there")
		toolset := fixtures.Toolset(ns, "stowaway", "acme-finance", fixtures.WithExternal("203.0.113.0/24"))
		assertRefused(g, k8sClient.Create(ctx, toolset), "metadata.labels[custos.dev/tenant]",
			"namespace "+ns+" carries no custos.dev/tenant label, so no Toolset can live there")
	}
}
