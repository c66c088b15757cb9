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

package boundary

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func rule(groups, resources, verbs []string, names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: groups, Resources: resources, Verbs: verbs, ResourceNames: names}
}

func list(s ...string) []string { return s }

var (
	readVerbs  = list("get", "list", "watch")
	writeVerbs = list("create", "delete", "deletecollection", "patch", "update")
)

// What the built-in edit ClusterRole aggregates (system:aggregate-to-edit),
// in the parts that matter here.
var editRules = []rbacv1.PolicyRule{
	rule(list(""), list("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"), readVerbs),
	rule(list(""), list("serviceaccounts"), list("impersonate")),
	rule(list(""), list("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"), writeVerbs),
	rule(list(""), list("configmaps", "secrets", "serviceaccounts", "services"), writeVerbs),
	rule(list(""), list("serviceaccounts/token"), list("create")),
	rule(list("apps"), list("deployments", "replicasets"), writeVerbs),
	rule(list("networking.k8s.io"), list("networkpolicies"), writeVerbs),
}

// What the built-in view ClusterRole aggregates, in part: no Secrets.
var viewRules = []rbacv1.PolicyRule{
	rule(list(""), list("configmaps", "pods", "pods/log", "pods/status", "serviceaccounts", "services"), readVerbs),
	rule(list("apps"), list("deployments", "replicasets"), readVerbs),
}

func g(verb, group, resource string) RBACGrant {
	return RBACGrant{Verb: verb, Group: group, Resource: resource}
}

var (
	readSecrets = []RBACGrant{g("get", "", "secrets"), g("list", "", "secrets"), g("watch", "", "secrets")}
	editGrants  = append([]RBACGrant{g("impersonate", "", "serviceaccounts")}, readSecrets...)
	impersonate = []RBACGrant{
		g("impersonate", "", "serviceaccounts"), g("impersonate", "", "users"), g("impersonate", "", "groups"),
		g("impersonate", "authentication.k8s.io", "uids"), g("impersonate", "authentication.k8s.io", "userextras/*"),
	}
)

