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
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	custosv1alpha1 "github.com/custos-dev/custos/api/v1alpha1"
	"github.com/custos-dev/custos/internal/breaker"
)

const topUsage = `usage:
  kubectl custos top [-n NAMESPACE | -A] [--custos-namespace custos-system] [--watch [--every 15s]]

top shows each agent as the breaker sees it, the most evidence first: the
records it took in the last minute against what its baseline expected, the
evidence against what trips it (and which signal), how it is watched (its
sensitivity, an allowance in force, Observe), and whether it is learning
(its first 7 days, observed), Active or Frozen (by which freeze).

It reads what the breaker's leader keeps for the next leader (ConfigMaps
custos-breaker-state-* in the namespace Custos runs in, --custos-namespace),
so it is a platform administrator's view: the agents' owners may not read
those. It is as fresh as the breaker's last tick (15 s). --watch shows it
again every --every until interrupted.
`

// top is kubectl custos top.
func top(args []string, stdout, stderr io.Writer) int {
	l := newListing("top", topUsage, "the agents", stderr)
	custosNS := l.fs.String("custos-namespace", "custos-system", "The namespace Custos's manager runs in (where the breaker keeps its state).")
	watch := l.fs.Bool("watch", false, "Show it again every --every until interrupted.")
	every := l.fs.Duration("every", 15*time.Second, "How often --watch shows it again.")
	c, namespace, code, ok := l.connect(args, func() []string {
		if *every < time.Second {
			return []string{"--every must be at least 1s"}
		}
		return nil
	})
	if !ok {
		return code
	}
	for {
		if *watch {
			// Clear the terminal and go home, as watch(1) does.
			fmt.Fprint(stdout, "\x1b[H\x1b[2J")
		}
		if err := showTop(c, namespace, *custosNS, time.Now(), stdout); err != nil {
			fmt.Fprintf(stderr, "kubectl custos top: %v\n", err)
			return exitTrouble
		}
		if !*watch {
			return exitOK
		}
		time.Sleep(*every)
	}
}

// topRow is one agent's line.
type topRow struct {
	agent    *custosv1alpha1.Agent
	view     breaker.View
	kept     bool
	h        float64
	watch    string
	state    string
	evidence float64 // share of what trips it
}

func showTop(c client.Client, namespace, custosNS string, now time.Time, out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var agents custosv1alpha1.AgentList
	var opts []client.ListOption
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := c.List(ctx, &agents, opts...); err != nil {
		return err
	}
	var boundaries custosv1alpha1.DataBoundaryList
	if err := c.List(ctx, &boundaries); err != nil {
		return err
	}
	var freezes custosv1alpha1.AgentFreezeList
	if err := c.List(ctx, &freezes, opts...); err != nil {
		return err
	}
	store := &breaker.StateStore{Reader: c, Client: c, Namespace: custosNS}
	states, last, err := store.Load(ctx)
	if err != nil {
		return fmt.Errorf("%w (top reads the breaker's state in %s: a platform administrator's view; --custos-namespace says where Custos runs)", err, custosNS)
	}
	params := breaker.DefaultDetectorParams
	tenants := breaker.TenantWatches(boundaries.Items)
	holding := map[types.NamespacedName]string{}
	for _, f := range freezes.Items {
		if f.Status.Phase != custosv1alpha1.FreezeLifted {
			holding[types.NamespacedName{Namespace: f.Namespace, Name: f.Spec.Agent}] = fmt.Sprintf("%s (%s)", f.Name, f.Spec.Trigger)
		}
	}
	rows := make([]topRow, 0, len(agents.Items))
	for i := range agents.Items {
		a := &agents.Items[i]
		key := types.NamespacedName{Namespace: a.Namespace, Name: a.Name}
		w, allowance, observed := params.WatchOf(a, tenants[a.Labels[custosv1alpha1.TenantLabel]], now)
		r := topRow{agent: a, h: w.H}
		if st, ok := states[key]; ok {
			r.view, r.kept = st.View(), true
			r.evidence = r.view.Evidence / w.H
		}
		watch := []string{string(tenants[a.Labels[custosv1alpha1.TenantLabel]].SensitivityOf(a))}
		if allowance != "" {
			watch = append(watch, fmt.Sprintf("allowance %s %gx", allowance, w.Allow))
		}
		phase := "Pending"
		if a.Status.Lifecycle != nil && a.Status.Lifecycle.Phase != "" {
			phase = string(a.Status.Lifecycle.Phase)
		}
		r.state = phase
		switch {
		case holding[key] != "":
			r.state = "Frozen by " + holding[key]
		case r.kept && !r.view.Started.IsZero() && now.Sub(r.view.Started) < params.WarmUp:
			r.state = fmt.Sprintf("%s, learning until %s", phase, r.view.Started.Add(params.WarmUp).UTC().Format("Jan 2 15:04"))
			watch = append(watch, "Observe (first days)")
		case observed != "":
			watch = append(watch, "Observe ("+strings.TrimPrefix(observed, "its ")+")")
		}
		r.watch = strings.Join(watch, ", ")
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b topRow) int {
		if a.evidence != b.evidence {
			if a.evidence > b.evidence {
				return -1
			}
			return 1
		}
		return strings.Compare(a.agent.Namespace+"/"+a.agent.Name, b.agent.Namespace+"/"+b.agent.Name)
	})
	if last.IsZero() {
		fmt.Fprintf(out, "The breaker has kept nothing in %s yet (it runs with custos-gateway, in the leader).\n", custosNS)
	} else {
		fmt.Fprintf(out, "As of the breaker's tick at %s (%s ago).\n", last.UTC().Format(time.RFC3339), now.Sub(last).Round(time.Second))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tAGENT\tRECORDS/MIN\tBASELINE/MIN\tEVIDENCE\tWATCH\tSTATE")
	for _, r := range rows {
		records, baseline, evidence := "-", "-", "-"
		if r.kept {
			records, baseline = fmt.Sprintf("%.0f", r.view.LastMinute), fmt.Sprintf("%.0f", r.view.Expected)
			evidence = fmt.Sprintf("%.1f/%.0f", r.view.Evidence, r.h)
			if r.view.Evidence > 0 {
				evidence += " " + r.view.Signal
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.agent.Namespace, r.agent.Name, records, baseline, evidence, r.watch, r.state)
	}
	return tw.Flush()
}
