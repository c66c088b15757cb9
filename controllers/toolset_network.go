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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/netpol"
)

// toolServerPolicyPrefix starts the name of the NetworkPolicy Custos keeps,
// in gateway mode, for the tool server of a Toolset's in-cluster endpoint.
const toolServerPolicyPrefix = "custos-toolset-"

// toolServerPolicyName names the NetworkPolicy of ts's tool server:
// custos-toolset-<namespace>.<name>. A namespace's name has no dot, so no
// two Toolsets share it, wherever their endpoints are; two Toolsets of the
// same pods have a policy each, and each admits the gateway alone. A name
// too long for the API ends in a digest of the Toolset's key instead.
func toolServerPolicyName(ts *custosv1alpha1.Toolset) string {
	name := toolServerPolicyPrefix + ts.Namespace + "." + ts.Name
	if len(name) <= validation.DNS1123SubdomainMaxLength {
		return name
	}
	sum := sha256.Sum256([]byte(ts.Namespace + "/" + ts.Name))
	suffix := "-" + hex.EncodeToString(sum[:8])
	return strings.TrimRight(name[:validation.DNS1123SubdomainMaxLength-len(suffix)], ".-") + suffix
}

// toolServerPolicyLabels are the labels of the NetworkPolicy of ts's tool
// server. They carry no custos.dev/agent: the policy is no agent's, and
// neither the agents' sweep nor their teardown touches it.
func toolServerPolicyLabels(ts *custosv1alpha1.Toolset) map[string]string {
	return map[string]string{
		custosv1alpha1.ToolsetUIDLabel: string(ts.UID),
		custosv1alpha1.TenantLabel:     ts.Labels[custosv1alpha1.TenantLabel],
		custosv1alpha1.ManagedByLabel:  custosv1alpha1.ManagedByValue,
	}
}

// toolServerPolicies selects every NetworkPolicy Custos made for a tool
// server.
var toolServerPolicies = []client.ListOption{
	client.HasLabels{custosv1alpha1.ToolsetUIDLabel},
	client.MatchingLabels{custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue},
}

// madeForToolset: obj is a NetworkPolicy Custos made for the Toolset key:
// Custos's labels, and key in its annotation. An owner reference cannot
// name a Toolset of another namespace, so labels are what there is. In
// tenant namespaces only Custos and cluster admins may write a policy of
// such a name (config/crd/policies/toolset-networkpolicies.yaml); a
// look-alike an admin labelled so is taken over, every field of its spec
// put back as Custos renders it (restoreToolServerSpec).
func madeForToolset(obj client.Object, key types.NamespacedName) bool {
	l := obj.GetLabels()
	return l[custosv1alpha1.ManagedByLabel] == custosv1alpha1.ManagedByValue && l[custosv1alpha1.ToolsetUIDLabel] != "" &&
		obj.GetAnnotations()[custosv1alpha1.ToolsetAnnotation] == key.String()
}

