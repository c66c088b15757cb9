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

// The RBAC report of a DataBoundary: which subjects RBAC allows, in the
// namespaces the boundary covers, what Custos's admission controls cannot
// see or stop. Admission sees writes only, and sees them as the user the
// API server authenticated: a read, an impersonated request, a pod bound
// straight to a node or a call through a kubelet never reaches a policy
// as the tenant who made it, and RBAC escalation or "use" of an agent's
// identity passes the policies by design. The rules are pure, so that the
// DataBoundary reconciler and the chart's tests (its tenant roles must
// grant none of this) cannot disagree.

import (
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	agentidentity "github.com/custos-dev/custos/internal/identity"
)

// RBACGrant is one permission: a verb on a resource of an API group, as
// RBAC rules name them. Resource may carry a subresource
// ("pods/binding"); "userextras/*" stands for every extra a request may
// impersonate (the authorizer sees userextras/<key>).
type RBACGrant struct {
	Verb     string
	Group    string
	Resource string
}

// String writes the grant as kubectl names resources: "impersonate
// serviceaccounts", "use agents.custos.dev/identity".
func (g RBACGrant) String() string {
	return g.Verb + " " + g.resourceName()
}

func (g RBACGrant) resourceName() string {
	res, sub, hasSub := strings.Cut(g.Resource, "/")
	if g.Group != "" {
		res += "." + g.Group
	}
	if hasSub {
		res += "/" + sub
	}
	return res
}

// unsafeGrant is a grant the report flags, and where RBAC can grant it.
type unsafeGrant struct {
	RBACGrant
	// clusterOnly: only a ClusterRoleBinding grants it. The resource is
	// cluster-scoped (nodes) or the verb is checked without a namespace
	// (escalate on a ClusterRole), so a RoleBinding to a rule naming it
	// grants nothing.
	clusterOnly bool
}

const (
	coreGroup  = ""
	rbacGroup  = rbacv1.GroupName
	authnGroup = "authentication.k8s.io"
	custos     = "custos.dev"
	admission  = "admissionregistration.k8s.io"
)

// unsafeGrants are what the report flags, in the order it names them.
var unsafeGrants = []unsafeGrant{
	// Impersonation: admission sees the impersonated user (say, another
	// ServiceAccount, or a member of system:masters), not the tenant.
	{RBACGrant: RBACGrant{"impersonate", coreGroup, "serviceaccounts"}},
	{RBACGrant: RBACGrant{"impersonate", coreGroup, "users"}},
	{RBACGrant: RBACGrant{"impersonate", coreGroup, "groups"}},
	{RBACGrant: RBACGrant{"impersonate", authnGroup, "uids"}},
	{RBACGrant: RBACGrant{"impersonate", authnGroup, "userextras/*"}},
	// Reading Secrets reads the agents' lease Secrets: admission never sees
	// a read. (Rules limited by resourceNames to Secrets that are not
	// leases are not flagged; see grants.)
	{RBACGrant: RBACGrant{"get", coreGroup, "secrets"}},
	{RBACGrant: RBACGrant{"list", coreGroup, "secrets"}},
	{RBACGrant: RBACGrant{"watch", coreGroup, "secrets"}},
	// What the manager holds: the containment policies let whoever may
	// "use" agents/identity write an agent's identity and run pods as it,
	// and whoever may "verify" agents/image set the digest its pods run.
	{RBACGrant: RBACGrant{"use", custos, "agents/identity"}},
	{RBACGrant: RBACGrant{"verify", custos, "agents/image"}},
	// RBAC escalation: granting oneself (or binding) what one does not
	// hold, impersonate included.
	{RBACGrant: RBACGrant{"escalate", rbacGroup, "roles"}},
	{RBACGrant: RBACGrant{"bind", rbacGroup, "roles"}},
	{RBACGrant: RBACGrant{"escalate", rbacGroup, "clusterroles"}, clusterOnly: true},
	// bind on clusterroles in a namespace lets a RoleBinding there refer
	// to any ClusterRole (cluster-admin included).
	{RBACGrant: RBACGrant{"bind", rbacGroup, "clusterroles"}},
	// Binding a pod to a node places it without the scheduler, on a node
	// outside the boundary's regions; the binding subresource is not what
	// the pod policies watch.
	{RBACGrant: RBACGrant{"create", coreGroup, "pods/binding"}},
	// The kubelet's API through the API server's node proxy: exec, attach
	// and port-forward into any pod on the node, agents' included, without
	// admission. The kubelet authorizes exec over WebSocket (an HTTP GET)
	// as get, so get counts as much as create.
	{RBACGrant: RBACGrant{"get", coreGroup, "nodes/proxy"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"create", coreGroup, "nodes/proxy"}, clusterOnly: true},
	// Admission itself: admission policies and webhook configurations are
	// never subject to admission, so whoever writes them can switch
	// Custos's containment off.
	{RBACGrant: RBACGrant{"create", admission, "validatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"update", admission, "validatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"patch", admission, "validatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"delete", admission, "validatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"create", admission, "validatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"update", admission, "validatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"patch", admission, "validatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"delete", admission, "validatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"create", admission, "mutatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"update", admission, "mutatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"patch", admission, "mutatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"delete", admission, "mutatingadmissionpolicies"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"create", admission, "mutatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"update", admission, "mutatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"patch", admission, "mutatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"delete", admission, "mutatingadmissionpolicybindings"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"update", admission, "validatingwebhookconfigurations"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"patch", admission, "validatingwebhookconfigurations"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"delete", admission, "validatingwebhookconfigurations"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"update", admission, "mutatingwebhookconfigurations"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"patch", admission, "mutatingwebhookconfigurations"}, clusterOnly: true},
	{RBACGrant: RBACGrant{"delete", admission, "mutatingwebhookconfigurations"}, clusterOnly: true},
}

