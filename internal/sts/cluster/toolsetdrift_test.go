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

package cluster

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/test/fixtures"
)

// TestToolsetDrift: the gateway's finding shows on the Toolset as its
// Drifted condition, beside the manager's conditions, which it leaves as
// they are, and clears when the server serves the pinned tools again.
func TestToolsetDrift(t *testing.T) {
	ctx := context.Background()
	tenant := fixtures.UniqueTenant("drift")
	ns := fixtures.CreateTenantNamespace(t, k8sClient, tenant)
	ts := fixtures.Toolset(ns, "ledger", tenant)
	fixtures.Create(t, k8sClient, ts)
	// The manager's condition, written as the manager writes status.
	before := ts.DeepCopy()
	meta.SetStatusCondition(&ts.Status.Conditions, metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Reconciled", Message: "ok"})
	if err := k8sClient.Status().Patch(ctx, ts, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: ns, Name: "ledger"}
	d := &ToolsetDrift{Client: k8sClient, Log: logr.Discard()}
	read := func() *custosv1alpha1.Toolset {
		t.Helper()
		got := &custosv1alpha1.Toolset{}
		if err := k8sClient.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	d.Report(ctx, key, map[string]string{"get_invoice": "its server's inputSchema differ from the ones its Toolset pins"})
	got := read()
	c := meta.FindStatusCondition(got.Status.Conditions, ConditionDrifted)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "DefinitionChanged" ||
		c.Message != "hidden from agents and refused by custos-gateway: get_invoice: its server's inputSchema differ from the ones its Toolset pins" {
		t.Errorf("Drifted: %+v", c)
	}
	if !meta.IsStatusConditionTrue(got.Status.Conditions, "Ready") {
		t.Errorf("the manager's Ready condition is gone: %+v", got.Status.Conditions)
	}

	d.Report(ctx, key, map[string]string{})
	if c := meta.FindStatusCondition(read().Status.Conditions, ConditionDrifted); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "AsPinned" {
		t.Errorf("Drifted once the server reverted: %+v", c)
	}
}
