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

package webhook

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
	"github.com/custos-dev/custos/internal/workload"
)

// The pod guard's checks that a pod is its agent's: the Agent exists and may
// start containers, and the pod runs as the agent's ServiceAccount, with its
// verified image, in its tenant, carrying the labels Custos puts on its pods.

// checkAgentOf: the pod's agent exists and may run.
func checkAgentOf(name, namespace string, agent *custosv1alpha1.Agent) field.ErrorList {
	switch {
	case agent == nil:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"no Agent %q exists in namespace %s; the label is reserved for the pods of Custos agents", name, namespace))}
	case agent.Spec.Lifecycle.State == custosv1alpha1.LifecycleDecommissioned:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is Decommissioned: it runs no pods any more", name))}
	case !agent.DeletionTimestamp.IsZero():
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is being deleted and decommissioned: it runs no new pods", name))}
	}
	return nil
}

// checkAgentActive: the agent may start containers now. Suspended (by its
// owner or its expiry) and Frozen agents run nothing until they are Active
// again; an expiry is judged at now, as the Agent reconciler judges it.
// Decommissioned and deleted agents are checkAgentOf's.
func checkAgentActive(agent *custosv1alpha1.Agent, now time.Time) field.ErrorList {
	lc := agent.Spec.Lifecycle
	switch {
	case lc.State == custosv1alpha1.LifecycleDecommissioned || !agent.DeletionTimestamp.IsZero():
		return nil
	case lc.State == custosv1alpha1.LifecycleSuspended:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is Suspended: it runs no pods until it is Active again", agent.Name))}
	case agent.Status.Lifecycle != nil && agent.Status.Lifecycle.Phase == custosv1alpha1.AgentPhaseFrozen:
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s is Frozen by its circuit breaker: it runs no pods until it is Active again", agent.Name))}
	case lc.ExpiresAt != nil && !now.Before(lc.ExpiresAt.Time):
		return field.ErrorList{field.Forbidden(agentLabelPath, fmt.Sprintf(
			"agent %s expired at %s (spec.lifecycle.expiresAt) and is Suspended: it runs no pods until its expiry is moved",
			agent.Name, lc.ExpiresAt.UTC().Format(time.RFC3339)))}
	}
	return nil
}

// checkPodIdentity: the pod runs as its agent, with its agent's verified
// image, in its agent's tenant. On an update (old set) only the images that
// change are checked: a pod admitted with the digest verified then may be
// relabelled or lose a finalizer after the agent moved on to another.
func checkPodIdentity(old, pod *corev1.Pod, agent *custosv1alpha1.Agent) field.ErrorList {
	var errs field.ErrorList
	sa := identity.ServiceAccountName(agent.Name)
	if pod.Spec.ServiceAccountName != sa {
		errs = append(errs, field.Forbidden(podSpecPath.Child("serviceAccountName"), fmt.Sprintf(
			"pods of agent %s run only as ServiceAccount %s", agent.Name, sa)))
	}
	want := workload.VerifiedImage(agent)
	admitted := map[string]string{}
	if old != nil {
		for _, c := range containersOf(&old.Spec) {
			admitted[c.path.String()] = c.Image
		}
	}
	for _, c := range containersOf(&pod.Spec) {
		if was, ok := admitted[c.path.String()]; ok && was == c.Image {
			continue
		}
		switch {
		case want == "":
			errs = append(errs, field.Forbidden(c.path.Child("image"), fmt.Sprintf(
				"agent %s has no verified image (%s): its pods run only an image digest Custos verified", agent.Name, imageState(agent))))
		case c.Image != want:
			errs = append(errs, field.Forbidden(c.path.Child("image"), fmt.Sprintf(
				"pods of agent %s run only its verified image, pinned by digest: %s", agent.Name, want)))
		}
	}
	tenant := agent.Labels[custosv1alpha1.TenantLabel]
	switch got := pod.Labels[custosv1alpha1.TenantLabel]; {
	case got == "":
		errs = append(errs, field.Required(tenantPath, fmt.Sprintf("pods of agent %s carry its tenant %q", agent.Name, tenant)))
	case got != tenant:
		errs = append(errs, field.Forbidden(tenantPath, fmt.Sprintf("%q is not the tenant of agent %s (%q)", got, agent.Name, tenant)))
	}
	return errs
}

// imageState says why an agent has no verified image, from its
// ImageVerified condition.
func imageState(agent *custosv1alpha1.Agent) string {
	c := apimeta.FindStatusCondition(agent.Status.Conditions, custosv1alpha1.ImageVerifiedCondition)
	if c == nil {
		return "not verified yet"
	}
	return "ImageVerified " + string(c.Status) + ", " + c.Reason + ": " + c.Message
}

// checkCustosLabels: an agent pod carries every label Custos puts on its
// agent's pods, with the agent's values: its NetworkPolicy selects pods by
// managed-by, and the UID tells them from the pods of an earlier agent of
// the same name. On an update (old set) only labels that change are
// checked.
func checkCustosLabels(old, pod *corev1.Pod, agent *custosv1alpha1.Agent) field.ErrorList {
	var errs field.ErrorList
	labels := field.NewPath("metadata", "labels")
	for _, l := range []struct {
		key, want, missing, wrong string
	}{{
		custosv1alpha1.ManagedByLabel, custosv1alpha1.ManagedByValue,
		fmt.Sprintf("pods of agent %s carry %s=%s: the agent's NetworkPolicy selects its pods by it",
			agent.Name, custosv1alpha1.ManagedByLabel, custosv1alpha1.ManagedByValue),
		fmt.Sprintf("is not %s: pods of agent %s carry %s=%s: the agent's NetworkPolicy selects its pods by it",
			custosv1alpha1.ManagedByValue, agent.Name, custosv1alpha1.ManagedByLabel, custosv1alpha1.ManagedByValue),
	}, {
		custosv1alpha1.AgentUIDLabel, string(agent.UID),
		fmt.Sprintf("pods of agent %s carry its UID (%s): it tells them from the pods of an earlier agent of the same name", agent.Name, agent.UID),
		fmt.Sprintf("is not the UID of agent %s (%s): a pod of an earlier agent of the same name, or a look-alike, is not this agent's", agent.Name, agent.UID),
	}} {
		got, ok := pod.Labels[l.key]
		if old != nil {
			if was, had := old.Labels[l.key]; had == ok && was == got {
				continue
			}
		}
		switch {
		case !ok:
			errs = append(errs, field.Required(labels.Key(l.key), l.missing))
		case got != l.want:
			errs = append(errs, field.Forbidden(labels.Key(l.key), fmt.Sprintf("%q %s", got, l.wrong)))
		}
	}
	return errs
}