// UnsafeGrants returns what rules grant of the permissions the RBAC report
// flags, in the report's order, each once. clusterWide says whether the
// rules apply through a ClusterRoleBinding; through a RoleBinding, rules on
// cluster-scoped resources grant nothing and are not counted. A rule with
// '*' counts for whatever it stands for.
func UnsafeGrants(rules []rbacv1.PolicyRule, clusterWide bool) []RBACGrant {
	var out []RBACGrant
	for _, u := range unsafeGrants {
		if u.clusterOnly && !clusterWide {
			continue
		}
		if slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return grants(r, u.RBACGrant) }) {
			out = append(out, u.RBACGrant)
		}
	}
	return out
}

// grants reports whether rule grants g, matching verbs, groups and
// resources as the RBAC authorizer does ('*', and "*/<subresource>").
func grants(rule rbacv1.PolicyRule, g RBACGrant) bool {
	if !matches(rule.Verbs, g.Verb) || !matches(rule.APIGroups, g.Group) || !resourceMatches(rule.Resources, g.Resource) {
		return false
	}
	// A rule limited to named Secrets that cannot be leases reads no lease.
	// Every other grant counts whatever names it is limited to: one
	// impersonated ServiceAccount, or one agent's identity, is enough.
	if g.Resource == "secrets" && len(rule.ResourceNames) > 0 {
		return slices.ContainsFunc(rule.ResourceNames, isLeaseName)
	}
	return true
}

func isLeaseName(name string) bool {
	_, _, ok := agentidentity.LeaseOf(name)
	return ok
}

func matches(ruleValues []string, want string) bool {
	return slices.Contains(ruleValues, "*") || slices.Contains(ruleValues, want)
}

func resourceMatches(ruleResources []string, want string) bool {
	res, sub, hasSub := strings.Cut(want, "/")
	for _, rr := range ruleResources {
		switch {
		case rr == rbacv1.ResourceAll || rr == want:
			return true
		case sub == "*":
			// Any subresource of res: userextras/<key>, or */<key>.
			if strings.HasPrefix(rr, res+"/") || strings.HasPrefix(rr, "*/") {
				return true
			}
		case hasSub && rr == "*/"+sub:
			return true
		}
	}
	return false
}

