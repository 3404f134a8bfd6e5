package reconciler

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
)

const (
	successful = v1alpha1.AnalysisPhaseSuccessful
	failed     = v1alpha1.AnalysisPhaseFailed
	running    = v1alpha1.AnalysisPhaseRunning
)

// verdict is what every measurement of one metric must say.
type verdict struct {
	phase v1alpha1.AnalysisPhase
	// says are substrings every measurement message must contain, besides "ReplicaSet <ns>/<rs>".
	says []string
	// settles: the target has no series at all, which the plugin cannot tell from data not scraped yet, so
	// with `settle` the measurement is Running first and Failed "… after waiting <settle> …" once it passed.
	settles bool
}

var pass = verdict{phase: successful}

func fail(says ...string) verdict { return verdict{phase: failed, says: says} }

// fixtureVerdicts is the scenario table of tests/fixtures/prometheus/README.md for every guardrail in the
// shipped templates, per target: profile default, and the prod profile's differences. TestVerdictsAgreeWithHarness
// keeps it in step with harness.Expectations.
var fixtureVerdicts = []struct {
	target  harness.Target
	verdict map[string]verdict // guardrail → verdict under the default profile; missing: pass
	prod    map[string]verdict // differences under profile prod
}{
	{target: harness.ShopWeb},
	{target: harness.PayAPI, verdict: map[string]verdict{
		"restarts":        fail("api-7f6e5d4c3-b8kzt/api", "CrashLoopBackOff"),
		"not-ready":       fail("api-7f6e5d4c3-b8kzt"),
		"waiting-reasons": fail("api-7f6e5d4c3-b8kzt/api waiting: CrashLoopBackOff"),
	}},
	{target: harness.PayLedger,
		verdict: map[string]verdict{"oom-killed": fail("ledger-8a7b6c5d4-f5lnc/ledger OOMKilled")},
		prod:    map[string]verdict{"restarts": fail("ledger-8a7b6c5d4-f5lnc/ledger: 1 restart")}},
	{target: harness.PayWorker, verdict: map[string]verdict{"not-ready": fail("worker-9b8c7d6e5-d2vmk")}},
	{target: harness.MediaEncoder, verdict: map[string]verdict{"latest-image": fail("registry.local/media/encoder:latest", "tag `latest`")}},
	{target: harness.MediaThumbs, verdict: map[string]verdict{"latest-image": fail("registry.local:5000/team/app", "no tag")}},
	{target: harness.MediaResizer},
	{target: harness.MediaUploader, verdict: map[string]verdict{
		"not-ready":       fail("uploader-4d5e6f7a8-r5mhx", "ImagePullBackOff"),
		"waiting-reasons": fail("uploader-4d5e6f7a8-r5mhx/uploader waiting: ImagePullBackOff"),
		"latest-image":    fail("uploader-4d5e6f7a8-r5mhx/uploader image `nginx`", "ImagePullBackOff"),
	}},
	{target: harness.OpsStale, prod: everyGuardrail(fail("stale kube-state-metrics data", "older than staleness 2m"))},
	{target: harness.OpsGone, verdict: everyGuardrail(verdict{phase: failed, says: []string{"kube-state-metrics"}, settles: true})},
	{target: harness.OpsGhost, verdict: everyGuardrail(verdict{phase: failed, says: []string{"kube-state-metrics"}, settles: true})},
	{target: harness.PayYoung, verdict: map[string]verdict{"restarts": fail("young-8b9c0d1e2-j7xdc/young: 2 restarts")}},
}

// templateGuardrails are the guardrails of the shipped templates and examples the table covers.
var templateGuardrails = []string{"restarts", "not-ready", "waiting-reasons", "latest-image", "oom-killed"}

func everyGuardrail(v verdict) map[string]verdict {
	out := map[string]verdict{}
	for _, g := range templateGuardrails {
		out[g] = v
	}
	return out
}

// expectedVerdict is the verdict for guardrail on target under profile ("" or "default", or "prod").
func expectedVerdict(target harness.Target, guardrail, profile string) (verdict, bool) {
	for _, row := range fixtureVerdicts {
		if row.target != target {
			continue
		}
		if profile == "prod" {
			if v, ok := row.prod[guardrail]; ok {
				return v, true
			}
		}
		if v, ok := row.verdict[guardrail]; ok {
			return v, true
		}
		return pass, true
	}
	return verdict{}, false
}

