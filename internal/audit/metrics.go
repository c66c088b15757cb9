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

package audit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Log's Prometheus collectors.
type metrics struct {
	records     *prometheus.CounterVec
	checkpoints prometheus.Counter
	redactions  prometheus.Counter
	sinkErrors  *prometheus.CounterVec
	buffered    *prometheus.GaugeVec
	dropped     *prometheus.CounterVec
	writeTime   *prometheus.HistogramVec
}

// queueSink is the sink label of records the Log refused because its own
// queue was full, before they had a sequence number.
const queueSink = "queue"

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_audit_records_total",
			Help: "Audit records appended to the chain, by type (event or checkpoint).",
		}, []string{"type"}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custos_audit_checkpoints_total",
			Help: "Signed audit checkpoints written.",
		}),
		redactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custos_audit_redactions_total",
			Help: "Audit record fields whose value looked like a secret and was redacted.",
		}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_audit_sink_errors_total",
			Help: "Failed writes to an audit sink; the records went to its on-disk buffer.",
		}, []string{"sink"}),
		buffered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "custos_audit_buffered_records",
			Help: "Audit records waiting in a sink's on-disk buffer for the sink to recover.",
		}, []string{"sink"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_audit_records_dropped_total",
			Help: `Audit records lost: a sink's on-disk buffer was full or unwritable, or (sink="queue") the Log's queue was full.`,
		}, []string{"sink"}),
		writeTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "custos_audit_sink_write_seconds",
			Help:    "Time to write (and sync) one batch of audit records to a sink.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"sink"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.records, err = register(reg, m.records); err != nil {
		return nil, err
	}
	if m.checkpoints, err = register(reg, m.checkpoints); err != nil {
		return nil, err
	}
	if m.redactions, err = register(reg, m.redactions); err != nil {
		return nil, err
	}
	if m.sinkErrors, err = register(reg, m.sinkErrors); err != nil {
		return nil, err
	}
	if m.buffered, err = register(reg, m.buffered); err != nil {
		return nil, err
	}
	if m.dropped, err = register(reg, m.dropped); err != nil {
		return nil, err
	}
	if m.writeTime, err = register(reg, m.writeTime); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name: a second Log in the same process (tests, a reopened Log)
// shares the first one's.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		are := prometheus.AlreadyRegisteredError{}
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