// reconcileToolServerNetwork keeps, in gateway mode, the NetworkPolicy that
// lets only custos-gateway's pods in to the tool server of ts's in-cluster
// endpoint, and reports it in NetworkIsolated; it reports whether the tool
// server is isolated. Out of gateway mode, or for an external endpoint,
// Custos keeps no such policy and reports nothing. Only a failure to read or
// write is an error.
func (r *ToolsetReconciler) reconcileToolServerNetwork(ctx context.Context, ts *custosv1alpha1.Toolset) (bool, error) {
	key := client.ObjectKeyFromObject(ts)
	ep := ts.Spec.Endpoint.InCluster
	if r.Gateway == nil || ep == nil {
		meta.RemoveStatusCondition(&ts.Status.Conditions, custosv1alpha1.NetworkIsolatedCondition)
		return false, r.removeToolServerPolicies(ctx, key, nil)
	}
	observe := func(status metav1.ConditionStatus, reason, format string, args ...any) {
		setToolsetCondition(ts, custosv1alpha1.NetworkIsolatedCondition, status, reason, fmt.Sprintf(format, args...))
	}
	ns := &corev1.Namespace{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: ep.Namespace}, ns); apierrors.IsNotFound(err) {
		observe(metav1.ConditionFalse, custosv1alpha1.DependencyNotFoundReason,
			"Namespace %s of the tool server does not exist; Custos lets only custos-gateway in to the tool server once it does", ep.Namespace)
		return false, r.removeToolServerPolicies(ctx, key, nil)
	} else if err != nil {
		return false, err
	}
	// A tenant's Toolset may point into a namespace that is not the
	// tenant's (one a DataBoundary lists in spec.egress.namespaces, shared
	// by all): a policy there would cut its other clients off, at the
	// word of a tenant who does not run it.
	if tenant := ts.Labels[custosv1alpha1.TenantLabel]; tenant == "" || ns.Labels[custosv1alpha1.TenantLabel] != tenant {
		observe(metav1.ConditionFalse, custosv1alpha1.EndpointOutsideTenantReason,
			"Namespace %s of the tool server is not one of tenant %q (its %s label is %q): Custos writes no NetworkPolicy there for a tenant's Toolset; "+
				"keeping the tool server reachable from custos-gateway alone is up to whoever runs that namespace",
			ep.Namespace, tenant, custosv1alpha1.TenantLabel, ns.Labels[custosv1alpha1.TenantLabel])
		return false, r.removeToolServerPolicies(ctx, key, nil)
	}

	name := toolServerPolicyName(ts)
	at := types.NamespacedName{Namespace: ep.Namespace, Name: name}
	// What Custos kept elsewhere for this Toolset (its endpoint's earlier
	// namespace) goes.
	if err := r.removeToolServerPolicies(ctx, key, &at); err != nil {
		return false, err
	}
	// In tenant namespaces the API server lets nobody but Custos (and
	// cluster admins) make a policy of this name
	// (config/crd/policies/toolset-networkpolicies.yaml), so none appears
	// between this look and the apply below.
	if taken, err := r.toolServerPolicyTaken(ctx, key, at); err != nil {
		return false, err
	} else if taken {
		observe(metav1.ConditionFalse, custosv1alpha1.NameConflictReason,
			"NetworkPolicy %s exists and was not made by Custos for this Toolset; rename or remove it", at)
		return false, nil
	}
	ac := netpol.ToolServer(name, ep.Namespace, ep.PodSelector, ep.Port, *r.Gateway).
		WithLabels(toolServerPolicyLabels(ts)).
		WithAnnotations(map[string]string{custosv1alpha1.ToolsetAnnotation: key.String()})
	// The spec as rendered, before Apply leaves the server's answer in ac.
	want, err := typedPolicy(ac)
	if err != nil {
		return false, err
	}
	current := &networkingv1.NetworkPolicy{}
	if err := applyChild(ctx, r.Client, current, ep.Namespace, name, ac); err != nil {
		observe(metav1.ConditionFalse, custosv1alpha1.ProgressingReason, "Applying NetworkPolicy %s: %v", at, err)
		return false, err
	}
	if err := r.restoreToolServerSpec(ctx, current, want); err != nil {
		observe(metav1.ConditionFalse, custosv1alpha1.ProgressingReason, "Restoring NetworkPolicy %s: %v", at, err)
		return false, err
	}
	widened, err := r.toolServerWidenedBy(ctx, ep, name)
	if err != nil {
		return false, err
	}
	if len(widened) > 0 {
		observe(metav1.ConditionFalse, custosv1alpha1.NetworkPolicyWidenedReason,
			"NetworkPolicy %s in namespace %s also select(s) the tool server's pods and admit(s) more than custos-gateway; "+
				"NetworkPolicies add up, so the tool server is reachable wider than %s: narrow or remove them",
			strings.Join(widened, ", "), ep.Namespace, name)
		return false, nil
	}
	observe(metav1.ConditionTrue, custosv1alpha1.SucceededReason,
		"NetworkPolicy %s lets only custos-gateway's pods in to the tool server's pods, on port %d", at, ep.Port)
	return true, nil
}

// typedPolicy is the NetworkPolicy ac renders.
func typedPolicy(ac *networkingv1ac.NetworkPolicyApplyConfiguration) (*networkingv1.NetworkPolicy, error) {
	np := &networkingv1.NetworkPolicy{}
	return np, fromApplied(ac, np)
}

// restoreToolServerSpec puts back the whole spec of the tool server's
// NetworkPolicy where someone else changed it. Server-side apply takes back
// every field Custos sets, but removes none it does not: a label added to
// spec.podSelector.matchLabels (by anyone who may edit NetworkPolicies in
// the tool server's namespace) would narrow the policy to no pod at all. An
// update replaces the spec whole.
func (r *ToolsetReconciler) restoreToolServerSpec(ctx context.Context, current, want *networkingv1.NetworkPolicy) error {
	if equality.Semantic.DeepEqual(current.Spec, want.Spec) {
		return nil
	}
	ctrl.LoggerFrom(ctx).Info("Restoring the spec of a tool server's NetworkPolicy that someone else changed", "networkPolicy", klog.KObj(current))
	restored := current.DeepCopy()
	restored.Spec = *want.Spec.DeepCopy()
	// Left out, the API server works out who owns what from the stored
	// managed fields; sent, it would take them as they are.
	restored.ManagedFields = nil
	if err := r.Client.Update(ctx, restored, client.FieldOwner(FieldOwner)); err != nil {
		return err
	}
	*current = *restored
	return nil
}

