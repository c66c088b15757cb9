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

package gateway

import (
	"context"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// UsageLabel marks the ConfigMaps in which gateway replicas report what
// each agent took through them; the manager's breaker reads them.
const UsageLabel = "custos.dev/usage"

// Usage counts, per agent, what this replica served since it started:
// records, calls, and each call's log(1 + records) summed (the breaker's
// records per call). The counts only grow; an agent idle for a day is
// dropped (the breaker reads a missing agent as no use).
type Usage struct {
	// Started is when this process began counting (UsageStartedAt): a
	// replica started again, under the same name, counts from zero.
	Started time.Time

	mu     sync.Mutex
	agents map[types.NamespacedName]*agentUsage
}

type agentUsage struct {
	records, calls, logRecords float64
	last                       time.Time
}

// Add counts one call served to agent.
func (u *Usage) Add(agent types.NamespacedName, records int64, now time.Time) {
	if u == nil || agent.Name == "" {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.agents == nil {
		u.agents = map[types.NamespacedName]*agentUsage{}
	}
	a := u.agents[agent]
	if a == nil {
		a = &agentUsage{}
		u.agents[agent] = a
	}
	a.records += float64(records)
	a.calls++
	a.logRecords += math.Log1p(float64(records))
	a.last = now
}

// The report's keys besides the agents' (a namespace never starts with
// an underscore): when it was made and when its process began counting,
// in Unix milliseconds. The breaker turns counts into rates by them.
const (
	UsageReportedAt = "_at"
	UsageStartedAt  = "_started"
)

// Report is what the replica reports at now: "namespace.name" (a namespace
// has no dot) to "records calls logRecords", the counts since it started,
// and UsageReportedAt.
func (u *Usage) Report(now time.Time) map[string]string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]string, len(u.agents)+2)
	out[UsageReportedAt] = strconv.FormatInt(now.UnixMilli(), 10)
	out[UsageStartedAt] = strconv.FormatInt(u.Started.UnixMilli(), 10)
	for k, a := range u.agents {
		if now.Sub(a.last) > 24*time.Hour {
			delete(u.agents, k)
			continue
		}
		out[k.Namespace+"."+k.Name] = strconv.FormatFloat(a.records, 'f', -1, 64) + " " + strconv.FormatFloat(a.calls, 'f', -1, 64) + " " +
			strconv.FormatFloat(a.logRecords, 'f', 6, 64)
	}
	return out
}

// UsageReporter writes a replica's Usage every Every into the ConfigMap
// custos-usage-<Replica> of Namespace, for the manager's breaker, and once
// more as it stops. (Not owned by the Pod: an owner must be in the same
// namespace, and the garbage collector deletes what names one that is
// not; the manager deletes the reports of replicas long gone.)
type UsageReporter struct {
	Usage *Usage
	// Client reads and writes the report without a cache.
	Client    client.Client
	Namespace string
	// Replica is the pod's name.
	Replica string
	Every   time.Duration
	Log     logr.Logger
}

// Start reports until ctx ends; every replica reports (no leader).
func (r *UsageReporter) Start(ctx context.Context) error {
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// What was served since the last report, on the way out.
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := r.report(last, time.Now()); err != nil {
				r.Log.Error(err, "Reporting the agents' usage to the breaker on the way out")
			}
			return nil
		case now := <-t.C:
			if err := r.report(ctx, now); err != nil {
				r.Log.Error(err, "Reporting the agents' usage to the breaker")
			}
		}
	}
}

// NeedLeaderElection: every replica reports its own.
func (r *UsageReporter) NeedLeaderElection() bool { return false }

func (r *UsageReporter) report(ctx context.Context, now time.Time) error {
	data := r.Usage.Report(now)
	cm := &corev1.ConfigMap{}
	key := client.ObjectKey{Namespace: r.Namespace, Name: "custos-usage-" + r.Replica}
	err := r.Client.Get(ctx, key, cm)
	if apierrors.IsNotFound(err) {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{UsageLabel: "gateway"}}, Data: data}
		return r.Client.Create(ctx, cm)
	}
	if err != nil {
		return err
	}
	cm.Data = data
	return r.Client.Update(ctx, cm)
}