// RBACSubject is whom a binding grants to, as the authorizer matches
// requests: a ServiceAccount by namespace and name (also when it is bound
// as the User system:serviceaccount:<namespace>:<name>), a User or a Group
// by name.
type RBACSubject struct {
	// Kind is rbacv1.ServiceAccountKind, rbacv1.UserKind or rbacv1.GroupKind.
	Kind      string
	Namespace string
	Name      string
}

// String names the subject as the report does: "User alice",
// "ServiceAccount tenant-a/ci".
func (s RBACSubject) String() string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return s.Kind + " " + s.Namespace + "/" + s.Name
	}
	return s.Kind + " " + s.Name
}

// ServiceAccountOfUser returns the ServiceAccount a user name stands for,
// "system:serviceaccount:<namespace>:<name>"; ok is false for any other
// user.
func ServiceAccountOfUser(user string) (sa types.NamespacedName, ok bool) {
	rest, found := strings.CutPrefix(user, "system:serviceaccount:")
	if !found {
		return types.NamespacedName{}, false
	}
	ns, name, found := strings.Cut(rest, ":")
	if !found || ns == "" || name == "" || strings.Contains(name, ":") {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: ns, Name: name}, true
}

// subjectOf normalizes a binding's subject; ok is false for a kind RBAC
// does not know. bindingNamespace stands in for a ServiceAccount's missing
// namespace, as the authorizer reads a RoleBinding's.
func subjectOf(s rbacv1.Subject, bindingNamespace string) (RBACSubject, bool) {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		ns := s.Namespace
		if ns == "" {
			ns = bindingNamespace
		}
		return RBACSubject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: s.Name}, true
	case rbacv1.UserKind:
		if sa, ok := ServiceAccountOfUser(s.Name); ok {
			return RBACSubject{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}, true
		}
		return RBACSubject{Kind: rbacv1.UserKind, Name: s.Name}, true
	case rbacv1.GroupKind:
		return RBACSubject{Kind: rbacv1.GroupKind, Name: s.Name}, true
	}
	return RBACSubject{}, false
}

// Exempt reports whether the RBAC report leaves s out: the control plane's
// own identities (system:masters, other system: users and groups,
// ServiceAccounts in kube-system) and Custos's manager, whose grants are
// the point. Names under system: that stand for people or workloads are
// reported all the same: system:authenticated and system:unauthenticated
// (everyone), system:anonymous, and the ServiceAccount groups
// system:serviceaccounts and system:serviceaccounts:<namespace> (but for
// kube-system's).
func Exempt(s RBACSubject, manager types.NamespacedName) bool {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Namespace == metav1.NamespaceSystem {
			return true
		}
		return manager.Name != "" && s.Namespace == manager.Namespace && s.Name == manager.Name
	case rbacv1.GroupKind:
		switch {
		case s.Name == "system:authenticated", s.Name == "system:unauthenticated", s.Name == "system:serviceaccounts":
			return false
		case strings.HasPrefix(s.Name, "system:serviceaccounts:"):
			return s.Name == "system:serviceaccounts:"+metav1.NamespaceSystem
		}
		return strings.HasPrefix(s.Name, "system:") // system:masters among them
	case rbacv1.UserKind:
		return s.Name != "system:anonymous" && strings.HasPrefix(s.Name, "system:")
	}
	return false
}

// RBACInput is what the RBAC report of a DataBoundary is computed over.
type RBACInput struct {
	// Namespaces the boundary covers. RoleBindings elsewhere are left out;
	// ClusterRoleBindings apply in every namespace, so they count as soon
	// as the boundary covers one.
	Namespaces []string

	// Roles and RoleBindings of those namespaces (others are ignored).
	Roles        []rbacv1.Role
	RoleBindings []rbacv1.RoleBinding

	// Every ClusterRole (RoleBindings refer to them too, and aggregated
	// ones are resolved here) and every ClusterRoleBinding.
	ClusterRoles        []rbacv1.ClusterRole
	ClusterRoleBindings []rbacv1.ClusterRoleBinding

	// Manager is the ServiceAccount Custos's manager runs as, whose grants
	// are the point; empty leaves out no ServiceAccount for it.
	Manager types.NamespacedName
}

