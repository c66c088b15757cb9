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
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
	"github.com/custos-dev/custos/internal/identity"
)

// reapedTotal counts the objects the sweeper deleted, by kind.
var reapedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "custos_sweeper_reaped_total",
	Help: "Objects made by Custos for an Agent (or a Toolset) that no longer exists (or was replaced or decommissioned), deleted by the sweeper.",
}, []string{"kind"})

func init() {
	metrics.Registry.MustRegister(reapedTotal)
}

// Sweeper reaps zombies: objects made by Custos whose Agent is gone, was
// replaced by another of the same name, or was decommissioned. A crash in
// the middle of a decommission, or an Agent deleted while Custos was down
// with its finalizer removed by hand, leaves such objects behind. The
// sweeper never touches an object Custos did not make: one without
// Custos's labels and its Agent's controller reference. It also reaps the
// NetworkPolicies of tool servers whose Toolset is gone
// (sweepToolServerPolicies).
type Sweeper struct {
	// APIReader lists and reads around the cache: the sweeper must not
	// judge an Agent gone because the cache has not seen it yet.
	APIReader client.Reader
	Client    client.Client
	Recorder  recorder.EventRecorder
	// Audit receives a sweeper.reaped record for every object reaped.
	Audit    audit.Recorder
	Interval time.Duration
	// GatewayNamespace is where gateway-only leases are kept (see
	// LeaseOptions): a lease there names its Agent by labels, since no
	// owner reference crosses namespaces.
	GatewayNamespace string
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=list;delete

// NeedLeaderElection: only the leader sweeps.
func (s *Sweeper) NeedLeaderElection() bool { return true }

// Start sweeps at once, then every Interval, until ctx ends.
func (s *Sweeper) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("sweeper")
	ctx = ctrl.LoggerInto(ctx, log)
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil {
			log.Error(err, "Sweeping for objects left behind by Agents")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep deletes every zombie it finds, once.
func (s *Sweeper) Sweep(ctx context.Context) error {
	managed, err := labels.NewRequirement(custosv1alpha1.ManagedByLabel, selection.Equals, []string{custosv1alpha1.ManagedByValue})
	if err != nil {
		return err
	}
	hasAgent, err := labels.NewRequirement(custosv1alpha1.AgentLabel, selection.Exists, nil)
	if err != nil {
		return err
	}
	selector := labels.NewSelector().Add(*managed, *hasAgent)
	// ReplicaSets and pods are left to the garbage collector: their
	// Deployment owns them.
	for _, k := range kindsWhere(func(k agentKind) bool { return k.made }) {
		list := k.newList()
		if err := s.APIReader.List(ctx, list, client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return fmt.Errorf("listing %s: %w", k.kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, item := range items {
			obj := item.(client.Object)
			why, err := s.zombie(ctx, obj)
			if err != nil {
				return err
			}
			if why == "" {
				continue
			}
			if k.kind == "NetworkPolicy" {
				// Its finalizer holds it while pods of its agent run.
				if running, err := s.podsLeft(ctx, obj); err != nil || running {
					if err != nil {
						return err
					}
					continue
				}
				if err := releaseFinalizer(ctx, s.Client, obj, custosv1alpha1.NetworkPolicyFinalizer); err != nil {
					return fmt.Errorf("releasing %s %s: %w", k.kind, klog.KObj(obj), err)
				}
			}
			if err := s.reap(ctx, k.kind, obj, why, k.removed); err != nil {
				return err
			}
		}
	}
	// What Custos keeps for Toolsets' tool servers (gateway mode).
	return s.sweepToolServerPolicies(ctx)
}

// reap deletes obj, of kind, a zombie for the reason why, and puts it on
// the record; removed is the audit action of deleting one.
func (s *Sweeper) reap(ctx context.Context, kind string, obj client.Object, why, removed string) error {
	if !obj.GetDeletionTimestamp().IsZero() {
		return nil
	}
	// The preconditions make the delete fail if the object changed
	// since it was judged, say because a new Agent of the same
	// name took it over in between.
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	err := s.Client.Delete(ctx, obj,
		client.Preconditions{UID: &uid, ResourceVersion: &rv},
		client.PropagationPolicy(metav1.DeletePropagationBackground))
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting %s %s: %w", kind, klog.KObj(obj), err)
	}
	reapedTotal.WithLabelValues(kind).Inc()
	msg := fmt.Sprintf("Reaped %s %s: %s", kind, klog.KObj(obj), why)
	ctrl.LoggerFrom(ctx).Info(msg, "kind", kind, "object", klog.KObj(obj))
	s.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "Reaped", "Sweep", "%s", msg)
	auditByController(ctx, s.Audit, audit.Event{
		Subject:  subjectOf(obj, kind),
		Action:   audit.ActionSweeperReaped,
		Decision: audit.DecisionInfo,
		Reason:   msg,
		Policy:   "sweeper",
		Details:  map[string]string{"kind": kind, "name": obj.GetName(), "action": removed},
	})
	return nil
}

// zombie says why obj has no living Agent, or "" when it has one or was
// not made by Custos. Custos makes an agent's objects controlled by the
// Agent (an owner reference with its UID); an object that merely carries
// Custos's labels (a cluster admin's look-alike) is not Custos's to reap.
func (s *Sweeper) zombie(ctx context.Context, obj client.Object) (string, error) {
	ref := metav1.GetControllerOf(obj)
	namespace := obj.GetNamespace()
	switch l := obj.GetLabels(); {
	case ref == nil && s.GatewayNamespace != "" && obj.GetNamespace() == s.GatewayNamespace &&
		l[custosv1alpha1.AgentNamespaceLabel] != "" && l[custosv1alpha1.AgentUIDLabel] != "":
		// A gateway-only lease: its labels name its Agent.
		namespace = l[custosv1alpha1.AgentNamespaceLabel]
		ref = &metav1.OwnerReference{Kind: "Agent", Name: l[custosv1alpha1.AgentLabel], UID: types.UID(l[custosv1alpha1.AgentUIDLabel])}
	case ref == nil || ref.Kind != "Agent" || !strings.HasPrefix(ref.APIVersion, custosv1alpha1.GroupVersion.Group+"/"):
		return "", nil
	}
	name := ref.Name
	agent := &custosv1alpha1.Agent{}
	err := s.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, agent)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("its Agent %s no longer exists", name), nil
	case err != nil:
		return "", err
	case agent.UID != ref.UID:
		return fmt.Sprintf("it was made for an earlier Agent %s (UID %s)", name, ref.UID), nil
	case !agent.DeletionTimestamp.IsZero() || agent.Spec.Lifecycle.State == custosv1alpha1.LifecycleDecommissioned:
		// The Agent reconciler is taking it apart in order (leases, then
		// the workload, then its network, then its identity); reaping
		// now could remove the network policy of pods still running.
		// Only what is left after it finished (or let go) is a zombie.
		if controllerutil.ContainsFinalizer(agent, custosv1alpha1.DecommissionFinalizer) {
			return "", nil
		}
		return fmt.Sprintf("its Agent %s is decommissioned", name), nil
	}
	return "", nil
}

// podsLeft reports whether pods of the agent obj was made for still exist.
func (s *Sweeper) podsLeft(ctx context.Context, obj client.Object) (bool, error) {
	l := obj.GetLabels()
	var pods metav1.PartialObjectMetadataList
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	err := s.APIReader.List(ctx, &pods, client.InNamespace(obj.GetNamespace()), client.Limit(1),
		childSelector(l[custosv1alpha1.AgentLabel], types.UID(l[custosv1alpha1.AgentUIDLabel])))
	if err != nil || len(pods.Items) > 0 {
		return len(pods.Items) > 0, err
	}
	// A pod that runs as the agent's ServiceAccount without its labels
	// wears its identity all the same.
	err = s.APIReader.List(ctx, &pods, client.InNamespace(obj.GetNamespace()), client.Limit(1), client.MatchingFields{
		"spec.serviceAccountName": identity.ServiceAccountName(l[custosv1alpha1.AgentLabel]),
	})
	return len(pods.Items) > 0, err
}