func TestUnsafeGrants(t *testing.T) {
	namespaced := []RBACGrant{}
	for _, u := range unsafeGrants {
		if !u.clusterOnly {
			namespaced = append(namespaced, u.RBACGrant)
		}
	}
	all := []RBACGrant{}
	for _, u := range unsafeGrants {
		all = append(all, u.RBACGrant)
	}

	for _, tc := range []struct {
		name        string
		rules       []rbacv1.PolicyRule
		clusterWide bool
		want        []RBACGrant
	}{
		{name: "edit reads Secrets and impersonates ServiceAccounts", rules: editRules, want: editGrants},
		{name: "view grants nothing of it", rules: viewRules, clusterWide: true},
		{name: "no rules", clusterWide: true},
		{name: "non-resource URLs grant nothing",
			rules: []rbacv1.PolicyRule{{NonResourceURLs: list("*"), Verbs: list("*")}}, clusterWide: true},
		{name: "everything, cluster-wide",
			rules: []rbacv1.PolicyRule{rule(list("*"), list("*"), list("*"))}, clusterWide: true, want: all},
		{name: "everything, in a namespace: cluster-scoped grants do not apply",
			rules: []rbacv1.PolicyRule{rule(list("*"), list("*"), list("*"))}, want: namespaced},
		{name: "impersonate anything",
			rules: []rbacv1.PolicyRule{rule(list("*"), list("*"), list("impersonate"))}, want: impersonate},
		{name: "impersonate one ServiceAccount by name still counts",
			rules: []rbacv1.PolicyRule{rule(list(""), list("serviceaccounts"), list("impersonate"), "agent-invoice")},
			want:  []RBACGrant{g("impersonate", "", "serviceaccounts")}},
		{name: "impersonate users in another group is not impersonation",
			rules: []rbacv1.PolicyRule{rule(list("apps"), list("users"), list("impersonate"))}},
		{name: "impersonating one extra",
			rules: []rbacv1.PolicyRule{rule(list("authentication.k8s.io"), list("userextras/scopes"), list("impersonate"))},
			want:  []RBACGrant{g("impersonate", "authentication.k8s.io", "userextras/*")}},
		{name: "userextras without a key names no extra",
			rules: []rbacv1.PolicyRule{rule(list("authentication.k8s.io"), list("userextras"), list("impersonate"))}},
		{name: "uids",
			rules: []rbacv1.PolicyRule{rule(list("authentication.k8s.io"), list("uids"), list("impersonate"))},
			want:  []RBACGrant{g("impersonate", "authentication.k8s.io", "uids")}},
		{name: "any verb on Secrets",
			rules: []rbacv1.PolicyRule{rule(list(""), list("secrets"), list("*"))}, want: readSecrets},
		{name: "writing Secrets is admission's to see",
			rules: []rbacv1.PolicyRule{rule(list(""), list("secrets"), list("create", "update", "patch", "delete"))}},
		{name: "reading named Secrets that are not leases",
			rules: []rbacv1.PolicyRule{rule(list(""), list("secrets"), readVerbs, "app-config", "agent-invoice", "tls")}},
		{name: "reading a lease by name",
			rules: []rbacv1.PolicyRule{rule(list(""), list("secrets"), list("get"), "app-config", "agent-invoice.ledger-api")},
			want:  []RBACGrant{g("get", "", "secrets")}},
		{name: "use agents/identity",
			rules: []rbacv1.PolicyRule{rule(list("custos.dev"), list("agents/identity"), list("use"))},
			want:  []RBACGrant{g("use", "custos.dev", "agents/identity")}},
		{name: "use on any subresource of custos.dev",
			rules: []rbacv1.PolicyRule{rule(list("custos.dev"), list("*/identity", "*/image"), list("use", "verify"))},
			want:  []RBACGrant{g("use", "custos.dev", "agents/identity"), g("verify", "custos.dev", "agents/image")}},
		{name: "everything on agents is not their identity",
			rules: []rbacv1.PolicyRule{rule(list("custos.dev"), list("agents", "toolsets"), list("*"))}},
		{name: "escalate and bind, in a namespace",
			rules: []rbacv1.PolicyRule{rule(list("rbac.authorization.k8s.io"), list("roles", "clusterroles"), list("escalate", "bind"))},
			want: []RBACGrant{g("escalate", "rbac.authorization.k8s.io", "roles"), g("bind", "rbac.authorization.k8s.io", "roles"),
				g("bind", "rbac.authorization.k8s.io", "clusterroles")}},
		{name: "escalate on ClusterRoles, cluster-wide",
			rules:       []rbacv1.PolicyRule{rule(list("rbac.authorization.k8s.io"), list("clusterroles"), list("escalate"))},
			clusterWide: true, want: []RBACGrant{g("escalate", "rbac.authorization.k8s.io", "clusterroles")}},
		{name: "writing RoleBindings is not bind",
			rules: []rbacv1.PolicyRule{rule(list("rbac.authorization.k8s.io"), list("roles", "rolebindings"), list("create", "update"))}},
		{name: "pods/binding through */binding",
			rules: []rbacv1.PolicyRule{rule(list(""), list("*/binding"), list("create"))},
			want:  []RBACGrant{g("create", "", "pods/binding")}},
		{name: "nodes/proxy, cluster-wide",
			rules:       []rbacv1.PolicyRule{rule(list(""), list("nodes/proxy"), list("get"))},
			clusterWide: true, want: []RBACGrant{g("get", "", "nodes/proxy")}},
		{name: "nodes/proxy in a namespace grants nothing",
			rules: []rbacv1.PolicyRule{rule(list(""), list("nodes/proxy"), list("get", "create"))}},
		{name: "admission policies",
			rules:       []rbacv1.PolicyRule{rule(list("admissionregistration.k8s.io"), list("validatingadmissionpolicybindings"), list("delete"))},
			clusterWide: true, want: []RBACGrant{g("delete", "admissionregistration.k8s.io", "validatingadmissionpolicybindings")}},
		{name: "reading admission policies",
			rules:       []rbacv1.PolicyRule{rule(list("admissionregistration.k8s.io"), list("*"), readVerbs)},
			clusterWide: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(UnsafeGrants(tc.rules, tc.clusterWide)).To(Equal(tc.want))
		})
	}
}