// RBACFinding is a subject that RBAC allows, in the boundary's namespaces,
// what admission cannot see or stop.
type RBACFinding struct {
	Subject RBACSubject
	// Grants, in the report's order (UnsafeGrants), each once.
	Grants []RBACGrant
	// Bindings that grant them: "RoleBinding <namespace>/<name>" or
	// "ClusterRoleBinding <name>", sorted.
	Bindings []string
}

// UnsafeRBAC returns the subjects RBAC allows, in the namespaces in
// covers, what admission cannot see or stop, sorted by kind, namespace and
// name. A binding to a role that does not exist grants nothing (yet).
func UnsafeRBAC(in RBACInput) []RBACFinding {
	if len(in.Namespaces) == 0 {
		return nil
	}
	covered := make(map[string]bool, len(in.Namespaces))
	for _, ns := range in.Namespaces {
		covered[ns] = true
	}
	roles := make(map[types.NamespacedName]*rbacv1.Role, len(in.Roles))
	for i := range in.Roles {
		r := &in.Roles[i]
		roles[types.NamespacedName{Namespace: r.Namespace, Name: r.Name}] = r
	}
	crs := newClusterRoleRules(in.ClusterRoles)

	type found struct {
		grants   map[RBACGrant]bool
		bindings []string
	}
	bySubject := map[RBACSubject]*found{}
	add := func(binding, bindingNamespace string, subjects []rbacv1.Subject, gs []RBACGrant) {
		if len(gs) == 0 {
			return
		}
		for _, s := range subjects {
			subj, ok := subjectOf(s, bindingNamespace)
			if !ok || Exempt(subj, in.Manager) {
				continue
			}
			f := bySubject[subj]
			if f == nil {
				f = &found{grants: map[RBACGrant]bool{}}
				bySubject[subj] = f
			}
			for _, g := range gs {
				f.grants[g] = true
			}
			if !slices.Contains(f.bindings, binding) {
				f.bindings = append(f.bindings, binding)
			}
		}
	}

	for i := range in.RoleBindings {
		rb := &in.RoleBindings[i]
		if !covered[rb.Namespace] {
			continue
		}
		var rules []rbacv1.PolicyRule
		switch rb.RoleRef.Kind {
		case "Role":
			if r := roles[types.NamespacedName{Namespace: rb.Namespace, Name: rb.RoleRef.Name}]; r != nil {
				rules = r.Rules
			}
		case "ClusterRole":
			rules = crs.rulesOf(rb.RoleRef.Name)
		}
		add("RoleBinding "+rb.Namespace+"/"+rb.Name, rb.Namespace, rb.Subjects, UnsafeGrants(rules, false))
	}
	for i := range in.ClusterRoleBindings {
		crb := &in.ClusterRoleBindings[i]
		if crb.RoleRef.Kind != "ClusterRole" {
			continue
		}
		add("ClusterRoleBinding "+crb.Name, "", crb.Subjects, UnsafeGrants(crs.rulesOf(crb.RoleRef.Name), true))
	}

	if len(bySubject) == 0 {
		return nil
	}
	findings := make([]RBACFinding, 0, len(bySubject))
	for subj, f := range bySubject {
		fd := RBACFinding{Subject: subj, Bindings: f.bindings}
		for _, u := range unsafeGrants {
			if f.grants[u.RBACGrant] {
				fd.Grants = append(fd.Grants, u.RBACGrant)
			}
		}
		slices.Sort(fd.Bindings)
		findings = append(findings, fd)
	}
	slices.SortFunc(findings, func(a, b RBACFinding) int {
		return strings.Compare(a.Subject.Kind+"\x00"+a.Subject.Namespace+"\x00"+a.Subject.Name,
			b.Subject.Kind+"\x00"+b.Subject.Namespace+"\x00"+b.Subject.Name)
	})
	return findings
}

