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

package identity

import (
	"testing"

	. "github.com/onsi/gomega"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

func TestBindings(t *testing.T) {
	all := &custosv1alpha1.IdentityBindings{
		AWS:   &custosv1alpha1.AWSIdentity{RoleARN: "arn:aws:iam::111122223333:role/r"},
		Azure: &custosv1alpha1.AzureIdentity{ClientID: "c", TenantID: "t"},
		GCP:   &custosv1alpha1.GCPIdentity{ServiceAccount: "a@p.iam.gserviceaccount.com"},
	}
	cases := []struct {
		name        string
		bindings    *custosv1alpha1.IdentityBindings
		annotations map[string]string
		podLabels   map[string]string
		describe    string
	}{
		{"none", nil, map[string]string{}, map[string]string{}, "no cloud identity"},
		{"aws only", &custosv1alpha1.IdentityBindings{AWS: all.AWS},
			map[string]string{AWSRoleARNAnnotation: "arn:aws:iam::111122223333:role/r"}, map[string]string{}, "aws"},
		{"all three", all, map[string]string{
			AWSRoleARNAnnotation:        "arn:aws:iam::111122223333:role/r",
			AzureClientIDAnnotation:     "c",
			AzureTenantIDAnnotation:     "t",
			GCPServiceAccountAnnotation: "a@p.iam.gserviceaccount.com",
		}, map[string]string{AzureUseLabel: "true"}, "aws, azure, gcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Annotations(tc.bindings)).To(Equal(tc.annotations))
			g.Expect(PodLabels(tc.bindings)).To(Equal(tc.podLabels))
			g.Expect(Describe(tc.bindings)).To(Equal(tc.describe))
			sa := ServiceAccount("agent-x", "ns", tc.bindings)
			g.Expect(*sa.AutomountServiceAccountToken).To(BeFalse())
			if len(tc.annotations) > 0 {
				g.Expect(sa.Annotations).To(Equal(tc.annotations))
			} else {
				g.Expect(sa.Annotations).To(BeEmpty())
			}
		})
	}
}

func TestNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ServiceAccountName("invoice-reconciler")).To(Equal("agent-invoice-reconciler"))
	g.Expect(SPIFFEID("cluster.local", "finance-agents", "agent-invoice-reconciler")).
		To(Equal("spiffe://cluster.local/ns/finance-agents/sa/agent-invoice-reconciler"))
}
