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
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
)

// decision is an ApprovalDecision named name on request, made by username
// (with uid, when not empty) at t0+after.
func decision(request, name, username, uid string, verdict custosv1alpha1.ApprovalVerdict, after time.Duration) custosv1alpha1.ApprovalDecision {
	return custosv1alpha1.ApprovalDecision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(t0.Add(after))},
		Spec: custosv1alpha1.ApprovalDecisionSpec{
			Request: request, Decision: verdict,
			Approver: custosv1alpha1.Approver{Username: username, UID: uid},
		},
	}
}

// tallyRBAC lets bob, carol, dave and erin approve; owner owns the agent.
func tallyRBAC() *fakeAccess {
	return rbac([]string{"bob", "carol", "dave", "erin", "owner"}, []string{"owner"})
}

func tally(t *testing.T, req *custosv1alpha1.ApprovalRequest, now time.Duration, ds ...custosv1alpha1.ApprovalDecision) custosv1alpha1.ApprovalRequestStatus {
	t.Helper()
	st, err := Tally(context.Background(), tallyRBAC(), req, ds, t0.Add(now))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestTallyQuorum(t *testing.T) {
	req := approvalRequest("", 2)
	st := tally(t, req, time.Minute, decision(req.Name, "d1", "bob", "u-bob", custosv1alpha1.Approve, time.Second))
	if st.Phase != custosv1alpha1.ApprovalPending || st.Approvals != 1 || st.DecidedAt != nil {
		t.Fatalf("after 1 of 2: %+v; want Pending, 1 approval", st)
	}
	req.Status = st
	st = tally(t, req, 2*time.Minute,
		decision(req.Name, "d1", "bob", "u-bob", custosv1alpha1.Approve, time.Second),
		decision(req.Name, "d2", "carol", "u-carol", custosv1alpha1.Approve, 90*time.Second))
	if st.Phase != custosv1alpha1.ApprovalApproved || st.Approvals != 2 {
		t.Fatalf("after 2 of 2: %+v; want Approved, 2 approvals", st)
	}
	if st.DecidedAt == nil || !st.DecidedAt.Time.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("decidedAt %v; want the tally's time", st.DecidedAt)
	}
	if len(st.Decisions) != 2 || !st.Decisions[0].Counted || !st.Decisions[1].Counted || st.Decisions[0].Name != "d1" {
		t.Errorf("votes %+v", st.Decisions)
	}
	// A third approval after the quorum: still Approved, counted.
	req.Status = st
	st = tally(t, req, 3*time.Minute, decision(req.Name, "d3", "dave", "", custosv1alpha1.Approve, 150*time.Second))
	if st.Phase != custosv1alpha1.ApprovalApproved || st.Approvals != 3 || !st.DecidedAt.Time.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("a third approval: %+v", st)
	}
	// Decisions on other requests are not this one's.
	other := approvalRequest("", 1)
	if st := tally(t, other, time.Minute, decision("another-request", "x", "bob", "", custosv1alpha1.Approve, time.Second)); st.Phase != custosv1alpha1.ApprovalPending || len(st.Decisions) != 0 {
		t.Errorf("another request's decision counted: %+v", st)
	}
}

func TestTallyDenyIsAVeto(t *testing.T) {
	req := approvalRequest("", 3)
	st := tally(t, req, time.Minute,
		decision(req.Name, "d1", "bob", "", custosv1alpha1.Approve, 1*time.Second),
		decision(req.Name, "d2", "carol", "", custosv1alpha1.Approve, 2*time.Second),
		decision(req.Name, "d3", "dave", "", custosv1alpha1.Deny, 3*time.Second),
		decision(req.Name, "d4", "erin", "", custosv1alpha1.Approve, 4*time.Second))
	if st.Phase != custosv1alpha1.ApprovalDenied || st.DecidedAt == nil {
		t.Errorf("three approvals of 3 and a deny: %+v; want Denied", st)
	}
	// After the quorum approved, before the call ran: a deny still vetoes.
	req = approvalRequest("", 1)
	req.Status = tally(t, req, time.Minute, decision(req.Name, "d1", "bob", "", custosv1alpha1.Approve, time.Second))
	if req.Status.Phase != custosv1alpha1.ApprovalApproved {
		t.Fatalf("%+v; want Approved", req.Status)
	}
	st = tally(t, req, 2*time.Minute, decision(req.Name, "d2", "carol", "", custosv1alpha1.Deny, 90*time.Second))
	if st.Phase != custosv1alpha1.ApprovalDenied {
		t.Errorf("a deny after Approved: %s; want Denied", st.Phase)
	}
	// An ineligible deny is no veto.
	req = approvalRequest("", 1)
	st = tally(t, req, time.Minute,
		decision(req.Name, "d1", "mallory", "", custosv1alpha1.Deny, time.Second),
		decision(req.Name, "d2", "alice", "", custosv1alpha1.Deny, 2*time.Second),
		decision(req.Name, "d3", "bob", "", custosv1alpha1.Approve, 3*time.Second))
	if st.Phase != custosv1alpha1.ApprovalApproved {
		t.Errorf("denies by people who may not decide: %+v; want Approved", st)
	}
}

