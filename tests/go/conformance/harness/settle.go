package harness

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
)

// HarnessSettle is the `settle` the harness gives every metric (GuardrailConfig): short, so a target without
// series (ops/ghost) reaches its final verdict in seconds, and long enough that Run answers Running first.
const HarnessSettle = "2s"

// settleDeadline bounds a Run/Resume sequence: settle plus a generous margin for a loaded machine.
const settleDeadline = 30 * time.Second

// RunToCompletion measures the way argo-rollouts' analysis controller does (analysis/analysis.go): Run; while
// the measurement is Running without FinishedAt, wait until its ResumeAt and call Resume with it. Every
// Running reply must carry ResumeAt, no FinishedAt and the StartedAt of the first. It returns every reply.
func RunToCompletion(p *Plugin, ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric) ([]v1alpha1.Measurement, []string) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	deadline := time.Now().Add(settleDeadline)
	m := p.Provider.Run(ar, metric)
	taken := []v1alpha1.Measurement{m}
	for m.Phase == v1alpha1.AnalysisPhaseRunning && m.FinishedAt == nil {
		first := taken[0]
		switch {
		case m.ResumeAt == nil:
			bad("Running reply %d has no resumeAt", len(taken))
			return taken, problems
		case m.StartedAt == nil || first.StartedAt == nil || !m.StartedAt.Equal(first.StartedAt):
			bad("Running reply %d has startedAt %v, want the first's %v", len(taken), m.StartedAt, first.StartedAt)
		case m.ResumeAt.Time.After(time.Now().Add(10 * time.Second)):
			bad("Running reply %d resumes at %s, more than 10s ahead", len(taken), m.ResumeAt.Time)
		}
		if time.Now().After(deadline) {
			bad("still Running after %s: %s", settleDeadline, describe(m))
			return taken, problems
		}
		time.Sleep(time.Until(m.ResumeAt.Time))
		m = p.Provider.Resume(ar, metric, m)
		taken = append(taken, m)
	}
	if len(taken) > 1 && (m.StartedAt == nil || !m.StartedAt.Equal(taken[0].StartedAt)) {
		bad("final reply has startedAt %v, want the first's %v", m.StartedAt, taken[0].StartedAt)
	}
	return taken, problems
}

// runSettled is RunToCompletion checked like runChecked: the final reply against want, the sequence for the
// Running contract.
func runSettled(t *testing.T, p *Plugin, ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric, want Want) []v1alpha1.Measurement {
	t.Helper()
	before := time.Now()
	taken, problems := RunToCompletion(p, ar, metric)
	after := time.Now()
	problems = append(problems, CheckMeasurement(taken[len(taken)-1], want, before, after)...)
	if len(problems) > 0 {
		t.Errorf("Run/Resume(%s) replies %s:\n  %s", metric.Name, phasesOf(taken), strings.Join(problems, "\n  "))
	}
	return taken
}

func phasesOf(taken []v1alpha1.Measurement) string {
	var phases []string
	for _, m := range taken {
		phases = append(phases, string(m.Phase))
	}
	return strings.Join(phases, " → ")
}

// testSettle: a canary without any kube-state-metrics series yet is Running with ResumeAt (as argo's Job
// provider answers), Resume keeps it Running on the same StartedAt, and after settle it is Failed saying what
// it waited for. A target whose series are stale (ops/stale under prod's 2m staleness) is Failed at once.
func testSettle(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	metric := NewMetric("restarts", GuardrailConfig(prom.URL, "restarts"))
	taken := runSettled(t, p, NewAnalysisRun(OpsGhost, "settle-ghost"), metric, Want{
		Phase:           failed,
		AnyValue:        true,
		MessageContains: []string{"no fresh kube-state-metrics series", "after waiting 2s for kube-state-metrics to report the pods"},
		Target:          OpsGhost,
		Prometheus:      prom.URL,
	})
	if len(taken) < 2 || taken[0].Phase != v1alpha1.AnalysisPhaseRunning {
		t.Errorf("a target without series yet must be Running first, got %s", phasesOf(taken))
	} else {
		first := taken[0]
		if !strings.HasPrefix(first.Message, "waiting for kube-state-metrics to report the pods") {
			t.Errorf("Running message %q does not say what it waits for", first.Message)
		}
		if first.Metadata["waitingFor"] != "pod-series" {
			t.Errorf("Running metadata[waitingFor] = %q, want pod-series", first.Metadata["waitingFor"])
		}
		if d := first.ResumeAt.Time.Sub(first.StartedAt.Time); d <= 0 || d > 2*time.Second {
			t.Errorf("resumeAt %s after startedAt, want within settle 2s", d)
		}
	}
	if got := taken[len(taken)-1].Metadata["failure"]; got != "no-data" {
		t.Errorf("metadata[failure] = %q, want no-data", got)
	}
	prod := GuardrailConfig(prom.URL, "restarts")
	prod["profile"] = "prod" // staleness 2m: ops/stale's last samples are 240 s old
	stale, _ := RunToCompletion(p, NewAnalysisRun(OpsStale, "settle-stale"), NewMetric("restarts", prod))
	if len(stale) != 1 || stale[0].Phase != failed || stale[0].Metadata["failure"] != "stale" {
		t.Errorf("stale series must fail at once, got %s: %s", phasesOf(stale), describe(stale[len(stale)-1]))
	}
}