// toolServerPolicyTaken reports whether the NetworkPolicy at exists and was
// not made by Custos for the Toolset key. The manager caches every
// NetworkPolicy; a name the cache says is taken is confirmed live, since a
// stalled Toolset waits for the watch event of the policy going away.
func (r *ToolsetReconciler) toolServerPolicyTaken(ctx context.Context, key, at types.NamespacedName) (bool, error) {
	np := &networkingv1.NetworkPolicy{}
	if err := r.Client.Get(ctx, at, np); apierrors.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if madeForToolset(np, key) {
		return false, nil
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"))
	if err := r.APIReader.Get(ctx, at, m); apierrors.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return !madeForToolset(m, key), nil
}

// toolServerWidenedBy names the NetworkPolicies of the endpoint's namespace,
// other than Custos's own (own), that select the tool server's pods and
// admit more than custos-gateway's pods to the endpoint's port:
// NetworkPolicies add up, so each widens who reaches the tool server. The
// pods are those the endpoint's podSelector selects now, and any pod it
// could select (its labels alone). Another Toolset's policy for the same
// pods admits the gateway alone, and widens nothing; nor does one that
// opens another port of theirs (metrics, say).
func (r *ToolsetReconciler) toolServerWidenedBy(ctx context.Context, ep *custosv1alpha1.InClusterEndpoint, own string) ([]string, error) {
	var policies networkingv1.NetworkPolicyList
	if err := r.Client.List(ctx, &policies, client.InNamespace(ep.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	pods := []labels.Set{labels.Set(ep.PodSelector)}
	var live metav1.PartialObjectMetadataList
	live.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.APIReader.List(ctx, &live, client.InNamespace(ep.Namespace), client.MatchingLabels(ep.PodSelector)); err != nil {
		return nil, err
	}
	for i := range live.Items {
		// Agents' pods are no tool server's: the policy leaves them out.
		if _, agent := live.Items[i].Labels[custosv1alpha1.AgentLabel]; !agent {
			pods = append(pods, labels.Set(live.Items[i].Labels))
		}
	}
	var widened []string
	for i := range policies.Items {
		np := &policies.Items[i]
		if np.Name == own || !netpol.GovernsIngress(&np.Spec) || netpol.AdmitsOnly(&np.Spec, *r.Gateway, ep.Port) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			continue // the API server refuses such a selector; it selects nothing
		}
		if slices.ContainsFunc(pods, func(p labels.Set) bool { return sel.Matches(p) }) {
			widened = append(widened, np.Name)
		}
	}
	slices.Sort(widened)
	return widened, nil
}

// removeToolServerPolicies deletes the NetworkPolicies Custos made for the
// Toolset key's tool server, except the one at keep (nil: every one). It
// reads the manager's cache: a policy it has not seen yet is removed on a
// later pass, or by the sweeper.
func (r *ToolsetReconciler) removeToolServerPolicies(ctx context.Context, key types.NamespacedName, keep *types.NamespacedName) error {
	var policies networkingv1.NetworkPolicyList
	if err := r.Client.List(ctx, &policies, toolServerPolicies...); err != nil {
		return err
	}
	for i := range policies.Items {
		np := &policies.Items[i]
		if !madeForToolset(np, key) || (keep != nil && client.ObjectKeyFromObject(np) == *keep) || !np.DeletionTimestamp.IsZero() {
			continue
		}
		uid := np.UID
		err := r.Client.Delete(ctx, np, client.Preconditions{UID: &uid})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("deleting NetworkPolicy %s of Toolset %s: %w", klog.KObj(np), key, err)
		}
		ctrl.LoggerFrom(ctx).Info("Deleted the NetworkPolicy of a tool server", "networkPolicy", klog.KObj(np), "toolset", key)
	}
	return nil
}

// sweepToolServerPolicies reaps the NetworkPolicies Custos made for tool
// servers whose Toolset no longer exists (deleted while the manager was
// down, say). A Toolset of the same name created since takes its policy
// over instead: its isolation never lapses.
func (s *Sweeper) sweepToolServerPolicies(ctx context.Context) error {
	var policies networkingv1.NetworkPolicyList
	if err := s.APIReader.List(ctx, &policies, toolServerPolicies...); err != nil {
		return fmt.Errorf("listing the NetworkPolicies of tool servers: %w", err)
	}
	for i := range policies.Items {
		np := &policies.Items[i]
		ns, name, ok := strings.Cut(np.Annotations[custosv1alpha1.ToolsetAnnotation], "/")
		if !ok || ns == "" || name == "" {
			continue // not Custos's: it always says whose it is
		}
		err := s.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &metav1.PartialObjectMetadata{
			TypeMeta: metav1.TypeMeta{APIVersion: custosv1alpha1.GroupVersion.String(), Kind: "Toolset"},
		})
		if !apierrors.IsNotFound(err) {
			if err != nil {
				return err
			}
			continue
		}
		if err := s.reap(ctx, "NetworkPolicy", np, fmt.Sprintf("its Toolset %s/%s no longer exists", ns, name), audit.ActionNetworkRemoved); err != nil {
			return err
		}
	}
	return nil
}