func TestServiceAccountOfUser(t *testing.T) {
	for user, want := range map[string]*types.NamespacedName{
		"system:serviceaccount:tenant-a:ci":     {Namespace: "tenant-a", Name: "ci"},
		"system:serviceaccount:kube-system:foo": {Namespace: "kube-system", Name: "foo"},
		"system:serviceaccount:tenant-a":        nil,
		"system:serviceaccount::ci":             nil,
		"system:serviceaccount:tenant-a:":       nil,
		"system:serviceaccount:a:b:c":           nil,
		"system:serviceaccounts:tenant-a":       nil,
		"alice":                                 nil,
	} {
		t.Run(user, func(t *testing.T) {
			g := NewWithT(t)
			sa, ok := ServiceAccountOfUser(user)
			if want == nil {
				g.Expect(ok).To(BeFalse())
				return
			}
			g.Expect(ok).To(BeTrue())
			g.Expect(sa).To(Equal(*want))
		})
	}
}

func TestExempt(t *testing.T) {
	manager := types.NamespacedName{Namespace: "custos-system", Name: "custos-manager"}
	sa := func(ns, name string) RBACSubject {
		return RBACSubject{Kind: "ServiceAccount", Namespace: ns, Name: name}
	}
	user := func(name string) RBACSubject { return RBACSubject{Kind: "User", Name: name} }
	group := func(name string) RBACSubject { return RBACSubject{Kind: "Group", Name: name} }
	for _, tc := range []struct {
		subject RBACSubject
		manager types.NamespacedName
		want    bool
	}{
		{group("system:masters"), manager, true},
		{group("system:nodes"), manager, true},
		{group("system:bootstrappers:kubeadm:default-node-token"), manager, true},
		{user("system:kube-controller-manager"), manager, true},
		{user("system:kube-scheduler"), manager, true},
		{user("system:node:worker-1"), manager, true},
		{sa("kube-system", "replicaset-controller"), manager, true},
		{group("system:serviceaccounts:kube-system"), manager, true},
		{sa("custos-system", "custos-manager"), manager, true},
		// Not exempt.
		{sa("custos-system", "custos-manager"), types.NamespacedName{}, false},
		{sa("custos-system", "other"), manager, false},
		{sa("tenant-a", "custos-manager"), manager, false},
		{sa("tenant-a", "ci"), manager, false},
		{user("alice@example.com"), manager, false},
		{user("system:anonymous"), manager, false},
		{group("developers"), manager, false},
		{group("system:authenticated"), manager, false},
		{group("system:unauthenticated"), manager, false},
		{group("system:serviceaccounts"), manager, false},
		{group("system:serviceaccounts:tenant-a"), manager, false},
		{group("masters"), manager, false},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.subject, tc.manager), func(t *testing.T) {
			NewWithT(t).Expect(Exempt(tc.subject, tc.manager)).To(Equal(tc.want))
		})
	}
}

// Test RBAC objects.

func clusterRole(name string, lbls map[string]string, rules ...rbacv1.PolicyRule) rbacv1.ClusterRole {
	return rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Rules: rules}
}

func aggregated(name string, lbls map[string]string, selectLabels ...map[string]string) rbacv1.ClusterRole {
	cr := clusterRole(name, lbls)
	cr.AggregationRule = &rbacv1.AggregationRule{}
	for _, l := range selectLabels {
		cr.AggregationRule.ClusterRoleSelectors = append(cr.AggregationRule.ClusterRoleSelectors, metav1.LabelSelector{MatchLabels: l})
	}
	return cr
}

func role(ns, name string, rules ...rbacv1.PolicyRule) rbacv1.Role {
	return rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}
}

func roleBinding(ns, name, kind, roleName string, subjects ...rbacv1.Subject) rbacv1.RoleBinding {
	return rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: roleName},
		Subjects:   subjects,
	}
}

func clusterRoleBinding(name, roleName string, subjects ...rbacv1.Subject) rbacv1.ClusterRoleBinding {
	return rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName},
		Subjects:   subjects,
	}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: "Group", Name: name}
}

func saSubject(ns, name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: "ServiceAccount", Namespace: ns, Name: name}
}

