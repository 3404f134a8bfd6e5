package harness

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	goPlugin "github.com/hashicorp/go-plugin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Load of the concurrency case: Argo runs up to 30 analysis workers against one plugin process.
const (
	concurrentWorkers   = 30
	runsPerWorker       = 1000
	concurrencyDeadline = 4 * time.Minute
	largeMeasurements   = 5000
	minLargeGobBytes    = 1 << 20
)

// Run runs every conformance case against GUARDRAILS_BIN. Call it from a test in a module whose TestMain is
// harness.Main.
func Run(t *testing.T) {
	bin, _ := requireEnv(t)
	t.Logf("plugin binary: %s", bin)
	t.Logf("go-plugin socket dir: the client sets %s only with a RunnerFunc (Argo has none): %q in our env",
		goPlugin.EnvUnixSocketDir, os.Getenv(goPlugin.EnvUnixSocketDir))

	// A second plugin stays idle through the whole suite, so that hashicorp/yamux's keepalive pings (every
	// 30 s, session closed when one goes unanswered for 10 s) are exercised even if the suite is fast.
	idle, idleErr := Start(bin, Options{})
	idleSince := time.Now()
	if idle != nil {
		t.Cleanup(idle.Kill)
	}

	t.Run("NoCookie", testNoCookie)
	t.Run("WrongCookieViaGoPlugin", testWrongCookie)
	t.Run("HandshakeLine", testHandshakeLine)

	p, err := Dial(bin, Options{})
	if err != nil {
		t.Fatalf("handshake + Dispense(%s): %v", DispenseName, err)
	}
	t.Cleanup(p.Kill)
	t.Run("Handshake", func(t *testing.T) { testHandshake(t, p) })
	t.Run("InitPlugin", func(t *testing.T) {
		if resp := p.Provider.InitPlugin(); resp.ErrorString != "" {
			t.Fatalf("InitPlugin = RpcError{%q}, want empty", resp.ErrorString)
		}
	})
	t.Run("Ping", func(t *testing.T) { testPing(t, p) })
	t.Run("Type", func(t *testing.T) { testType(t, p) })
	t.Run("GetMetadata", func(t *testing.T) { testGetMetadata(t, p) })
	t.Run("RunDetails", func(t *testing.T) { testRunDetails(t, p) })
	t.Run("RunScenarios", func(t *testing.T) { testScenarios(t, p) })
	t.Run("ExplicitTarget", testExplicitTarget)
	t.Run("Security", testSecurity)
	t.Run("AddressFromEnv", testAddressFromEnv)
	t.Run("CredentialsStripped", testCredentialsStripped)
	t.Run("ResumeTerminate", func(t *testing.T) { testResumeTerminate(t, p) })
	t.Run("Settle", func(t *testing.T) { testSettle(t, p) })
	t.Run("SettleFromEnv", testSettleFromEnv)
	t.Run("UnprovenPhase", func(t *testing.T) { testUnprovenPhase(t, p) })
	t.Run("GarbageCollect", func(t *testing.T) { testGarbageCollect(t, p) })
	t.Run("BadConfig", func(t *testing.T) { testBadConfig(t, p) })
	t.Run("LargeAnalysisRun", func(t *testing.T) { testLargeAnalysisRun(t, p) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, p) })
	t.Run("KillMidCall", testKillMidCall)
	t.Run("SocketRemovedOnQuit", testSocketRemovedOnQuit)
	t.Run("SocketRemovedOnSIGTERM", testSocketRemovedOnSIGTERM)
	t.Run("IdleThroughKeepalive", func(t *testing.T) {
		if idleErr != nil {
			t.Fatalf("start the idle plugin: %v", idleErr)
		}
		testIdleThroughKeepalive(t, idle, idleSince)
	})
}

// keepaliveIdle outlasts hashicorp/yamux's 30 s keepalive interval plus its 10 s write timeout.
const keepaliveIdle = 45 * time.Second

