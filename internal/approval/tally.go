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

package approval

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// Tally counts decisions on req into a new status at now: each decision
// not yet on the status is judged (Eligible) and added, counted or not;
// a decision already there keeps its verdict, even if its object is gone.
// One person counts once (by UID, else username); a counted Deny is a
// veto; the quorum of counted approvals approves; expiresAt passing
// first expires. A terminal phase never changes, and Approved changes
// only to Denied (a veto before the call ran) or Expired.
func Tally(ctx context.Context, access Access, req *custosv1alpha1.ApprovalRequest, decisions []custosv1alpha1.ApprovalDecision, now time.Time) (custosv1alpha1.ApprovalRequestStatus, error) {
	st := *req.Status.DeepCopy()
	if st.Phase == "" {
		st.Phase = custosv1alpha1.ApprovalPending
	}
	if st.Phase.Terminal() {
		return st, nil
	}
	slices.SortFunc(decisions, func(a, b custosv1alpha1.ApprovalDecision) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	// The people whose decision counts already.
	var counted []custosv1alpha1.Approver
	for _, v := range st.Decisions {
		if v.Counted {
			counted = append(counted, v.Approver)
		}
	}
	decided := func(who custosv1alpha1.Approver) bool {
		return slices.ContainsFunc(counted, func(c custosv1alpha1.Approver) bool { return SamePerson(c, who) })
	}
	recorded := func(name string) bool {
		return slices.ContainsFunc(st.Decisions, func(v custosv1alpha1.ApprovalVote) bool { return v.Name == name })
	}
	for i := range decisions {
		d := &decisions[i]
		if d.Spec.Request != req.Name || recorded(d.Name) || !d.DeletionTimestamp.IsZero() {
			continue
		}
		vote := custosv1alpha1.ApprovalVote{Name: d.Name, Approver: d.Spec.Approver, Decision: d.Spec.Decision, DecidedAt: d.CreationTimestamp}
		switch {
		case !d.CreationTimestamp.Time.Before(req.Spec.ExpiresAt.Time):
			vote.Reason = "made after the request expired"
		case decided(d.Spec.Approver):
			vote.Reason = fmt.Sprintf("%s already decided this request: one decision per person", d.Spec.Approver.Username)
		default:
			why, err := Eligible(ctx, access, d.Spec.Approver, req)
			if err != nil {
				return req.Status, err
			}
			if why != nil {
				vote.Reason = why.Message
			} else {
				vote.Counted = true
				counted = append(counted, d.Spec.Approver)
			}
		}
		st.Decisions = append(st.Decisions, vote)
	}
	st.Approvals = 0
	denied := false
	for _, v := range st.Decisions {
		if !v.Counted {
			continue
		}
		switch v.Decision {
		case custosv1alpha1.Approve:
			st.Approvals++
		case custosv1alpha1.Deny:
			denied = true
		}
	}
	switch {
	case denied:
		st.Phase = custosv1alpha1.ApprovalDenied
	case !now.Before(req.Spec.ExpiresAt.Time):
		st.Phase = custosv1alpha1.ApprovalExpired
	case st.Approvals >= req.Spec.Quorum:
		st.Phase = custosv1alpha1.ApprovalApproved
	}
	if st.Phase != custosv1alpha1.ApprovalPending && st.DecidedAt == nil {
		t := metav1.NewTime(now)
		st.DecidedAt = &t
	}
	return st, nil
}