// testUnprovenPhase: `unprovenPhase` maps an unproven class to the phase argo's client sees (Inconclusive,
// Error); metadata.failure keeps the class; a proven violation stays Failed; `Successful` is refused.
func testUnprovenPhase(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	withPhase := func(guardrail string, phases map[string]any) v1alpha1.Metric {
		c := GuardrailConfig(prom.URL, guardrail)
		c["unprovenPhase"] = phases
		return NewMetric(guardrail, c)
	}
	t.Run("no-data Inconclusive", func(t *testing.T) {
		taken := runSettled(t, p, NewAnalysisRun(OpsGhost, "unproven-ghost"), withPhase("restarts", map[string]any{"no-data": "Inconclusive"}),
			Want{Phase: v1alpha1.AnalysisPhaseInconclusive, AnyValue: true, MessageContains: []string{"after waiting 2s"}, Target: OpsGhost, Prometheus: prom.URL})
		if got := taken[len(taken)-1].Metadata["failure"]; got != "no-data" {
			t.Errorf("metadata[failure] = %q, want no-data", got)
		}
	})
	t.Run("stale Error", func(t *testing.T) {
		m := withPhase("restarts", map[string]any{"stale": "Error"})
		var config map[string]any
		_ = json.Unmarshal(m.Provider.Plugin[PluginName], &config)
		config["profile"] = "prod"
		taken := runSettled(t, p, NewAnalysisRun(OpsStale, "unproven-stale"), NewMetric("restarts", config),
			Want{Phase: v1alpha1.AnalysisPhaseError, AnyValue: true, MessageContains: []string{"stale kube-state-metrics data"}, Target: OpsStale, Prometheus: prom.URL})
		if got := taken[len(taken)-1].Metadata["failure"]; got != "stale" {
			t.Errorf("metadata[failure] = %q, want stale", got)
		}
	})
	t.Run("threshold stays Failed", func(t *testing.T) {
		runSettled(t, p, NewAnalysisRun(PayAPI, "unproven-pay"), withPhase("restarts", map[string]any{"no-data": "Inconclusive", "stale": "Error"}),
			Want{Phase: failed, Value: "3", Target: PayAPI, Prometheus: prom.URL})
	})
	t.Run("Successful refused", func(t *testing.T) {
		m := p.Provider.Run(NewAnalysisRun(OpsGhost, "unproven-bad"), withPhase("restarts", map[string]any{"no-data": "Successful"}))
		if m.Phase != failed || !strings.Contains(m.Message, "`Successful` is never allowed") || m.Metadata["failure"] != "config" {
			t.Errorf("unprovenPhase Successful must be a configuration error, got %s", describe(m))
		}
	})
}

// testSettleFromEnv: GUARDRAILS_SETTLE in the plugin's environment is the controller-wide default `settle` for
// metrics that set none (the registration has no arg parser yet): 0s answers absence at once; unset, the
// default 2m applies (Running first).
func testSettleFromEnv(t *testing.T) {
	bin, prom := requireEnv(t)
	noSettle := map[string]any{"address": prom.URL, "guardrail": "restarts"}
	zero, err := Start(bin, Options{Env: []string{"GUARDRAILS_SETTLE=0s"}})
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Kill()
	m := zero.Provider.Run(NewAnalysisRun(OpsGhost, "env-settle"), NewMetric("restarts", noSettle))
	if m.Phase != failed || m.Metadata["failure"] != "no-data" || strings.Contains(m.Message, "after waiting") {
		t.Errorf("GUARDRAILS_SETTLE=0s: want Failed no-data at once, got %s", describe(m))
	}
	byDefault, err := Start(bin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer byDefault.Kill()
	m = byDefault.Provider.Run(NewAnalysisRun(OpsGhost, "default-settle"), NewMetric("restarts", noSettle))
	if m.Phase != v1alpha1.AnalysisPhaseRunning || !strings.Contains(m.Message, "(up to 2m, ") || m.ResumeAt == nil || m.FinishedAt != nil {
		t.Errorf("default settle: want Running up to 2m with resumeAt, got %s", describe(m))
	}
}
