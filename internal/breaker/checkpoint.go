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

package breaker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// An AgentState is kept across a change of leader in two parts: the whole
// state (its 48 slots of baselines: written every few minutes and when the
// slot changes) and its tick part (what a tick changes: the evidence
// accumulating, the ratio rule's window, how long learning has been
// paused, and the baselines of the slot the tick was in; written every
// tick). The two together are the state exactly as the last tick left it.

// stateFormat is the encoding's version, its first byte.
const stateFormat = 1

// Hot reports whether the state holds anything a tick's checkpoint must
// keep: evidence, a ratio run, learning paused.
func (st *AgentState) Hot() bool {
	return st.evidence != [signals]float64{} || st.ratioRun > 0 || st.paused > 0
}

// MarshalBinary is the whole state: about 3 KiB (its baselines as
// float32, which the detector's decisions do not feel: make replay-risk's
// leader kills change no trip).
func (st *AgentState) MarshalBinary() ([]byte, error) {
	b := st.AppendHot(make([]byte, 0, 2560))
	for sig := range signals {
		b = appendSlots(b, &st.baseline[sig])
	}
	b = appendSlots(b, &st.linear[signalRecords])
	return appendSlots(b, &st.linear[signalCalls]), nil
}

// AppendHot appends the state's hot part (and when it began learning).
func (st *AgentState) AppendHot(b []byte) []byte {
	b = append(b, stateFormat)
	started := int64(0)
	if !st.started.IsZero() {
		started = st.started.UnixMilli()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(started))
	for _, e := range st.evidence {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(e))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(st.paused))
	b = binary.LittleEndian.AppendUint32(b, uint32(st.ratioRun))
	b = append(b, byte(len(st.ring)), byte(st.ringAt))
	for i := range st.ring {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(st.ring[i]))
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(st.ringBase[i]))
	}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(st.ringSum))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(st.baseSum))
}

func appendSlots(b []byte, s *[slots]slotStat) []byte {
	for i := range s {
		b = appendStat(b, &s[i])
	}
	return b
}

func appendStat(b []byte, s *slotStat) []byte {
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(s.mean)))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(s.vari)))
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(s.n)))
}

// UnmarshalBinary restores a whole state from MarshalBinary's bytes.
func (st *AgentState) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	var out AgentState
	out.decodeHot(&d)
	for sig := range signals {
		d.slots(&out.baseline[sig])
	}
	d.slots(&out.linear[signalRecords])
	d.slots(&out.linear[signalCalls])
	if err := d.done(); err != nil {
		return err
	}
	*st = out
	return nil
}

// RestoreHot sets the state's hot part from AppendHot's bytes, or its
// tick part from AppendTick's; the other baselines stay.
func (st *AgentState) RestoreHot(b []byte) error {
	d := decoder{b: b}
	out := *st
	out.decodeHot(&d)
	if len(d.b) > 0 && d.err == nil {
		slot := int(d.byte())
		if slot >= slots {
			d.fail("slot %d of %d", slot, slots)
		}
		var one [1]slotStat
		for sig := range signals {
			d.stat(&one[0])
			if d.err == nil {
				out.baseline[sig][slot] = one[0]
			}
		}
		for sig := range out.linear {
			d.stat(&one[0])
			if d.err == nil {
				out.linear[sig][slot] = one[0]
			}
		}
	}
	if err := d.done(); err != nil {
		return err
	}
	*st = out
	return nil
}

// AppendTick appends the state's tick part: its hot part and the
// baselines of the slot of t, the only ones a tick at t changes.
func (st *AgentState) AppendTick(b []byte, t time.Time) []byte {
	b = st.AppendHot(b)
	slot := slotOf(t)
	b = append(b, byte(slot))
	for sig := range signals {
		b = appendStat(b, &st.baseline[sig][slot])
	}
	b = appendStat(b, &st.linear[signalRecords][slot])
	return appendStat(b, &st.linear[signalCalls][slot])
}

func (st *AgentState) decodeHot(d *decoder) {
	if v := d.byte(); d.err == nil && v != stateFormat {
		d.err = fmt.Errorf("format %d, not %d", v, stateFormat)
		return
	}
	st.started = time.Time{}
	if ms := int64(d.u64()); ms != 0 {
		st.started = time.UnixMilli(ms).UTC()
	}
	for i := range st.evidence {
		st.evidence[i] = d.f64()
	}
	st.paused, st.ratioRun = int(d.u32()), int(d.u32())
	n, at := int(d.byte()), int(d.byte())
	if n > 0 && at >= n {
		d.fail("the ratio window's position %d is outside its %d ticks", at, n)
	}
	st.ring, st.ringBase, st.ringAt = nil, nil, at
	if n > 0 {
		st.ring, st.ringBase = make([]float64, n), make([]float64, n)
	}
	for i := range n {
		st.ring[i], st.ringBase[i] = d.f64(), d.f64()
	}
	st.ringSum, st.baseSum = d.f64(), d.f64()
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (d *decoder) take(n int) []byte {
	if d.err == nil && (n < 0 || len(d.b) < n) {
		d.err = errShort
	}
	if d.err != nil {
		// Zeros, enough for a number: what follows is not read.
		return make([]byte, 8)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) byte() byte   { return d.take(1)[0] }
func (d *decoder) u32() uint32  { return binary.LittleEndian.Uint32(d.take(4)) }
func (d *decoder) u64() uint64  { return binary.LittleEndian.Uint64(d.take(8)) }
func (d *decoder) f64() float64 { return d.finite(math.Float64frombits(d.u64())) }
func (d *decoder) f32() float64 { return d.finite(float64(math.Float32frombits(d.u32()))) }

func (d *decoder) finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.fail("a count that is not a number")
		return 0
	}
	return v
}

func (d *decoder) slots(s *[slots]slotStat) {
	for i := range s {
		d.stat(&s[i])
	}
}

func (d *decoder) stat(s *slotStat) {
	s.mean, s.vari, s.n = d.f32(), d.f32(), d.f32()
	if s.vari < 0 || s.n < 0 {
		d.fail("a negative spread or count")
	}
}

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes too many", len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("an agent's breaker state: %w", d.err)
	}
	return nil
}