func TestTallyOnePersonOnce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b       custosv1alpha1.Approver
		wantCounts int32
	}{
		{"same UID, other usernames", custosv1alpha1.Approver{Username: "bob", UID: "u1"}, custosv1alpha1.Approver{Username: "carol", UID: "u1"}, 1},
		{"no UID, same username", custosv1alpha1.Approver{Username: "bob"}, custosv1alpha1.Approver{Username: "bob"}, 1},
		{"other UIDs", custosv1alpha1.Approver{Username: "bob", UID: "u1"}, custosv1alpha1.Approver{Username: "carol", UID: "u2"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := approvalRequest("", 2)
			d1 := decision(req.Name, "d1", tc.a.Username, tc.a.UID, custosv1alpha1.Approve, time.Second)
			d2 := decision(req.Name, "d2", tc.b.Username, tc.b.UID, custosv1alpha1.Approve, 2*time.Second)
			st := tally(t, req, time.Minute, d2, d1) // any order: the tally sorts by creation
			if st.Approvals != tc.wantCounts {
				t.Fatalf("approvals %d; want %d (%+v)", st.Approvals, tc.wantCounts, st.Decisions)
			}
			if tc.wantCounts == 1 {
				if st.Phase != custosv1alpha1.ApprovalPending || len(st.Decisions) != 2 || !st.Decisions[0].Counted || st.Decisions[1].Counted ||
					!strings.Contains(st.Decisions[1].Reason, "already decided") {
					t.Errorf("votes %+v; want d1 counted, d2 recorded uncounted as a second decision", st.Decisions)
				}
				// And again, on a later tally, from the status.
				req.Status = st
				if st := tally(t, req, 2*time.Minute, decision(req.Name, "d3", tc.a.Username, tc.a.UID, custosv1alpha1.Approve, 3*time.Second)); st.Approvals != 1 || st.Decisions[2].Counted {
					t.Errorf("a third decision by the same person, on a later tally: %+v", st)
				}
			}
		})
	}
}

func TestTallyIneligibleRecorded(t *testing.T) {
	req := approvalRequest("", 1)
	st := tally(t, req, time.Minute,
		decision(req.Name, "d1", "mallory", "", custosv1alpha1.Approve, 1*time.Second),
		decision(req.Name, "d2", "alice", "", custosv1alpha1.Approve, 2*time.Second),
		decision(req.Name, "d3", "owner", "", custosv1alpha1.Approve, 3*time.Second),
		decision(req.Name, "d4", "system:serviceaccount:ns:ci", "", custosv1alpha1.Approve, 4*time.Second))
	if st.Phase != custosv1alpha1.ApprovalPending || st.Approvals != 0 || len(st.Decisions) != 4 {
		t.Fatalf("%+v; want Pending, 0 approvals, 4 votes", st)
	}
	for i, want := range []string{"may not approve", "the person the agent acts for", "owns it", "ServiceAccount"} {
		v := st.Decisions[i]
		if v.Counted || !strings.Contains(v.Reason, want) {
			t.Errorf("vote %s: counted=%v reason %q; want uncounted, reason mentioning %q", v.Name, v.Counted, v.Reason, want)
		}
	}
	// Uncounted votes take nothing from an eligible approver.
	req.Status = st
	if st := tally(t, req, 2*time.Minute, decision(req.Name, "d5", "bob", "", custosv1alpha1.Approve, 5*time.Second)); st.Phase != custosv1alpha1.ApprovalApproved {
		t.Errorf("an eligible approver after four ineligible ones: %+v", st)
	}
}