// builtinClusterRoles are edit and view as the API server bootstraps them:
// aggregated, with no rules of their own until kube-controller-manager
// aggregates them (envtest runs none).
func builtinClusterRoles() []rbacv1.ClusterRole {
	const toAdmin, toEdit, toView = "rbac.authorization.k8s.io/aggregate-to-admin", "rbac.authorization.k8s.io/aggregate-to-edit", "rbac.authorization.k8s.io/aggregate-to-view"
	return []rbacv1.ClusterRole{
		aggregated("edit", map[string]string{toAdmin: "true"}, map[string]string{toEdit: "true"}),
		aggregated("view", map[string]string{toEdit: "true"}, map[string]string{toView: "true"}),
		clusterRole("system:aggregate-to-edit", map[string]string{toEdit: "true"}, editRules...),
		clusterRole("system:aggregate-to-view", map[string]string{toView: "true"}, viewRules...),
		clusterRole("cluster-admin", nil, rule(list("*"), list("*"), list("*")), rbacv1.PolicyRule{NonResourceURLs: list("*"), Verbs: list("*")}),
		clusterRole("custos-manager", nil,
			rule(list(""), list("secrets", "serviceaccounts"), list("create", "delete", "get", "list", "patch", "update", "watch")),
			rule(list("custos.dev"), list("agents/identity"), list("use"))),
		clusterRole("custos-agent-viewer", nil, viewRules...),
	}
}