func testIdleThroughKeepalive(t *testing.T, p *Plugin, since time.Time) {
	if wait := keepaliveIdle - time.Since(since); wait > 0 {
		t.Logf("waiting %s more so the idle connection sees yamux keepalive pings", wait.Round(time.Second))
		time.Sleep(wait)
	}
	_, prom := requireEnv(t)
	if p.Client.Exited() {
		t.Fatal("the idle plugin exited")
	}
	if err := p.Ping(); err != nil {
		t.Fatalf("Ping after %s idle: %v (yamux keepalive unanswered?)", time.Since(since).Round(time.Second), err)
	}
	runChecked(t, p, NewAnalysisRun(ShopWeb, "idle"), NewMetric("restarts", GuardrailConfig(prom.URL, "restarts")),
		Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL})
}

// runChecked calls Run and fails t with every difference from want.
func runChecked(t *testing.T, p *Plugin, ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric, want Want) v1alpha1.Measurement {
	t.Helper()
	before := time.Now()
	m := p.Provider.Run(ar, metric)
	after := time.Now()
	if problems := CheckMeasurement(m, want, before, after); len(problems) > 0 {
		t.Errorf("Run(%s) reply %s:\n  %s", metric.Name, describe(m), strings.Join(problems, "\n  "))
	}
	return m
}

func describe(m v1alpha1.Measurement) string {
	b, _ := json.Marshal(m)
	return string(b)
}

var (
	payAPIPod   = regexp.MustCompile(`\bapi-7f6e5d4c3-[a-z0-9]{5}\b`)
	uploaderPod = regexp.MustCompile(`\buploader-4d5e6f7a8-[a-z0-9]{5}\b`)
	// A no-data message must say for which canary: the rollout or its hash.
	ghostTarget = regexp.MustCompile(`ghost|7a8b9c0d1`)
)

func testHandshake(t *testing.T, p *Plugin) {
	rc := p.Client.ReattachConfig()
	if rc == nil {
		t.Fatal("no reattach config after a successful handshake")
	}
	if rc.Protocol != goPlugin.ProtocolNetRPC {
		t.Errorf("protocol = %q, want %q", rc.Protocol, goPlugin.ProtocolNetRPC)
	}
	if rc.Addr.Network() != "unix" {
		t.Errorf("network = %q (%s), want unix", rc.Addr.Network(), rc.Addr)
	}
	if v := p.Client.NegotiatedVersion(); v != 1 {
		t.Errorf("negotiated app protocol version = %d, want 1", v)
	}
	if p.Client.Exited() {
		t.Error("plugin exited right after the handshake")
	}
	t.Logf("plugin pid %d listening on %s %s", rc.Pid, rc.Addr.Network(), rc.Addr)
}

func testPing(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	metric := NewMetric("restarts", GuardrailConfig(prom.URL, "restarts"))
	for i := 0; i < 3; i++ {
		if err := p.Ping(); err != nil {
			t.Fatalf("Ping #%d: %v", i, err)
		}
		runChecked(t, p, NewAnalysisRun(ShopWeb, "ping"), metric,
			Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL})
	}
}

func testType(t *testing.T, p *Plugin) {
	got := p.Provider.Type()
	if strings.TrimSpace(got) == "" || strings.HasPrefix(got, "Type rpc call error") {
		t.Fatalf("Type() = %q, want a non-empty provider type", got)
	}
	t.Logf("Type() = %q", got)
}

func testGetMetadata(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	for _, g := range Guardrails {
		md := p.Provider.GetMetadata(NewMetric(g, ExplicitTargetConfig(prom.URL, g, PayAPI)))
		if e, ok := md["error"]; ok {
			t.Errorf("GetMetadata(%s) error: %s", g, e)
			continue
		}
		for _, problem := range CheckQueries(md, PayAPI) {
			t.Errorf("GetMetadata(%s) = %v: %s", g, md, problem)
		}
	}
}

