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
	"encoding/json"
	"errors"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
)

// appliedHashAnnotation on a child records a digest of what Custos last
// applied to it.
const appliedHashAnnotation = "custos.dev/applied-hash"

// applyChild server-side applies a child, unless the cached child already
// carries exactly this configuration and nobody else has written to it
// since: most reconciles of a settled agent then cost no request at all.
// Either way it leaves the child as last seen in current.
// Any other writer (kubectl edit, another controller) makes Custos apply
// again, which puts its fields back.
func applyChild[AC interface {
	runtime.ApplyConfiguration
	WithAnnotations(map[string]string) AC
}](ctx context.Context, c client.Client, current client.Object, namespace, name string, ac AC) error {
	data, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:12])
	err = c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, current)
	if err == nil && current.GetAnnotations()[appliedHashAnnotation] == hash && onlyCustosWrote(current) {
		return nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	ac.WithAnnotations(map[string]string{appliedHashAnnotation: hash})
	if err := c.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		if isAdoptionRefused(err) {
			return errNameTaken
		}
		return err
	}
	return fromApplied(ac, current)
}

// isAdoptionRefused: the API server refused the write because it would
// have made an existing object, not made for this Agent, the Agent's
// (config/crd/policies/agent-ownership.yaml). The caches did not know of
// the object yet; Custos takes over nothing.
func isAdoptionRefused(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(err.Error(), "custos-agent-ownership")
}

// errNameTaken: the object an apply was to create exists, and is not
// Custos's for this agent.
var errNameTaken = errors.New("the name is taken by an object Custos did not make for this agent")

// fromApplied reads the server's answer, which Apply left in ac, into
// current: the caller reads the child as it is now, not as the cache, which
// has not seen the write yet, has it.
func fromApplied(ac runtime.ApplyConfiguration, current client.Object) error {
	data, err := json.Marshal(ac)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, current)
}

// onlyCustosWrote: no field manager but Custos has written obj outside its
// status. The controller manager is let be: the deployment controller
// annotates every Deployment it rolls out.
func onlyCustosWrote(obj client.Object) bool {
	for _, f := range obj.GetManagedFields() {
		if f.Manager != FieldOwner && f.Subresource != "status" && f.Manager != "kube-controller-manager" {
			return false
		}
	}
	return true
}

// nameTaken reports whether an object named name exists in the agent's
// namespace that Custos did not make for this agent. Custos's own objects are
// in the manager's cache; anyone else's metadata is in r.ChildNames. Both are
// caches, which is safe because the API server reserves the agent- names in
// tenant namespaces for Custos (config/crd/policies): nobody else can create
// one in the moments before the cache would see it.
func (r *AgentReconciler) nameTaken(ctx context.Context, obj client.Object, agent *custosv1alpha1.Agent, name string) (bool, error) {
	key := types.NamespacedName{Namespace: agent.Namespace, Name: name}
	err := r.Client.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		gvk, gvkErr := apiutil.GVKForObject(obj, r.Client.Scheme())
		if gvkErr != nil {
			return false, gvkErr
		}
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		err = r.ChildNames.Get(ctx, key, m)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		obj = m
	}
	if err != nil {
		return false, err
	}
	if madeForAgent(obj, agent) {
		return false, nil
	}
	// Taken, as the caches see it: confirmed live, since a stalled agent
	// waits for the watch event of the object going away, which either
	// cache may deliver before the other has caught up.
	gvk, err := apiutil.GVKForObject(obj, r.Client.Scheme())
	if err != nil {
		return false, err
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	if err := r.APIReader.Get(ctx, key, m); apierrors.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return !madeForAgent(m, agent), nil
}

// madeForAgent: Custos made obj for this very Agent: obj is controlled by
// the Agent's UID and labelled with it. Labels alone prove nothing (anyone
// who can write the object can copy them), and a child left by an earlier
// Agent of the same name is not taken over either: its name stays taken
// until the sweeper (or the garbage collector) removes it.
func madeForAgent(obj client.Object, agent *custosv1alpha1.Agent) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == agent.UID && ref.Kind == "Agent" &&
		obj.GetLabels()[custosv1alpha1.AgentUIDLabel] == string(agent.UID)
}

// ownedBy: obj carries this very agent's UID.
func ownedBy(obj client.Object, agent *custosv1alpha1.Agent) bool {
	return obj.GetLabels()[custosv1alpha1.AgentUIDLabel] == string(agent.UID)
}

// childPrefix starts the name of everything Custos makes for an agent.
const childPrefix = identity.ChildPrefix

// childName names an agent's Deployment and NetworkPolicy.
func childName(agent *custosv1alpha1.Agent) string {
	return childPrefix + agent.Name
}

// childLabels are the labels of everything Custos makes for an agent.
func childLabels(agent *custosv1alpha1.Agent) map[string]string {
	return map[string]string{
		custosv1alpha1.AgentLabel:     agent.Name,
		custosv1alpha1.AgentUIDLabel:  string(agent.UID),
		custosv1alpha1.TenantLabel:    agent.Labels[custosv1alpha1.TenantLabel],
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
}

// selectorLabels select an agent's pods. They never change over the agent's
// life: a Deployment's selector is immutable.
func selectorLabels(agent *custosv1alpha1.Agent) map[string]string {
	return map[string]string{
		custosv1alpha1.AgentLabel:     agent.Name,
		custosv1alpha1.ManagedByLabel: custosv1alpha1.ManagedByValue,
	}
}

func ownerReference(agent *custosv1alpha1.Agent) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(custosv1alpha1.GroupVersion.String()).
		WithKind("Agent").
		WithName(agent.Name).
		WithUID(agent.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}