func TestUnsafeRBAC(t *testing.T) {
	manager := types.NamespacedName{Namespace: "custos-system", Name: "custos-manager"}
	base := func() RBACInput {
		return RBACInput{
			Namespaces:   []string{"tenant-a", "tenant-b"},
			ClusterRoles: builtinClusterRoles(),
			Manager:      manager,
		}
	}
	for _, tc := range []struct {
		name  string
		input func(in *RBACInput)
		want  []RBACFinding
	}{
		{name: "nothing bound", input: func(*RBACInput) {}},
		{name: "edit bound in a covered namespace, through aggregation",
			input: func(in *RBACInput) {
				in.RoleBindings = []rbacv1.RoleBinding{roleBinding("tenant-a", "alice-edit", "ClusterRole", "edit", userSubject("alice"))}
			},
			want: []RBACFinding{{Subject: RBACSubject{Kind: "User", Name: "alice"}, Grants: editGrants,
				Bindings: []string{"RoleBinding tenant-a/alice-edit"}}}},
		{name: "edit already aggregated by the controller",
			input: func(in *RBACInput) {
				for i := range in.ClusterRoles {
					if in.ClusterRoles[i].Name == "edit" {
						in.ClusterRoles[i].Rules = append(editRules, viewRules...)
					}
				}
				in.RoleBindings = []rbacv1.RoleBinding{roleBinding("tenant-a", "alice-edit", "ClusterRole", "edit", userSubject("alice"))}
			},
			want: []RBACFinding{{Subject: RBACSubject{Kind: "User", Name: "alice"}, Grants: editGrants,
				Bindings: []string{"RoleBinding tenant-a/alice-edit"}}}},
		{name: "view and the tenant roles are safe",
			input: func(in *RBACInput) {
				in.RoleBindings = []rbacv1.RoleBinding{
					roleBinding("tenant-a", "viewers", "ClusterRole", "view", groupSubject("auditors")),
					roleBinding("tenant-a", "owners", "ClusterRole", "custos-agent-viewer", userSubject("alice")),
				}
			}},
		{name: "a namespace the boundary does not cover",
			input: func(in *RBACInput) {
				in.RoleBindings = []rbacv1.RoleBinding{roleBinding("elsewhere", "alice-edit", "ClusterRole", "edit", userSubject("alice"))}
			}},
		{name: "a boundary that covers no namespace",
			input: func(in *RBACInput) {
				in.Namespaces = nil
				in.ClusterRoleBindings = []rbacv1.ClusterRoleBinding{clusterRoleBinding("admins", "cluster-admin", userSubject("root"))}
			}},
		{name: "a Role of the namespace",
			input: func(in *RBACInput) {
				in.Roles = []rbacv1.Role{
					role("tenant-b", "secret-reader", rule(list(""), list("secrets"), list("list"))),
					role("tenant-a", "secret-reader", rule(list(""), list("configmaps"), list("list"))),
				}
				in.RoleBindings = []rbacv1.RoleBinding{
					roleBinding("tenant-a", "ci", "Role", "secret-reader", saSubject("tenant-a", "ci")),
					roleBinding("tenant-b", "ci", "Role", "secret-reader", saSubject("tenant-a", "ci")),
				}
			},
			want: []RBACFinding{{Subject: RBACSubject{Kind: "ServiceAccount", Namespace: "tenant-a", Name: "ci"},
				Grants: []RBACGrant{g("list", "", "secrets")}, Bindings: []string{"RoleBinding tenant-b/ci"}}}},
		{name: "a binding to a role that does not exist grants nothing",
			input: func(in *RBACInput) {
				in.RoleBindings = []rbacv1.RoleBinding{
					roleBinding("tenant-a", "x", "Role", "missing", userSubject("alice")),
					roleBinding("tenant-a", "y", "ClusterRole", "missing", userSubject("alice")),
				}
			}},
		{name: "a ClusterRoleBinding applies in every namespace; cluster-scoped grants count",
			input: func(in *RBACInput) {
				in.ClusterRoleBindings = []rbacv1.ClusterRoleBinding{
					clusterRoleBinding("monitoring", "node-proxy", saSubject("monitoring", "prometheus")),
				}
				in.ClusterRoles = append(in.ClusterRoles, clusterRole("node-proxy", nil, rule(list(""), list("nodes/proxy", "nodes/metrics"), list("get"))))
			},
			want: []RBACFinding{{Subject: RBACSubject{Kind: "ServiceAccount", Namespace: "monitoring", Name: "prometheus"},
				Grants: []RBACGrant{g("get", "", "nodes/proxy")}, Bindings: []string{"ClusterRoleBinding monitoring"}}}},
		{name: "the control plane's own and the manager are left out",
			input: func(in *RBACInput) {
				in.ClusterRoleBindings = []rbacv1.ClusterRoleBinding{
					clusterRoleBinding("cluster-admin", "cluster-admin", groupSubject("system:masters")),
					clusterRoleBinding("kcm", "cluster-admin", userSubject("system:kube-controller-manager"),
						saSubject("kube-system", "generic-garbage-collector"), userSubject("system:serviceaccount:kube-system:x")),
					clusterRoleBinding("custos-manager", "custos-manager", saSubject("custos-system", "custos-manager")),
				}
				in.RoleBindings = []rbacv1.RoleBinding{
					roleBinding("tenant-a", "manager", "ClusterRole", "edit", userSubject("system:serviceaccount:custos-system:custos-manager")),
				}
			}},
		{name: "everyone is not the control plane",
			input: func(in *RBACInput) {
				in.RoleBindings = []rbacv1.RoleBinding{
					roleBinding("tenant-a", "everyone", "ClusterRole", "edit", groupSubject("system:authenticated"), groupSubject("system:serviceaccounts:tenant-a")),
				}
			},
			want: []RBACFinding{
				{Subject: RBACSubject{Kind: "Group", Name: "system:authenticated"}, Grants: editGrants, Bindings: []string{"RoleBinding tenant-a/everyone"}},
				{Subject: RBACSubject{Kind: "Group", Name: "system:serviceaccounts:tenant-a"}, Grants: editGrants, Bindings: []string{"RoleBinding tenant-a/everyone"}},
			}},
		{name: "a ServiceAccount bound as a user is the ServiceAccount; grants and bindings merge, sorted",
			input: func(in *RBACInput) {
				in.Roles = []rbacv1.Role{role("tenant-b", "binder", rule(list("rbac.authorization.k8s.io"), list("clusterroles"), list("bind")))}
				in.RoleBindings = []rbacv1.RoleBinding{
					roleBinding("tenant-b", "zz", "Role", "binder", userSubject("system:serviceaccount:tenant-a:ci")),
					roleBinding("tenant-a", "ci-edit", "ClusterRole", "edit", saSubject("tenant-a", "ci"), userSubject("bob")),
					roleBinding("tenant-b", "ci-edit", "ClusterRole", "edit", saSubject("tenant-a", "ci")),
				}
			},
			want: []RBACFinding{
				{Subject: RBACSubject{Kind: "ServiceAccount", Namespace: "tenant-a", Name: "ci"},
					Grants:   append(editGrants[:4:4], g("bind", "rbac.authorization.k8s.io", "clusterroles")),
					Bindings: []string{"RoleBinding tenant-a/ci-edit", "RoleBinding tenant-b/ci-edit", "RoleBinding tenant-b/zz"}},
				{Subject: RBACSubject{Kind: "User", Name: "bob"}, Grants: editGrants, Bindings: []string{"RoleBinding tenant-a/ci-edit"}},
			}},
		{name: "a ClusterRoleBinding to a Role is ignored, as the API server refuses it",
			input: func(in *RBACInput) {
				crb := clusterRoleBinding("odd", "edit", userSubject("alice"))
				crb.RoleRef.Kind = "Role"
				in.ClusterRoleBindings = []rbacv1.ClusterRoleBinding{crb}
			}},
		{name: "aggregation cycles end",
			input: func(in *RBACInput) {
				in.ClusterRoles = append(in.ClusterRoles,
					aggregated("a", map[string]string{"x": "b"}, map[string]string{"x": "a"}),
					aggregated("b", map[string]string{"x": "a"}, map[string]string{"x": "b"}),
					clusterRole("c", map[string]string{"x": "a"}, rule(list(""), list("secrets"), list("get"))),
				)
				in.ClusterRoleBindings = []rbacv1.ClusterRoleBinding{clusterRoleBinding("a", "a", userSubject("alice"))}
			},
			want: []RBACFinding{{Subject: RBACSubject{Kind: "User", Name: "alice"}, Grants: []RBACGrant{g("get", "", "secrets")},
				Bindings: []string{"ClusterRoleBinding a"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.input(&in)
			got := UnsafeRBAC(in)
			NewWithT(t).Expect(got).To(Equal(tc.want))
		})
	}
}

func TestFormatRBACFindings(t *testing.T) {
	alice := RBACFinding{
		Subject:  RBACSubject{Kind: "User", Name: "alice"},
		Grants:   editGrants,
		Bindings: []string{"RoleBinding tenant-a/alice-edit"},
	}
	ci := RBACFinding{
		Subject: RBACSubject{Kind: "ServiceAccount", Namespace: "tenant-a", Name: "ci"},
		Grants: []RBACGrant{g("use", "custos.dev", "agents/identity"), g("escalate", "rbac.authorization.k8s.io", "clusterroles"),
			g("bind", "rbac.authorization.k8s.io", "clusterroles"), g("impersonate", "authentication.k8s.io", "userextras/*")},
		Bindings: []string{"ClusterRoleBinding a", "ClusterRoleBinding b", "ClusterRoleBinding c", "ClusterRoleBinding d", "ClusterRoleBinding e"},
	}
	g := NewWithT(t)
	g.Expect(FormatRBACFindings(nil, 5)).To(BeEmpty())
	g.Expect(FormatRBACFindings([]RBACFinding{alice, ci}, 5)).To(Equal(
		"User alice: impersonate serviceaccounts, get/list/watch secrets (RoleBinding tenant-a/alice-edit); " +
			"ServiceAccount tenant-a/ci: use agents.custos.dev/identity, escalate/bind clusterroles.rbac.authorization.k8s.io, " +
			"impersonate userextras.authentication.k8s.io/* (ClusterRoleBinding a, ClusterRoleBinding b, ClusterRoleBinding c and 2 more)"))
	g.Expect(FormatRBACFindings([]RBACFinding{alice, ci}, 1)).To(Equal(
		"User alice: impersonate serviceaccounts, get/list/watch secrets (RoleBinding tenant-a/alice-edit); and 1 more subject"))

	many := make([]RBACFinding, 12)
	for i := range many {
		many[i] = alice
		many[i].Subject.Name = fmt.Sprintf("user-%02d", i)
	}
	msg := FormatRBACFindings(many, 5)
	g.Expect(strings.Count(msg, "User ")).To(Equal(5))
	g.Expect(msg).To(HaveSuffix("User user-04: impersonate serviceaccounts, get/list/watch secrets (RoleBinding tenant-a/alice-edit); and 7 more subjects"))
}