func testRunDetails(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	run := func(g string, target Target, want Want) {
		t.Run(g+" "+target.String(), func(t *testing.T) {
			want.Target, want.Prometheus = target, prom.URL
			runSettled(t, p, NewAnalysisRun(target, "ar-"+target.Rollout), NewMetric(g, GuardrailConfig(prom.URL, g)), want)
		})
	}
	// The healthy canary, with the target defaulted from the AnalysisRun.
	run("restarts", ShopWeb, Want{Phase: successful, Value: "0"})
	run("not-ready", ShopWeb, Want{Phase: successful, Value: "0"})
	run("latest-image", ShopWeb, Want{Phase: successful, Value: "0"})
	// pay/api: pod A restarted 3 times and is in CrashLoopBackOff, not ready.
	run("restarts", PayAPI, Want{Phase: failed, Value: "3",
		MessageMatches: []*regexp.Regexp{payAPIPod}, MessageContains: []string{"CrashLoopBackOff"}})
	run("not-ready", PayAPI, Want{Phase: failed, Value: "1", MessageMatches: []*regexp.Regexp{payAPIPod}})
	// media/uploader: untagged image stuck in ImagePullBackOff.
	run("latest-image", MediaUploader, Want{Phase: failed, Value: "1",
		MessageMatches: []*regexp.Regexp{uploaderPod}, MessageContains: []string{"uploader", "ImagePullBackOff"}})
	// replicas judges the ReplicaSet object's own series, which this fixture does not carry: through plugin mode
	// it fails closed as no-data, naming the series and the ReplicaSet instead of blaming pod coverage.
	run("replicas", ShopWeb, Want{Phase: failed, AnyValue: true,
		MessageContains: []string{"no kube_replicaset_spec_replicas for ReplicaSet shop/web-", "does the ReplicaSet exist?"}})
	// ops/ghost: no series at all: Running while it settles (2s here), then fail closed, and say for which target.
	for _, g := range Guardrails {
		run(g, OpsGhost, Want{Phase: failed, AnyValue: true, MessageMatches: []*regexp.Regexp{ghostTarget}})
	}
}

// testCredentialsStripped gives the plugin an address with user:password; Prometheus (no auth configured)
// ignores them, so the Run succeeds, and the password must appear nowhere: not in the reply, not in the log.
func testCredentialsStripped(t *testing.T) {
	bin, prom := requireEnv(t)
	p, err := Start(bin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	const password = "s3cr3t-do-not-log"
	withCredentials := strings.Replace(prom.URL, "http://", "http://guardrails:"+password+"@", 1)
	m := runChecked(t, p, NewAnalysisRun(ShopWeb, "credentials"), NewMetric("restarts", GuardrailConfig(withCredentials, "restarts")),
		Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL})
	if strings.Contains(describe(m), password) {
		t.Errorf("the password appears in the measurement: %s", describe(m))
	}
	if strings.Contains(p.Logs(), password) {
		t.Errorf("the password appears in the plugin's log")
	}
}

func testScenarios(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	for _, e := range Expectations {
		t.Run(e.Name(), func(t *testing.T) {
			runSettled(t, p, NewAnalysisRun(e.Target, "ar-"+e.Target.Rollout), NewMetric(e.Guardrail, e.Config(prom.URL)),
				Want{Phase: e.Phase, AnyValue: true, Target: e.Target, Prometheus: prom.URL})
		})
	}
}