func TestTallyExpiry(t *testing.T) {
	req := approvalRequest("", 1) // expires at t0+1h
	// A decision made after expiresAt is not counted.
	st := tally(t, req, time.Hour+time.Minute, decision(req.Name, "late", "bob", "", custosv1alpha1.Approve, time.Hour+time.Second))
	if st.Phase != custosv1alpha1.ApprovalExpired || st.Approvals != 0 || len(st.Decisions) != 1 || st.Decisions[0].Counted ||
		!strings.Contains(st.Decisions[0].Reason, "expired") {
		t.Errorf("a late approval: %+v; want Expired, the vote recorded uncounted", st)
	}
	// A late deny is no veto either: the request expired.
	st = tally(t, req, time.Hour+time.Minute, decision(req.Name, "late", "bob", "", custosv1alpha1.Deny, time.Hour))
	if st.Phase != custosv1alpha1.ApprovalExpired {
		t.Errorf("a deny at expiresAt: %s; want Expired", st.Phase)
	}
	// expiresAt passing expires a Pending request...
	st = tally(t, req, time.Hour)
	if st.Phase != custosv1alpha1.ApprovalExpired || st.DecidedAt == nil {
		t.Errorf("at expiresAt with no decision: %+v; want Expired", st)
	}
	if st := tally(t, req, time.Hour-time.Second); st.Phase != custosv1alpha1.ApprovalPending {
		t.Errorf("a second before expiresAt: %s; want Pending", st.Phase)
	}
	// ...and an Approved one that was never consumed.
	req.Status = tally(t, req, time.Minute, decision(req.Name, "d1", "bob", "", custosv1alpha1.Approve, time.Second))
	if st := tally(t, req, 2*time.Hour); st.Phase != custosv1alpha1.ApprovalExpired {
		t.Errorf("Approved, unconsumed past expiresAt: %s; want Expired", st.Phase)
	}
}

func TestTallyTerminalNeverChanges(t *testing.T) {
	for _, phase := range []custosv1alpha1.ApprovalPhase{custosv1alpha1.ApprovalDenied, custosv1alpha1.ApprovalExpired, custosv1alpha1.ApprovalConsumed} {
		req := approvalRequest("", 1)
		decided := metav1.NewTime(t0.Add(time.Minute))
		req.Status = custosv1alpha1.ApprovalRequestStatus{Phase: phase, DecidedAt: &decided}
		for _, verdict := range []custosv1alpha1.ApprovalVerdict{custosv1alpha1.Approve, custosv1alpha1.Deny} {
			st := tally(t, req, 2*time.Minute, decision(req.Name, "d1", "bob", "", verdict, 90*time.Second))
			if st.Phase != phase || len(st.Decisions) != 0 || !st.DecidedAt.Equal(&decided) {
				t.Errorf("%s, then a %s: %+v; want it unchanged", phase, verdict, st)
			}
		}
		if st := tally(t, req, 3*time.Hour); st.Phase != phase {
			t.Errorf("%s past expiresAt: %s", phase, st.Phase)
		}
	}
}

func TestTallyKeepsVotesOfDeletedDecisions(t *testing.T) {
	req := approvalRequest("", 2)
	req.Status = custosv1alpha1.ApprovalRequestStatus{
		Phase: custosv1alpha1.ApprovalPending, Approvals: 1,
		Decisions: []custosv1alpha1.ApprovalVote{
			{Name: "gone", Approver: custosv1alpha1.Approver{Username: "bob"}, Decision: custosv1alpha1.Approve, Counted: true, DecidedAt: metav1.NewTime(t0)},
			{Name: "gone-too", Approver: custosv1alpha1.Approver{Username: "mallory"}, Decision: custosv1alpha1.Deny, Reason: "no", DecidedAt: metav1.NewTime(t0)},
		},
	}
	st := tally(t, req, time.Minute) // the decision objects are gone
	if st.Phase != custosv1alpha1.ApprovalPending || st.Approvals != 1 || len(st.Decisions) != 2 {
		t.Errorf("no decision objects: %+v; want the status's votes kept", st)
	}
	// bob deciding again (a new object) does not count twice.
	st = tally(t, req, time.Minute, decision(req.Name, "again", "bob", "", custosv1alpha1.Approve, 30*time.Second))
	if st.Approvals != 1 || st.Phase != custosv1alpha1.ApprovalPending {
		t.Errorf("bob again after his decision object went: %+v", st)
	}
	st = tally(t, req, time.Minute, decision(req.Name, "carol", "carol", "", custosv1alpha1.Approve, 30*time.Second))
	if st.Approvals != 2 || st.Phase != custosv1alpha1.ApprovalApproved {
		t.Errorf("carol after bob's decision object went: %+v; want Approved", st)
	}
	// The status's verdict stands: a recorded vote is not judged again
	// when its object is still there.
	st = tally(t, req, time.Minute, decision(req.Name, "gone-too", "mallory", "", custosv1alpha1.Deny, 0))
	if st.Phase == custosv1alpha1.ApprovalDenied || len(st.Decisions) != 2 {
		t.Errorf("a recorded uncounted deny judged again: %+v", st)
	}
	// A decision being deleted is not counted.
	d := decision(req.Name, "deleting", "carol", "", custosv1alpha1.Approve, 30*time.Second)
	now := metav1.NewTime(t0)
	d.DeletionTimestamp = &now
	if st := tally(t, req, time.Minute, d); st.Approvals != 1 {
		t.Errorf("a decision being deleted counted: %+v", st)
	}
}
