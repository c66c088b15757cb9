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

package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/lease"
	"github.com/custos-dev/custos/test/controlplane"
)

// leaseGoal: a kubernetesToken lease is issued within 1.2 times a raw
// TokenRequest's latency.
const leaseGoal = 1.2

// runLease (`make bench-lease`) times issuing a kubernetesToken lease
// through internal/lease against a raw TokenRequest for the same
// ServiceAccount, bound the same way, in alternating rounds on one control
// plane, and prints both and their ratio.
func runLease(ctx context.Context, c config) error {
	cp, err := controlplane.Start(ctx, controlplane.Options{RepoRoot: c.root})
	if err != nil {
		return err
	}
	defer func() { _ = cp.Stop() }()
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	const ns, sa, rounds, perRound = "bench-leases", "agent-bench", 10, 50
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	secret, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-bench-api"}, Type: custosv1alpha1.LeaseSecretType,
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	bound := lease.BoundObject{Kind: "Secret", Name: secret.Name, UID: secret.UID}
	backend := &lease.KubernetesToken{Tokens: lease.NewTokenSource(cs)}
	req := lease.Request{
		Namespace: ns, Agent: "bench", ServiceAccount: sa, TTL: 10 * time.Minute, Secret: bound,
		Credential: custosv1alpha1.CredentialSpec{Name: "api", KubernetesToken: &custosv1alpha1.KubernetesTokenCredential{Audience: "api"}},
	}
	raw := func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences:         []string{"api"},
			ExpirationSeconds: ptr.To[int64](600),
			BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: bound.Name, UID: bound.UID},
		}}, metav1.CreateOptions{})
		return err
	}
	viaLease := func() error {
		_, err := backend.Issue(ctx, req)
		return err
	}
	// Warm both paths (connections, the API server's caches).
	for range 20 {
		if err := raw(); err != nil {
			return err
		}
		if err := viaLease(); err != nil {
			return err
		}
	}
	var rawTimes, leaseTimes []time.Duration
	type path struct {
		do    func() error
		times *[]time.Duration
	}
	for r := range rounds {
		order := []path{{raw, &rawTimes}, {viaLease, &leaseTimes}}
		if r%2 == 1 { // alternate which goes first
			slices.Reverse(order)
		}
		for _, run := range order {
			for range perRound {
				start := time.Now()
				if err := run.do(); err != nil {
					return err
				}
				*run.times = append(*run.times, time.Since(start))
			}
		}
	}
	stat := func(ts []time.Duration) (p50, p99, mean time.Duration) {
		s := slices.Clone(ts)
		slices.Sort(s)
		var sum time.Duration
		for _, t := range s {
			sum += t
		}
		return s[len(s)/2], s[len(s)*99/100], sum / time.Duration(len(s))
	}
	r50, r99, rm := stat(rawTimes)
	l50, l99, lm := stat(leaseTimes)
	ratio := float64(l50) / float64(r50)
	verdict := "goal met"
	if ratio > leaseGoal {
		verdict = "GOAL MISSED"
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	fmt.Printf("\nkubernetesToken lease issuance vs a raw TokenRequest, %d each, bound to a Secret\n", len(rawTimes))
	fmt.Printf("  %-28s %8s %8s %8s\n", "", "p50 ms", "p99 ms", "mean ms")
	fmt.Printf("  %-28s %8.2f %8.2f %8.2f\n", "raw TokenRequest", ms(r50), ms(r99), ms(rm))
	fmt.Printf("  %-28s %8.2f %8.2f %8.2f\n", "lease (internal/lease)", ms(l50), ms(l99), ms(lm))
	fmt.Printf("  %-28s %7.2fx  goal <= %.1fx: %s\n\n", "ratio lease/raw (p50)", ratio, leaseGoal, verdict)
	return nil
}