// TestVerdictsAgreeWithHarness: every verdict the conformance harness asserts through the plugin client is the
// one this table expects through the controller, and every harness target is in the table.
func TestVerdictsAgreeWithHarness(t *testing.T) {
	for _, e := range harness.Expectations {
		v, ok := expectedVerdict(e.Target, e.Guardrail, e.Profile)
		if !ok {
			t.Errorf("%s: target %s is missing from fixtureVerdicts", e.Name(), e.Target)
		} else if v.phase != e.Phase {
			t.Errorf("%s: fixtureVerdicts says %s, harness.Expectations says %s", e.Name(), v.phase, e.Phase)
		}
	}
}

// guardrailOf is the guardrail and profile a shipped metric's plugin config names.
func guardrailOf(m v1alpha1.Metric) (guardrail, profile string, err error) {
	var cfg struct {
		Guardrail string `json:"guardrail"`
		Profile   string `json:"profile"`
	}
	if err := json.Unmarshal(m.Provider.Plugin[harness.PluginName], &cfg); err != nil {
		return "", "", fmt.Errorf("metric %s: %w", m.Name, err)
	}
	return cfg.Guardrail, cfg.Profile, nil
}

// TestShippedTemplates reconciles one AnalysisRun per analysisCase × fixture target through argo's
// controller, all at once, and asserts the run's phase and message, every metric's phase and every
// measurement's phase and message.
func TestShippedTemplates(t *testing.T) {
	requireWorld(t)
	settle := ""
	if settleSupported(t) {
		// Long enough for one Running answer, short enough to keep ops/gone and ops/ghost quick.
		settle = "4s"
		t.Logf("the plugin knows `settle`: every metric gets settle: %s", settle)
	}
	prom, err := world.proxy.Fresh(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	type pending struct {
		c      analysisCase
		target harness.Target
		run    *v1alpha1.AnalysisRun
		key    string
	}
	var all []pending
	for _, c := range analysisCases {
		for _, row := range fixtureVerdicts {
			run, err := newAnalysisRun(c, row.target, "", settle)
			if err != nil {
				t.Fatalf("%s %s: %v", c.name, row.target, err)
			}
			all = append(all, pending{c: c, target: row.target, run: run})
		}
	}
	start := time.Now()
	for i := range all {
		all[i].key = create(t, all[i].run)
	}
	// Every run completes within seconds; the bound only keeps a hung controller from hanging the suite.
	deadline := start.Add(2 * time.Minute)
	var wg sync.WaitGroup
	histories := make([][]observation, len(all))
	completed := make([]bool, len(all))
	for i := range all {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			histories[i], completed[i] = world.observed.waitCompleted(all[i].key, deadline)
		}(i)
	}
	wg.Wait()
	t.Logf("%d AnalysisRuns (%d template references × %d targets) completed through argo's controller in %s",
		len(all), len(analysisCases), len(fixtureVerdicts), time.Since(start).Round(time.Millisecond))

	for i, p := range all {
		t.Run(p.c.name+" "+p.target.String(), func(t *testing.T) {
			h := histories[i]
			if !completed[i] {
				last := "never observed"
				if len(h) > 0 {
					last = describeRun(h[len(h)-1].run)
				}
				t.Fatalf("AnalysisRun %s not completed by %s; last seen: %s", p.key, deadline.Format(time.RFC3339), last)
			}
			final := h[len(h)-1].run
			// A measurement taken long after the fixture's END judges other 5 m windows than the table's (the
			// first to change: ops/stale's last samples pass the 5 m staleness 60 s after END).
			if latest := latestStart(final); latest.Sub(prom.DataEnd) > 45*time.Second {
				t.Fatalf("a measurement started %s after the fixture's END: the machine is too slow for the fixture's windows",
					latest.Sub(prom.DataEnd).Round(time.Second))
			}
			checkRun(t, p.run, h, p.target, settle)
		})
	}
}