// clusterRoleRules resolves the rules of ClusterRoles, aggregated ones
// included: a ClusterRole with an aggregationRule holds the rules of every
// ClusterRole its selectors select, as kube-controller-manager's
// aggregation controller writes them into it. Resolving them here gives
// the same answer before that controller has run (or where none runs).
type clusterRoleRules struct {
	byName   map[string]*rbacv1.ClusterRole
	all      []rbacv1.ClusterRole
	resolved map[string][]rbacv1.PolicyRule
}

func newClusterRoleRules(all []rbacv1.ClusterRole) *clusterRoleRules {
	c := &clusterRoleRules{byName: make(map[string]*rbacv1.ClusterRole, len(all)), all: all, resolved: map[string][]rbacv1.PolicyRule{}}
	for i := range all {
		c.byName[all[i].Name] = &all[i]
	}
	return c
}

func (c *clusterRoleRules) rulesOf(name string) []rbacv1.PolicyRule {
	return c.resolve(name, map[string]bool{})
}

func (c *clusterRoleRules) resolve(name string, visiting map[string]bool) []rbacv1.PolicyRule {
	if rules, ok := c.resolved[name]; ok {
		return rules
	}
	cr := c.byName[name]
	if cr == nil || visiting[name] {
		return nil
	}
	if cr.AggregationRule == nil {
		c.resolved[name] = cr.Rules
		return cr.Rules
	}
	visiting[name] = true
	rules := slices.Clone(cr.Rules)
	for _, ls := range cr.AggregationRule.ClusterRoleSelectors {
		sel, err := metav1.LabelSelectorAsSelector(&ls)
		if err != nil || sel.Empty() {
			// The aggregation controller skips what it cannot parse; an
			// empty selector would select every ClusterRole, which it
			// refuses too.
			continue
		}
		for i := range c.all {
			other := &c.all[i]
			if other.Name != name && sel.Matches(labels.Set(other.Labels)) {
				rules = append(rules, c.resolve(other.Name, visiting)...)
			}
		}
	}
	delete(visiting, name)
	c.resolved[name] = rules
	return rules
}

// FormatRBACFindings writes findings as the report's message names them,
// the first maxSubjects in full and then how many more there are:
//
//	User alice: impersonate serviceaccounts, get/list/watch secrets (RoleBinding tenant-a/alice-edit); and 2 more subjects
func FormatRBACFindings(findings []RBACFinding, maxSubjects int) string {
	const maxBindings = 3
	parts := make([]string, 0, min(len(findings), maxSubjects)+1)
	for _, f := range findings[:min(len(findings), maxSubjects)] {
		bindings := strings.Join(f.Bindings[:min(len(f.Bindings), maxBindings)], ", ")
		if n := len(f.Bindings) - maxBindings; n > 0 {
			bindings += fmt.Sprintf(" and %d more", n)
		}
		parts = append(parts, fmt.Sprintf("%s: %s (%s)", f.Subject, formatGrants(f.Grants), bindings))
	}
	msg := strings.Join(parts, "; ")
	switch n := len(findings) - maxSubjects; {
	case n == 1:
		msg += "; and 1 more subject"
	case n > 1:
		msg += fmt.Sprintf("; and %d more subjects", n)
	}
	return msg
}

// formatGrants writes grants of one resource together: "get/list/watch
// secrets, impersonate serviceaccounts".
func formatGrants(gs []RBACGrant) string {
	var parts []string
	for i := 0; i < len(gs); {
		verbs := []string{gs[i].Verb}
		j := i + 1
		for ; j < len(gs) && gs[j].Group == gs[i].Group && gs[j].Resource == gs[i].Resource; j++ {
			verbs = append(verbs, gs[j].Verb)
		}
		parts = append(parts, strings.Join(verbs, "/")+" "+gs[i].resourceName())
		i = j
	}
	return strings.Join(parts, ", ")
}
