package reconciler

import (
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// settleSupported asks a plugin process of its own whether it knows the `settle` key (issue 13): an unknown
// key is a Failed measurement whose message names it.
func settleSupported(t *testing.T) bool {
	t.Helper()
	if _, err := world.proxy.Fresh(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	p, err := harness.Start(world.bin, harness.Options{})
	if err != nil {
		t.Fatalf("start a plugin to probe for settle: %v", err)
	}
	defer p.Kill()
	m := p.Provider.Run(harness.NewAnalysisRun(harness.ShopWeb, "probe-settle"),
		harness.NewMetric("restarts", map[string]any{"guardrail": "restarts", "settle": "1s"}))
	unknown := m.Phase == failed && strings.Contains(strings.ToLower(m.Message), "settle")
	if unknown {
		t.Logf("the plugin does not know `settle`: %q", m.Message)
	}
	return !unknown
}

// Settling, as argo's controller sees it (issue 13 items 1 and 3).
const (
	// settleFor is the `settle` set on every metric of the template in this test (default 2m).
	settleFor = "30s"
	// dataAfter is how long after the AnalysisRun is created the canary's series start to exist.
	dataAfter = 8 * time.Second
)

// TestDataAppearsAfterTheRunStarted runs the shipped standard template for shop/web, whose series Prometheus
// only answers dataAfter after the run was created (until then every query naming the canary's hash gets an
// empty result, as before the first scrape of new pods). Each metric's first measurement must be Running
// with a resumeAt while there is no data, argo's controller must resume it no earlier than that resumeAt,
// and once the data is there it must become Successful; then the run completes Successful as usual.
func TestDataAppearsAfterTheRunStarted(t *testing.T) {
	requireWorld(t)
	if !settleSupported(t) {
		t.Skip("needs settle: the plugin rejects the `settle` key, so a measurement whose target has no data yet " +
			"is Failed at once instead of Running with a resumeAt (issue 13 item 1, helper/settle)")
	}
	// The whole run, hold included, must judge the fixture's windows as the table does.
	if _, err := world.proxy.Fresh(time.Second); err != nil {
		t.Fatal(err)
	}
	c := analysisCases[0] // standard template, args of examples/canary/rollout.yaml's background analysis
	target := harness.ShopWeb
	run, err := newAnalysisRun(c, target, "10", settleFor)
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(dataAfter)
	world.proxy.Hold(target.Hash, until)
	created := time.Now()
	key := create(t, run)
	history, done := world.observed.waitCompleted(key, created.Add(2*time.Minute))
	held, passed := world.proxy.Release()
	if !done {
		last := "never observed"
		if len(history) > 0 {
			last = describeRun(history[len(history)-1].run)
		}
		t.Fatalf("AnalysisRun %s not completed within 2m; last seen: %s", key, last)
	}
	final := history[len(history)-1].run
	t.Logf("%d versions observed; %d queries held back, %d forwarded; completed %s after creation",
		len(history), len(held), len(passed), final.Status.CompletedAt.Sub(created).Round(time.Second))
	if len(held) == 0 {
		t.Fatal("no query naming the canary's hash reached Prometheus while its data was held back")
	}

	if final.Status.Phase != successful || final.Status.Message != "" {
		t.Errorf("run phase %s message %q, want Successful with no message", final.Status.Phase, final.Status.Message)
	}
	for _, m := range run.Spec.Metrics {
		result := resultOf(final, m.Name)
		if result == nil {
			t.Errorf("metric %s: no result", m.Name)
			continue
		}
		want := int32(m.Count.IntValue())
		if result.Phase != successful || result.Count != want || result.Successful != want {
			t.Errorf("metric %s: phase %s count %d successful %d, want Successful %d/%d; %s", m.Name, result.Phase,
				result.Count, result.Successful, want, want, describeMeasurements(result.Measurements))
		}
		checkSettled(t, m.Name, firstMeasurementStates(history, m.Name), until)
	}
}

// state is one observed version of a metric's first measurement.
type state struct {
	at time.Time // when the informer delivered it
	m  v1alpha1.Measurement
}

// firstMeasurementStates is every distinct version of the metric's first measurement, in order.
func firstMeasurementStates(history []observation, metric string) []state {
	var out []state
	for _, o := range history {
		r := resultOf(o.run, metric)
		if r == nil || len(r.Measurements) == 0 {
			continue
		}
		m := r.Measurements[0]
		if n := len(out); n > 0 && sameState(out[n-1].m, m) {
			continue
		}
		out = append(out, state{at: o.at, m: m})
	}
	return out
}

// phases is "Running → Running → Successful".
func phases(states []state) string {
	seq := make([]string, len(states))
	for i, s := range states {
		seq[i] = string(s.m.Phase)
	}
	return strings.Join(seq, " → ")
}

func sameState(a, b v1alpha1.Measurement) bool {
	return a.Phase == b.Phase && a.Message == b.Message && timeOf(a.ResumeAt).Equal(timeOf(b.ResumeAt)) &&
		timeOf(a.FinishedAt).Equal(timeOf(b.FinishedAt))
}

func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// checkSettled asserts the sequence Running (resumeAt ahead, not finished) …, then Successful, each Resume
// observed no earlier than the resumeAt before it, and the success only once data existed.
func checkSettled(t *testing.T, metric string, states []state, dataFrom time.Time) {
	t.Helper()
	t.Logf("metric %s: first measurement went %s", metric, phases(states))
	if len(states) < 2 {
		t.Errorf("metric %s: first measurement went %s, want Running … then Successful", metric, phases(states))
		return
	}
	t.Logf("metric %s: while waiting: %q", metric, states[0].m.Message)
	last := states[len(states)-1]
	if last.m.Phase != successful {
		t.Errorf("metric %s: first measurement ended %s (%q), want Successful", metric, last.m.Phase, last.m.Message)
	}
	if last.m.FinishedAt == nil || last.m.FinishedAt.Time.Before(dataFrom.Truncate(time.Second)) {
		t.Errorf("metric %s: Successful at %v, before the canary's data existed (%s)", metric, last.m.FinishedAt, dataFrom)
	}
	started := states[0].m.StartedAt
	for i, s := range states[:len(states)-1] {
		m := s.m
		if m.Phase != running {
			t.Errorf("metric %s: state %d is %s (%q), want Running until the data exists", metric, i, m.Phase, m.Message)
			continue
		}
		if m.ResumeAt == nil || m.FinishedAt != nil || m.StartedAt == nil {
			t.Errorf("metric %s: Running state %d has resumeAt %v finishedAt %v startedAt %v, want resumeAt only",
				metric, i, m.ResumeAt, m.FinishedAt, m.StartedAt)
			continue
		}
		if !m.ResumeAt.After(m.StartedAt.Time) || strings.TrimSpace(m.Message) == "" {
			t.Errorf("metric %s: Running state %d: resumeAt %s not after startedAt %s, or no message (%q)",
				metric, i, m.ResumeAt, m.StartedAt, m.Message)
		}
		// The resumed measurement is the same one: argo keeps it in place and the plugin its startedAt.
		if started == nil || !states[i+1].m.StartedAt.Equal(started) {
			t.Errorf("metric %s: state %d has startedAt %v, the first Running one %v", metric, i+1, states[i+1].m.StartedAt, started)
		}
		// argo's controller honours resumeAt: the next version exists only after it (resumeAt is stored with
		// second precision, so this is at worst a second lenient).
		if next := states[i+1].at; next.Before(m.ResumeAt.Time) {
			t.Errorf("metric %s: resumed at %s, before resumeAt %s", metric, next.Format(time.RFC3339Nano), m.ResumeAt.Format(time.RFC3339Nano))
		}
	}
}
