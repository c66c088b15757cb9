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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// patchStatus patches obj's status when it differs from before's, and only
// the status: the status subresource ignores everything else in the patch.
// It never updates: the reconcilers own their status and nothing else there.
func patchStatus(ctx context.Context, c client.Client, before, obj client.Object) error {
	b, err := runtime.DefaultUnstructuredConverter.ToUnstructured(before)
	if err != nil {
		return err
	}
	a, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(b["status"], a["status"]) {
		return nil
	}
	return c.Status().Patch(ctx, obj, client.MergeFrom(before))
}

// finishStatus is the deferred end of a Toolset or DataBoundary
// reconcile: it patches the status and, once written, records the Ready and
// Stalled transitions between the conditions before and after. An object
// deleted meanwhile is no error. The error is meant to replace the
// reconcile's, not join it: a terminal error must not stop the retry of a
// status that was never written.
func finishStatus(ctx context.Context, c client.Client, rec recorder.EventRecorder, kind string, before, obj client.Object, beforeConds, afterConds []metav1.Condition) error {
	if err := patchStatus(ctx, c, before, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patching the status of %s %s: %w", kind, klog.KObj(obj), err)
	}
	recordReadyAndStalled(ctx, rec, obj, beforeConds, afterConds)
	return nil
}

// setStatusCondition sets a condition of an object at generation, with its
// message cut to what the API and a terminal take.
func setStatusCondition(conds *[]metav1.Condition, generation int64, conditionType string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               conditionType,
		Status:             status,
		Reason:             reason,
		Message:            clipMessage(msg, conditionMessageLimit),
		ObservedGeneration: generation,
	})
}

// Limits of the messages Custos writes. A schema error or a conflict can
// quote user input of any length; the API refuses an Event whose note is
// longer than 1024 characters, and a condition message longer than 32768.
const (
	conditionMessageLimit = 4096
	eventNoteLimit        = 1024
)

// clipMessage cuts msg to at most maxLen bytes, marking the cut, on a rune
// boundary so that it stays valid UTF-8.
func clipMessage(msg string, maxLen int) string {
	if len(msg) <= maxLen {
		return msg
	}
	const mark = "…"
	cut := maxLen - len(mark)
	for cut > 0 && msg[cut]&0xC0 == 0x80 {
		cut--
	}
	return msg[:cut] + mark
}

// recordEvent logs and records an Event on obj: one helper, so the two never
// disagree. Warnings are logged at the default level, the rest at V(1).
func recordEvent(ctx context.Context, rec recorder.EventRecorder, obj client.Object, eventType, reason, msg string) {
	log := ctrl.LoggerFrom(ctx)
	if eventType == corev1.EventTypeWarning {
		log.Info(msg, "reason", reason, "object", klog.KObj(obj))
	} else {
		log.V(1).Info(msg, "reason", reason, "object", klog.KObj(obj))
	}
	rec.Eventf(obj, nil, eventType, reason, "Reconcile", "%s", clipMessage(msg, eventNoteLimit))
}

// recordReadyAndStalled records an Event when obj becomes Ready (or Ready for
// a new reason, such as suspended), and a
// Warning when it stalls or stalls for a new reason; a reconcile that
// changes nothing records nothing.
//
// It reports whether it recorded the Ready event.
func recordReadyAndStalled(ctx context.Context, rec recorder.EventRecorder, obj client.Object, before, after []metav1.Condition) bool {
	if stalled := meta.FindStatusCondition(after, custosv1alpha1.StalledCondition); stalled != nil {
		if old := meta.FindStatusCondition(before, custosv1alpha1.StalledCondition); old == nil || old.Message != stalled.Message {
			recordEvent(ctx, rec, obj, corev1.EventTypeWarning, stalled.Reason, stalled.Message)
		}
	}
	ready, old := meta.FindStatusCondition(after, custosv1alpha1.ReadyCondition), meta.FindStatusCondition(before, custosv1alpha1.ReadyCondition)
	if ready != nil && ready.Status == metav1.ConditionTrue &&
		(old == nil || old.Status != metav1.ConditionTrue || old.Reason != ready.Reason) {
		recordEvent(ctx, rec, obj, corev1.EventTypeNormal, ready.Reason, ready.Message)
		return true
	}
	return false
}