// checkRun asserts the completed run (the last of its observed versions) against the fixture's verdicts.
func checkRun(t *testing.T, spec *v1alpha1.AnalysisRun, history []observation, target harness.Target, settle string) {
	t.Helper()
	final, settling := history[len(history)-1].run, settle != ""
	wantRun := successful
	var firstFailed string
	for _, m := range spec.Spec.Metrics {
		g, profile, err := guardrailOf(m)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := expectedVerdict(target, g, profile)
		if v.phase == failed && firstFailed == "" {
			wantRun, firstFailed = failed, m.Name
		}
	}
	if final.Status.Phase != wantRun {
		t.Errorf("run phase = %s, want %s (message %q)", final.Status.Phase, wantRun, final.Status.Message)
	}
	rs := "ReplicaSet " + target.Namespace + "/" + target.ReplicaSet()
	failedMessages := map[string]string{}
	for _, m := range spec.Spec.Metrics {
		g, profile, _ := guardrailOf(m)
		v, _ := expectedVerdict(target, g, profile)
		result := resultOf(final, m.Name)
		if result == nil {
			t.Errorf("metric %s: no result", m.Name)
			continue
		}
		// In a failed run, argo terminates the other metrics after their first measurement (failureLimit 0).
		wantCount := int32(1)
		if wantRun == successful && m.Count != nil {
			wantCount = int32(m.Count.IntValue())
		}
		if result.Phase != v.phase {
			t.Errorf("metric %s (%s %s): phase %s, want %s; measurements %s", m.Name, g, profile, result.Phase, v.phase, describeMeasurements(result.Measurements))
		}
		if result.Count != wantCount || int32(len(result.Measurements)) != wantCount {
			t.Errorf("metric %s: count %d with %d measurements, want %d", m.Name, result.Count, len(result.Measurements), wantCount)
		}
		says := append([]string{rs}, v.says...)
		if v.settles && settling {
			says = append(says, "after waiting "+settle)
			if states := firstMeasurementStates(history, m.Name); len(states) < 2 || states[0].m.Phase != running || states[0].m.ResumeAt == nil {
				t.Errorf("metric %s: first measurement went %s, want Running with a resumeAt first while settling", m.Name, phases(states))
			}
		}
		for j, ms := range result.Measurements {
			if ms.Phase != v.phase {
				t.Errorf("metric %s measurement %d: phase %s, want %s (message %q)", m.Name, j, ms.Phase, v.phase, ms.Message)
			}
			for _, s := range says {
				if !strings.Contains(ms.Message, s) {
					t.Errorf("metric %s measurement %d: message %q does not contain %q", m.Name, j, ms.Message, s)
				}
			}
			if ms.StartedAt == nil || ms.FinishedAt == nil || ms.FinishedAt.Before(ms.StartedAt) || ms.ResumeAt != nil {
				t.Errorf("metric %s measurement %d: startedAt %v finishedAt %v resumeAt %v, want a finished measurement",
					m.Name, j, ms.StartedAt, ms.FinishedAt, ms.ResumeAt)
			}
			if got := ms.Metadata["prometheus"]; strings.TrimSuffix(got, "/") != world.proxy.URL {
				t.Errorf("metric %s measurement %d: metadata[prometheus] = %q, want the controller-wide %q", m.Name, j, got, world.proxy.URL)
			}
		}
		if v.phase == failed && len(result.Measurements) > 0 {
			failedMessages[m.Name] = result.Measurements[len(result.Measurements)-1].Message
		}
	}
	// argo names the worst metric (the first failed one in template order, when all were measured together),
	// with its count against failureLimit and the plugin's message: what `kubectl argo rollouts` shows.
	switch {
	case wantRun == successful && final.Status.Message != "":
		t.Errorf("run message = %q, want none", final.Status.Message)
	case wantRun == failed:
		named := firstFailed
		if settling {
			// While measurements settle they complete at their own Resume, not in one reconcile.
			for name := range failedMessages {
				if strings.HasPrefix(final.Status.Message, fmt.Sprintf("Metric %q", name)) {
					named = name
				}
			}
		}
		want := fmt.Sprintf(`Metric %q assessed Failed due to failed (1) > failureLimit (0): "Error Message: %s"`, named, failedMessages[named])
		if final.Status.Message != want {
			t.Errorf("run message = %q,\nwant %q", final.Status.Message, want)
		}
	}
}

func resultOf(run *v1alpha1.AnalysisRun, metric string) *v1alpha1.MetricResult {
	for i := range run.Status.MetricResults {
		if run.Status.MetricResults[i].Name == metric {
			return &run.Status.MetricResults[i]
		}
	}
	return nil
}

func latestStart(run *v1alpha1.AnalysisRun) time.Time {
	var latest time.Time
	for _, r := range run.Status.MetricResults {
		for _, m := range r.Measurements {
			if m.StartedAt != nil && m.StartedAt.After(latest) {
				latest = m.StartedAt.Time
			}
		}
	}
	return latest
}

func describeRun(run *v1alpha1.AnalysisRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %q message %q", run.Status.Phase, run.Status.Message)
	for _, r := range run.Status.MetricResults {
		fmt.Fprintf(&b, "; %s %s %s", r.Name, r.Phase, describeMeasurements(r.Measurements))
	}
	return b.String()
}

func describeMeasurements(ms []v1alpha1.Measurement) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("[%s %q]", m.Phase, m.Message)
	}
	return strings.Join(parts, " ")
}
