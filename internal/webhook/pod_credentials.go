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
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/identity"
)

// The pod guard's checks of an agent pod's credentials: none the kubelet
// mints for it, and no Secret but its agent's leases.

// checkPodCredentials: no credential the kubelet mints for the pod: a
// projected ServiceAccount token (of any audience: a cloud's token exchange
// accepts one) or a pod certificate would live outside the lease ledger,
// uncapped, unaudited and unrevoked.
func checkPodCredentials(spec *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	for i, v := range spec.Volumes {
		if v.Projected == nil {
			continue
		}
		sources := podSpecPath.Child("volumes").Index(i).Child("projected", "sources")
		for j, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil {
				errs = append(errs, field.Forbidden(sources.Index(j).Child("serviceAccountToken"),
					"agent pods carry no ServiceAccount token; their credentials are leases Custos issues (spec.credentials)"))
			}
			if src.PodCertificate != nil {
				errs = append(errs, field.Forbidden(sources.Index(j).Child("podCertificate"),
					"agent pods carry no pod certificate: credentials are leases Custos issues (spec.credentials)"))
			}
		}
	}
	return errs
}

// secretRef is a Secret a pod references, and where.
type secretRef struct {
	path *field.Path
	name string
}

// secretRefsOf lists the Secrets spec references to read: as a volume, a
// projected source, a CSI driver's secret, an environment variable or
// everything in one as environment. Image pull secrets are the kubelet's,
// never the containers'.
func secretRefsOf(spec *corev1.PodSpec) []secretRef {
	var refs []secretRef
	for i, v := range spec.Volumes {
		path := podSpecPath.Child("volumes").Index(i)
		if v.Secret != nil {
			refs = append(refs, secretRef{path.Child("secret", "secretName"), v.Secret.SecretName})
		}
		if v.Projected != nil {
			for j, src := range v.Projected.Sources {
				if src.Secret != nil {
					refs = append(refs, secretRef{path.Child("projected", "sources").Index(j).Child("secret", "name"), src.Secret.Name})
				}
			}
		}
		if v.CSI != nil && v.CSI.NodePublishSecretRef != nil {
			refs = append(refs, secretRef{path.Child("csi", "nodePublishSecretRef", "name"), v.CSI.NodePublishSecretRef.Name})
		}
	}
	for _, c := range containersOf(spec) {
		for k, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				refs = append(refs, secretRef{c.path.Child("env").Index(k).Child("valueFrom", "secretKeyRef", "name"), e.ValueFrom.SecretKeyRef.Name})
			}
		}
		for k, e := range c.EnvFrom {
			if e.SecretRef != nil {
				refs = append(refs, secretRef{c.path.Child("envFrom").Index(k).Child("secretRef", "name"), e.SecretRef.Name})
			}
		}
	}
	return refs
}

// checkSecrets: the only Secrets an agent pod reads are its agent's
// leases, one per credential of spec.credentials, which Custos issues,
// renews and revokes. On an update (old set) only references that change
// are checked: a running pod's volumes and environment cannot, but an
// ephemeral container can be added.
func checkSecrets(old, pod *corev1.Pod, agent *custosv1alpha1.Agent) field.ErrorList {
	leases := make([]string, 0, len(agent.Spec.Credentials))
	for _, c := range agent.Spec.Credentials {
		leases = append(leases, identity.LeaseSecretName(agent.Name, c.Name))
	}
	had := map[string]bool{}
	if old != nil {
		for _, r := range secretRefsOf(&old.Spec) {
			had[r.path.String()+"="+r.name] = true
		}
	}
	var errs field.ErrorList
	for _, r := range secretRefsOf(&pod.Spec) {
		if slices.Contains(leases, r.name) || had[r.path.String()+"="+r.name] {
			continue
		}
		errs = append(errs, field.Forbidden(r.path, notALease(agent, r.name, leases)))
	}
	return errs
}

// notALease says why Secret name is not one of agent's leases.
func notALease(agent *custosv1alpha1.Agent, name string, leases []string) string {
	if of, credential, ok := identity.LeaseOf(name); ok {
		if of != agent.Name {
			return fmt.Sprintf("Secret %q is the lease of agent %s's credential %s: agent pods hold only their own agent's leases", name, of, credential)
		}
		return fmt.Sprintf("Secret %q is not a lease of agent %s: it has no credential %q in spec.credentials", name, agent.Name, credential)
	}
	own := "it has none: no spec.credentials"
	if len(leases) > 0 {
		own = strings.Join(leases, ", ")
	}
	return fmt.Sprintf("Secret %q is not one of agent %s's lease Secrets (%s): agent pods hold only credentials Custos issues, renews and revokes (spec.credentials)",
		name, agent.Name, own)
}
