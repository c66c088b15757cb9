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
	aws := &custosv1alpha1.AWSIdentity{RoleARN: "arn:aws:iam::111122223333:role/r"}
	azure := &custosv1alpha1.AzureIdentity{ClientID: "c", TenantID: "t"}
	gcp := &custosv1alpha1.GCPIdentity{ServiceAccount: "a@p.iam.gserviceaccount.com"}
	allAnnotations := map[string]string{
		AWSRoleARNAnnotation:        "arn:aws:iam::111122223333:role/r",
		AzureClientIDAnnotation:     "c",
		AzureTenantIDAnnotation:     "t",
		GCPServiceAccountAnnotation: "a@p.iam.gserviceaccount.com",
	}
	none := map[string]string{}
	cases := []struct {
		name        string
		bindings    *custosv1alpha1.IdentityBindings
		mode        custosv1alpha1.IdentityMode
		annotations map[string]string
		podLabels   map[string]string
		describe    string
	}{
		{"none", nil, custosv1alpha1.IdentityModeLeased, none, none, "no cloud identity"},
		{"aws, mode unset (stored before modes, or built in code)", &custosv1alpha1.IdentityBindings{AWS: aws},
			custosv1alpha1.IdentityModeLeased, none, none, "aws (leased)"},
		{"aws leased", &custosv1alpha1.IdentityBindings{Mode: custosv1alpha1.IdentityModeLeased, AWS: aws},
			custosv1alpha1.IdentityModeLeased, none, none, "aws (leased)"},
		{"all three leased: no annotation, no Azure label", &custosv1alpha1.IdentityBindings{
			Mode: custosv1alpha1.IdentityModeLeased, AWS: aws, Azure: azure, GCP: gcp},
			custosv1alpha1.IdentityModeLeased, none, none, "aws, azure, gcp (leased)"},
		{"aws ambient", &custosv1alpha1.IdentityBindings{Mode: custosv1alpha1.IdentityModeAmbient, AWS: aws},
			custosv1alpha1.IdentityModeAmbient, map[string]string{AWSRoleARNAnnotation: "arn:aws:iam::111122223333:role/r"}, none, "aws (ambient)"},
		{"all three ambient", &custosv1alpha1.IdentityBindings{
			Mode: custosv1alpha1.IdentityModeAmbient, AWS: aws, Azure: azure, GCP: gcp},
			custosv1alpha1.IdentityModeAmbient, allAnnotations, map[string]string{AzureUseLabel: "true"}, "aws, azure, gcp (ambient)"},
		{"an unknown mode is leased", &custosv1alpha1.IdentityBindings{Mode: "Sideways", Azure: azure},
			custosv1alpha1.IdentityModeLeased, none, none, "azure (leased)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(Mode(tc.bindings)).To(Equal(tc.mode))
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

func TestForeignCloudAnnotations(t *testing.T) {
	own := map[string]string{AWSRoleARNAnnotation: "arn:aws:iam::111122223333:role/r"}
	cases := []struct {
		name    string
		current map[string]string
		own     map[string]string
		want    []string
	}{
		{"nothing", nil, nil, nil},
		{"only Custos's own", map[string]string{AWSRoleARNAnnotation: "arn:aws:iam::111122223333:role/r", "custos.dev/applied-hash": "x"}, own, nil},
		{"Custos's own key, whatever its value (apply re-asserts it)", map[string]string{AWSRoleARNAnnotation: "arn:aws:iam::999999999999:role/other"}, own, nil},
		{"every cloud's, sorted; other annotations are let be", map[string]string{
			"iam.gke.io/gcp-service-account":         "x@p.iam.gserviceaccount.com",
			"eks.amazonaws.com/token-expiration":     "86400",
			"azure.workload.identity/client-id":      "c",
			"azure.workload.identity/tenant-id":      "t",
			"kubectl.kubernetes.io/last-applied":     "{}",
			"example.com/eks.amazonaws.com/role-arn": "not a cloud's",
		}, own, []string{
			"azure.workload.identity/client-id", "azure.workload.identity/tenant-id",
			"eks.amazonaws.com/token-expiration", "iam.gke.io/gcp-service-account",
		}},
		{"a leased ServiceAccount owns none", map[string]string{AWSRoleARNAnnotation: "arn:aws:iam::111122223333:role/r"}, nil,
			[]string{AWSRoleARNAnnotation}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(ForeignCloudAnnotations(tc.current, tc.own)).To(Equal(tc.want))
		})
	}
}

func TestNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect(ServiceAccountName("invoice-reconciler")).To(Equal("agent-invoice-reconciler"))
	g.Expect(SPIFFEID("cluster.local", "finance-agents", "agent-invoice-reconciler")).
		To(Equal("spiffe://cluster.local/ns/finance-agents/sa/agent-invoice-reconciler"))
}
