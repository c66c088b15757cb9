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
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/audit"
)

// maxAuditCauses is how many of a denial's causes its audit record lists;
// the reason carries the whole message.
const maxAuditCauses = 8

// audited records an admission.denied audit record for every request h
// refuses, by the user who sent it.
func audited(h admission.Handler, rec audit.Recorder) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		resp := h.Handle(ctx, req)
		if !resp.Allowed {
			e := denial(req, resp)
			deniesTotal.WithLabelValues(req.Kind.Kind, ruleLabel(e.Policy)).Inc()
			rec.Record(ctx, e)
		}
		return resp
	})
}

// denial is the audit event of a refused request: who asked, to do what to
// which object, and which rules refused it. The rule of a field error is
// its field and type ("spec.identity.aws.roleARN: Forbidden"); a
// DataBoundary's policy check names itself in its field.
func denial(req admission.Request, resp admission.Response) audit.Event {
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	raw := req.Object.Raw
	if len(raw) == 0 {
		raw = req.OldObject.Raw
	}
	_ = json.Unmarshal(raw, &meta)
	name := req.Name
	if name == "" {
		name = meta.Metadata.Name
	}
	e := audit.Event{
		Action: audit.ActionAdmissionDenied,
		Actor: audit.Actor{
			Kind:   actorKind(req.UserInfo.Username),
			Name:   req.UserInfo.Username,
			UID:    req.UserInfo.UID,
			Groups: req.UserInfo.Groups,
		},
		Subject: audit.Subject{
			Kind:      req.Kind.Kind,
			Namespace: req.Namespace,
			Name:      name,
			UID:       string(meta.Metadata.UID),
			Tenant:    meta.Metadata.Labels[custosv1alpha1.TenantLabel],
		},
		Decision: audit.DecisionDeny,
		TraceID:  string(req.UID),
		Details: map[string]string{
			"operation": string(req.Operation),
			"resource":  req.Resource.Resource,
		},
	}
	if req.DryRun != nil && *req.DryRun {
		e.Details["dryRun"] = "true"
	}
	if r := resp.Result; r != nil {
		e.Reason = r.Message
		if r.Details != nil {
			var rules []string
			for i, c := range r.Details.Causes {
				rule := strings.TrimSpace(c.Field + ": " + string(c.Type))
				if i < maxAuditCauses {
					e.Details["cause."+strconv.Itoa(i)] = rule
				}
				rules = append(rules, rule)
			}
			if len(rules) > 0 {
				e.Policy = rules[0]
			}
			if len(rules) > maxAuditCauses {
				e.Details["causes"] = fmt.Sprint(len(rules))
			}
		}
	}
	return e
}

// actorKind tells an agent's or another workload's ServiceAccount from a
// person.
func actorKind(username string) string {
	if strings.HasPrefix(username, "system:serviceaccount:") {
		if name := username[strings.LastIndex(username, ":")+1:]; strings.HasPrefix(name, "agent-") {
			return audit.ActorAgent
		}
		return audit.ActorController
	}
	return audit.ActorUser
}

// deniesTotal counts the requests the webhooks refused, by kind and rule.
var deniesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "custos_admission_denies_total",
	Help: "Requests Custos's admission webhooks refused, by kind and by the rule (field and error type, list indices dropped) that refused them first.",
}, []string{"kind", "rule"})

func init() {
	metrics.Registry.MustRegister(deniesTotal)
}

// ruleLabel keeps a rule's label values few: "spec.regions[3]: Forbidden"
// and "spec.regions[0]: Forbidden" are one rule.
func ruleLabel(rule string) string {
	var b strings.Builder
	depth := 0
	for _, r := range rule {
		switch {
		case r == '[':
			depth++
		case r == ']' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}