func testExplicitTarget(t *testing.T) {
	// A target in another namespace than the AnalysisRun's needs the admin's --allow-cross-namespace
	// (docs/security.md); without it the same configuration is refused (security.go, OwnNamespaceOnly).
	bin, prom := requireEnv(t)
	p, err := Start(bin, Options{Args: []string{"--allow-cross-namespace"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	want := Want{Phase: failed, Value: "3", MessageMatches: []*regexp.Regexp{payAPIPod},
		Target: PayAPI, Prometheus: prom.URL}
	t.Run("bare AnalysisRun", func(t *testing.T) {
		runChecked(t, p, BareAnalysisRun("explicit"), NewMetric("restarts", ExplicitTargetConfig(prom.URL, "restarts", PayAPI)), want)
	})
	t.Run("config overrides AnalysisRun defaults", func(t *testing.T) {
		runChecked(t, p, NewAnalysisRun(ShopWeb, "override"), NewMetric("restarts", ExplicitTargetConfig(prom.URL, "restarts", PayAPI)), want)
	})
}

func testAddressFromEnv(t *testing.T) {
	bin, prom := requireEnv(t)
	p, err := Start(bin, Options{Env: []string{"GUARDRAILS_PROMETHEUS_ADDRESS=" + prom.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	runChecked(t, p, NewAnalysisRun(PayAPI, "env"), NewMetric("restarts", map[string]any{"guardrail": "restarts"}),
		Want{Phase: failed, Value: "3", Target: PayAPI, Prometheus: prom.URL})
}

func givenMeasurement(address string) v1alpha1.Measurement {
	started := metav1.NewTime(time.Date(2026, 1, 1, 11, 58, 30, 123456789, time.UTC))
	resume := metav1.NewTime(time.Date(2026, 1, 1, 12, 3, 30, 0, time.UTC))
	return v1alpha1.Measurement{
		Phase:     v1alpha1.AnalysisPhaseRunning,
		Message:   "waiting for the next evaluation",
		StartedAt: &started,
		ResumeAt:  &resume,
		Value:     "2",
		Metadata:  map[string]string{"prometheus": address, "query": `sum(kube_pod_info{namespace="shop"})`},
	}
}

func testResumeTerminate(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	metric := NewMetric("restarts", GuardrailConfig(prom.URL, "restarts"))
	ar := NewAnalysisRun(ShopWeb, "resume")
	given := givenMeasurement(prom.URL)
	// Resume of a Running measurement measures again, on the measurement's own StartedAt (settle is long over
	// for one started in January), and finishes it: shop/web is healthy.
	resumedAt := time.Now()
	resumed := p.Provider.Resume(ar, metric, given)
	if problems := CheckMeasurement(resumed, Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL}, resumedAt, time.Now()); len(problems) > 0 {
		// CheckMeasurement bounds StartedAt by the call; a resumed measurement keeps the given one instead.
		var rest []string
		for _, p := range problems {
			if !strings.HasPrefix(p, "startedAt ") {
				rest = append(rest, p)
			}
		}
		if len(rest) > 0 {
			t.Errorf("Resume(Running) returned %s:\n  %s", describe(resumed), strings.Join(rest, "\n  "))
		}
	}
	if resumed.StartedAt == nil || !resumed.StartedAt.Equal(given.StartedAt) {
		t.Errorf("Resume(Running) startedAt = %v, want the given %v", resumed.StartedAt, given.StartedAt)
	}
	// Resume of a finished measurement returns it as given.
	done := given.DeepCopy()
	done.Phase = v1alpha1.AnalysisPhaseFailed
	doneAt := metav1.NewTime(time.Date(2026, 1, 1, 11, 59, 0, 0, time.UTC))
	done.FinishedAt = &doneAt
	if got := p.Provider.Resume(ar, metric, *done); len(SameMeasurement(got, *done)) > 0 {
		t.Errorf("Resume returned %s, want the finished measurement given %s:\n  %s", describe(got), describe(*done),
			strings.Join(SameMeasurement(got, *done), "\n  "))
	}
	// Terminate marks the measurement finished without error: FinishedAt is set (to the call's time when the
	// measurement had none), and nothing else changes. In particular the phase is never promoted: a Running
	// measurement that is terminated must not become Successful.
	calledAt := time.Now()
	got := p.Provider.Terminate(ar, metric, given)
	returnedAt := time.Now()
	if got.FinishedAt == nil {
		t.Fatalf("Terminate returned %s: FinishedAt is not set", describe(got))
	}
	if f := got.FinishedAt.Time; f.Before(calledAt.Add(-time.Second)) || f.After(returnedAt.Add(time.Second)) {
		t.Errorf("Terminate set FinishedAt %s, outside the call [%s, %s]", f, calledAt, returnedAt)
	}
	// A Running (settling) measurement that is terminated is Failed, not proven; left Running with a FinishedAt
	// the controller would count it as in flight forever (assessMetricStatus).
	want := given.DeepCopy()
	want.FinishedAt = got.FinishedAt
	want.Phase = failed
	want.Message = "terminated by the controller before the measurement was proven: " + given.Message
	want.ResumeAt = nil
	if diff := SameMeasurement(got, *want); len(diff) > 0 {
		t.Errorf("Terminate returned %s, want the measurement given, Failed, plus FinishedAt:\n  %s", describe(got), strings.Join(diff, "\n  "))
	}
	// A measurement already finished keeps its FinishedAt.
	finished := given.DeepCopy()
	earlier := metav1.NewTime(time.Date(2026, 1, 1, 11, 59, 0, 0, time.UTC))
	finished.FinishedAt = &earlier
	if diff := SameMeasurement(p.Provider.Terminate(ar, metric, *finished), *finished); len(diff) > 0 {
		t.Errorf("Terminate changed a finished measurement:\n  %s", strings.Join(diff, "\n  "))
	}
}

func testGarbageCollect(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	resp := p.Provider.GarbageCollect(NewAnalysisRun(ShopWeb, "gc"), NewMetric("restarts", GuardrailConfig(prom.URL, "restarts")), 10)
	if resp.ErrorString != "" {
		t.Fatalf("GarbageCollect = RpcError{%q}, want empty", resp.ErrorString)
	}
}

func testBadConfig(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	good := func(t *testing.T) {
		t.Helper()
		runChecked(t, p, NewAnalysisRun(ShopWeb, "after-bad"), NewMetric("restarts", GuardrailConfig(prom.URL, "restarts")),
			Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL})
	}
	cases := []struct {
		name   string
		raw    string
		naming []string // the message must contain one of these (case-insensitive)
	}{
		{"unknown key", fmt.Sprintf(`{"address":%q,"guardrail":"restarts","thresold":1}`, prom.URL), []string{"thresold"}},
		{"invalid JSON", `{"guardrail": "restarts",`, []string{"json", "parse", "eof", "syntax", "invalid"}},
		{"unknown guardrail", fmt.Sprintf(`{"address":%q,"guardrail":"restart"}`, prom.URL), []string{"restart"}},
		{"not an object", `["restarts"]`, []string{"json", "object", "map", "invalid", "sequence", "array"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := time.Now()
			m := p.Provider.Run(NewAnalysisRun(ShopWeb, "bad"), RawMetric("restarts", []byte(c.raw)))
			after := time.Now()
			problems := CheckMeasurement(m, Want{Phase: failed, AnyValue: true}, before, after)
			msg := strings.ToLower(m.Message)
			named := false
			for _, n := range c.naming {
				named = named || strings.Contains(msg, n)
			}
			if !named {
				problems = append(problems, fmt.Sprintf("message does not name the problem (one of %q)", c.naming))
			}
			if len(problems) > 0 {
				t.Errorf("config %s: reply %s:\n  %s", c.raw, describe(m), strings.Join(problems, "\n  "))
			}
			good(t)
		})
	}
}

// largeAnalysisRun carries n past measurements, as a long-running AnalysisRun does.
func largeAnalysisRun(target Target, address string, n int) *v1alpha1.AnalysisRun {
	ar := NewAnalysisRun(target, "large")
	ms := make([]v1alpha1.Measurement, n)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range ms {
		s := metav1.NewTime(t0.Add(time.Duration(i) * time.Minute))
		f := metav1.NewTime(s.Add(1500 * time.Millisecond))
		ms[i] = v1alpha1.Measurement{
			Phase:      successful,
			Message:    fmt.Sprintf("measurement %d: 0 restarts across 3 pods of web-6c8d7f9a1", i),
			StartedAt:  &s,
			FinishedAt: &f,
			Value:      "0",
			Metadata: map[string]string{
				"prometheus": address,
				"query":      fmt.Sprintf(`sum by (pod) (increase(kube_pod_container_status_restarts_total{namespace="shop",pod=~"web-6c8d7f9a1-.*"}[5m])) # %d`, i),
			},
		}
	}
	ar.Status.MetricResults = []v1alpha1.MetricResult{{
		Name: "restarts", Phase: v1alpha1.AnalysisPhaseRunning, Measurements: ms,
		Count: int32(n), Successful: int32(n), Metadata: map[string]string{"query": "restarts"},
	}}
	return ar
}

// gobSize is the size of args as net/rpc's gob codec writes it on a fresh stream (type definitions included).
func gobSize(args any) (int, error) {
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(&args)
	return buf.Len(), err
}

func testLargeAnalysisRun(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	ar := largeAnalysisRun(ShopWeb, prom.URL, largeMeasurements)
	metric := NewMetric("restarts", GuardrailConfig(prom.URL, "restarts"))
	size, err := gobSize(rpc.RunArgs{AnalysisRun: ar, Metric: metric})
	if err != nil {
		t.Fatalf("gob-encode the large RunArgs: %v", err)
	}
	t.Logf("RunArgs with %d measurements: %d bytes of gob (%.2f MiB)", largeMeasurements, size, float64(size)/(1<<20))
	if size <= minLargeGobBytes {
		t.Fatalf("large RunArgs is only %d bytes; the case must exceed %d", size, minLargeGobBytes)
	}
	start := time.Now()
	runChecked(t, p, ar, metric, Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL})
	t.Logf("Run with the large AnalysisRun took %s", time.Since(start))
	// The stream must still be in sync afterwards.
	runChecked(t, p, NewAnalysisRun(PayAPI, "after-large"), NewMetric("restarts", GuardrailConfig(prom.URL, "restarts")),
		Want{Phase: failed, Value: "3", Target: PayAPI, Prometheus: prom.URL})
}

func testConcurrent(t *testing.T, p *Plugin) {
	_, prom := requireEnv(t)
	perWorker := runsPerWorker
	if v := os.Getenv("GUARDRAILS_CONFORMANCE_RUNS_PER_WORKER"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("GUARDRAILS_CONFORMANCE_RUNS_PER_WORKER=%q: want a positive integer", v)
		}
		perWorker = n
		t.Logf("GUARDRAILS_CONFORMANCE_RUNS_PER_WORKER=%d overrides the default %d", n, runsPerWorker)
	}
	// Alternate two targets with different verdicts, values and queries, so that a reply delivered to the
	// wrong request is detected; each request also carries its own AnalysisRun name.
	type kind struct {
		target    Target
		guardrail string
		want      Want
	}
	kinds := []kind{
		{ShopWeb, "restarts", Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL}},
		{PayAPI, "not-ready", Want{Phase: failed, Value: "1", Target: PayAPI, Prometheus: prom.URL}},
	}
	var (
		done, mismatched, deadlined atomic.Int64
		mu                          sync.Mutex
		examples                    []string
		wg                          sync.WaitGroup
	)
	deadline := time.Now().Add(concurrencyDeadline)
	start := time.Now()
	for w := 0; w < concurrentWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				if time.Now().After(deadline) {
					deadlined.Add(1)
					return
				}
				k := kinds[(w+i)%len(kinds)]
				if err := p.Ping(); err != nil {
					mismatched.Add(1)
					mu.Lock()
					examples = append(examples, fmt.Sprintf("worker %d run %d: Ping: %v", w, i, err))
					mu.Unlock()
					continue
				}
				before := time.Now()
				m := p.Provider.Run(NewAnalysisRun(k.target, fmt.Sprintf("w%d-r%d", w, i)),
					NewMetric(k.guardrail, GuardrailConfig(prom.URL, k.guardrail)))
				problems := CheckMeasurement(m, k.want, before, time.Now())
				other := kinds[1-(w+i)%len(kinds)].target
				for _, q := range m.Metadata {
					if strings.Contains(q, other.Hash) {
						problems = append(problems, "reply names the other target's hash "+other.Hash)
					}
				}
				done.Add(1)
				if len(problems) > 0 {
					mismatched.Add(1)
					mu.Lock()
					if len(examples) < 10 {
						examples = append(examples, fmt.Sprintf("worker %d run %d (%s %s): %s: %s", w, i,
							k.guardrail, k.target, describe(m), strings.Join(problems, "; ")))
					}
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := done.Load()
	t.Logf("%d workers × %d Runs (Ping before each): %d replies in %s (%.0f Runs/s), %d wrong",
		concurrentWorkers, perWorker, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), mismatched.Load())
	if n := deadlined.Load(); n > 0 {
		t.Errorf("%d workers stopped at the %s deadline: only %d of %d Runs done", n, concurrencyDeadline,
			total, concurrentWorkers*perWorker)
	}
	if mismatched.Load() > 0 {
		t.Errorf("%d of %d concurrent replies wrong; first ones:\n  %s", mismatched.Load(), total, strings.Join(examples, "\n  "))
	}
}

func testKillMidCall(t *testing.T) {
	bin, prom := requireEnv(t)
	p, err := Start(bin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	metric := NewMetric("restarts", GuardrailConfig(prom.URL, "restarts"))
	ar := largeAnalysisRun(ShopWeb, prom.URL, largeMeasurements) // large, so calls are in flight for a while
	var wg sync.WaitGroup
	var replies, errored atomic.Int64
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				m := p.Provider.Run(ar, metric)
				replies.Add(1)
				if m.Phase == v1alpha1.AnalysisPhaseError {
					errored.Add(1)
					return // the connection is gone
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	killStart := time.Now()
	p.Kill()
	killTook := time.Since(killStart)
	close(stop)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(15 * time.Second):
		t.Fatal("in-flight Runs still blocked 15 s after client.Kill()")
	}
	t.Logf("Kill with Runs in flight took %s; %d replies, %d became phase Error", killTook, replies.Load(), errored.Load())
	if !p.Client.Exited() {
		t.Error("plugin process still running after client.Kill()")
	}
	if killTook > 5*time.Second {
		t.Errorf("client.Kill() took %s", killTook)
	}

	fresh, err := Start(bin, Options{})
	if err != nil {
		t.Fatalf("fresh client after Kill: %v", err)
	}
	defer fresh.Kill()
	if err := fresh.Ping(); err != nil {
		t.Fatalf("Ping on the fresh client: %v", err)
	}
	runChecked(t, fresh, NewAnalysisRun(ShopWeb, "fresh"), metric,
		Want{Phase: successful, Value: "0", Target: ShopWeb, Prometheus: prom.URL})
}

// socketIn starts the plugin with PLUGIN_UNIX_SOCKET_DIR=dir and checks the socket it listens on.
func socketIn(t *testing.T, bin, dir string) (*Plugin, string) {
	t.Helper()
	p, err := Start(bin, Options{Env: []string{goPlugin.EnvUnixSocketDir + "=" + dir}})
	if err != nil {
		t.Fatal(err)
	}
	path := p.Client.ReattachConfig().Addr.String()
	if filepath.Dir(path) != dir {
		t.Errorf("socket %s is not in %s=%s", path, goPlugin.EnvUnixSocketDir, dir)
	}
	st, err := os.Lstat(path)
	switch {
	case err != nil:
		t.Errorf("socket %s: %v", path, err)
	case st.Mode()&os.ModeSocket == 0:
		t.Errorf("%s is not a socket (mode %s)", path, st.Mode())
	case st.Mode().Perm()&0o022 != 0:
		t.Errorf("socket %s is writable by group/others (mode %s): anyone could connect", path, st.Mode())
	}
	return p, path
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func testSocketRemovedOnQuit(t *testing.T) {
	bin, _ := requireEnv(t)
	dir := t.TempDir()
	p, _ := socketIn(t, bin, dir)
	start := time.Now()
	p.Kill() // Control.Quit, close, wait ≤ 2 s, then SIGKILL
	took := time.Since(start)
	if took >= 2*time.Second || strings.Contains(p.Logs(), "plugin failed to exit gracefully") {
		// go-plugin force-kills when Control.Quit gets no reply (the plugin closed first) or the process
		// outlives the 2 s grace period; its log says which.
		var why []string
		for _, l := range strings.Split(p.Logs(), "\n") {
			if strings.Contains(l, "Kill") || strings.Contains(l, "gracefully") {
				why = append(why, strings.TrimSpace(l))
			}
		}
		t.Errorf("plugin did not shut down cleanly on Control.Quit (Kill took %s); host log:\n  %s", took,
			strings.Join(why, "\n  "))
	}
	if left := dirEntries(t, dir); len(left) > 0 {
		t.Errorf("after Control.Quit the socket dir still holds %v", left)
	}
}

func testSocketRemovedOnSIGTERM(t *testing.T) {
	bin, _ := requireEnv(t)
	dir := t.TempDir()
	p, _ := socketIn(t, bin, dir)
	defer p.Kill()
	if err := syscall.Kill(p.Client.ReattachConfig().Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !p.Client.Exited() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !p.Client.Exited() {
		t.Fatal("plugin still running 5 s after SIGTERM")
	}
	if left := dirEntries(t, dir); len(left) > 0 {
		t.Errorf("after SIGTERM the socket dir still holds %v", left)
	}
}

// envWithout is os.Environ() minus the named variables.
func envWithout(names ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		drop := false
		for _, n := range names {
			drop = drop || strings.HasPrefix(kv, n+"=")
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func testNoCookie(t *testing.T) {
	bin, _ := requireEnv(t)
	for _, c := range []struct{ name, cookie string }{{"absent", ""}, {"wrong value", "wrong"}} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = envWithout(HandshakeConfig.MagicCookieKey)
			if c.cookie != "" {
				cmd.Env = append(cmd.Env, HandshakeConfig.MagicCookieKey+"="+c.cookie)
			}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
				t.Fatal("binary still running 10 s after being started without the cookie")
			}
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit code = %d, want 1", code)
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			if strings.TrimSpace(stderr.String()) == "" {
				t.Error("stderr is empty: a human explanation is expected")
			}
			t.Logf("stderr: %s", strings.TrimSpace(stderr.String()))
		})
	}
}

func testWrongCookie(t *testing.T) {
	bin, _ := requireEnv(t)
	hs := HandshakeConfig
	hs.MagicCookieValue = "not-a-metricprovider"
	start := time.Now()
	_, err := Dial(bin, Options{Handshake: &hs})
	if err == nil {
		t.Fatal("Dial with the wrong cookie succeeded")
	}
	// go-plugin reports a child that exits before its handshake line in one of two ways, depending on whether
	// it notices the exit or the closed stdout first (client.go (Start)).
	if msg := err.Error(); !strings.Contains(msg, "plugin exited before we could connect") &&
		!strings.Contains(msg, "Failed to read any lines from plugin's stdout") {
		t.Errorf("go-plugin reported %q, want \"plugin exited before we could connect\" or an empty-stdout report", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s to fail", took)
	}
}

// handshakeLine is CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVERCERT for a netrpc plugin on a unix socket.
var handshakeLine = regexp.MustCompile(`^1\|1\|unix\|(/[^|]+)\|netrpc\|\n$`)

// hclogTimestamp is the only @timestamp layout go-plugin's parseJSON accepts.
const hclogTimestamp = "2006-01-02T15:04:05.000000Z07:00"

func testHandshakeLine(t *testing.T) {
	bin, _ := requireEnv(t)
	dir := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Env = append(envWithout(HandshakeConfig.MagicCookieKey),
		HandshakeConfig.MagicCookieKey+"="+HandshakeConfig.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1", "PLUGIN_MIN_PORT=10000", "PLUGIN_MAX_PORT=25000",
		goPlugin.EnvUnixSocketDir+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()

	lineCh := make(chan string, 1)
	go func() {
		var line []byte
		b := make([]byte, 1)
		for {
			n, err := stdout.Read(b)
			if n == 1 {
				line = append(line, b[0])
				if b[0] == '\n' {
					break
				}
			}
			if err != nil {
				break
			}
		}
		lineCh <- string(line)
	}()
	var line string
	select {
	case line = <-lineCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("no handshake line within 10 s; stderr: %s", stderr.String())
	}
	m := handshakeLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("handshake line %q does not match %s", line, handshakeLine)
	}
	if filepath.Dir(m[1]) != dir {
		t.Errorf("socket %s not in %s", m[1], dir)
	}
	if _, err := os.Lstat(m[1]); err != nil {
		t.Errorf("announced socket: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("plugin still running 5 s after SIGTERM")
	}
	if left := dirEntries(t, dir); len(left) > 0 {
		t.Errorf("after SIGTERM the socket dir still holds %v", left)
	}
	checkLogLines(t, stderr.String())
}

// checkLogLines checks that every JSON line on the plugin's stderr is an hclog entry go-plugin can parse
// (string @message/@level/@timestamp, the exact timestamp layout); a non-string there panics the host.
func checkLogLines(t *testing.T, stderr string) {
	t.Helper()
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "{") {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("stderr line looks like JSON but is not: %q: %v", line, err)
			continue
		}
		for _, k := range []string{"@message", "@level", "@timestamp"} {
			if _, ok := entry[k].(string); !ok {
				t.Errorf("stderr log line %q: %s is %T, want string", line, k, entry[k])
			}
		}
		if ts, ok := entry["@timestamp"].(string); ok {
			if _, err := time.Parse(hclogTimestamp, ts); err != nil {
				t.Errorf("stderr log line %q: @timestamp %q not in layout %s", line, ts, hclogTimestamp)
			}
		}
	}
}
