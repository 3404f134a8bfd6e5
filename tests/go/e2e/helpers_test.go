package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// app is one scenario's Rollout: v1 is always healthy, v2 is what the scenario changes.
type app struct {
	NS, Name string
	Replicas int
	Image    string
	State    string // kwok Stage (stages.yaml): "", crashloop, imagepull, oom
	Strategy string // the `strategy:` block; default: backgroundCanary("rollouts-guardrails-e2e")
}

const imageV1 = "registry.example/e2e/app:1.0.0"
const imageV2 = "registry.example/e2e/app:1.1.0"

// backgroundCanary: a background analysis from the first step (no startingStep: a canary that never becomes
// available is still analysed), then 50% and a pause long enough for every measurement.
func backgroundCanary(template string, pause string) string {
	return fmt.Sprintf(`  strategy:
    canary:
      analysis:
        templates:
          - templateName: %s
            clusterScope: true
        args:
          - name: namespace
            valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
          - name: canary-hash
            valueFrom: {podTemplateHashValue: Latest}
          - name: image
            valueFrom: {fieldRef: {fieldPath: "spec.template.spec.containers[0].image"}}
      steps:
        - setWeight: 50
        - pause: {duration: %s}
`, template, pause)
}

func (a app) yaml() string {
	if a.Replicas == 0 {
		a.Replicas = 2
	}
	if a.Strategy == "" {
		a.Strategy = backgroundCanary("rollouts-guardrails-e2e", "60s")
	}
	state := ""
	if a.State != "" {
		state = "\n        e2e.rollouts-guardrails/state: " + a.State
	}
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: %s
  namespace: %s
spec:
  replicas: %d
  revisionHistoryLimit: 2
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels:
        app: %s%s
    spec:
      containers:
        - name: app
          image: %q
          resources:
            requests: {cpu: 10m, memory: 16Mi}
%s`, a.Name, a.NS, a.Replicas, a.Name, a.Name, state, a.Image, a.Strategy)
}

type obj = map[string]any

func get(o any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := o.(map[string]any)
			if !ok {
				return nil
			}
			o = m[k]
		case int:
			l, ok := o.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			o = l[k]
		}
	}
	return o
}

func str(o any, path ...any) string {
	v := get(o, path...)
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func num(o any, path ...any) int {
	if f, ok := get(o, path...).(float64); ok {
		return int(f)
	}
	return 0
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustKubectl(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	out, err := c.KubectlIn(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deploy creates the namespace and v1, waits until v1 is Healthy, and returns its stable pod-template hash.
func deploy(t *testing.T, ctx context.Context, a app) string {
	t.Helper()
	mustKubectl(t, ctx, "", "create", "namespace", a.NS)
	v1 := a
	v1.Image, v1.State = imageV1, ""
	mustKubectl(t, ctx, v1.yaml(), "apply", "-f", "-")
	r := waitRollout(t, ctx, a, 4*time.Minute, "v1 Healthy", func(r obj) bool {
		return str(r, "status", "phase") == "Healthy" && str(r, "status", "stableRS") != ""
	})
	return str(r, "status", "stableRS")
}

// update applies v2 and returns the time of the update; kube-state-metrics' series of the namespace are saved
// 25 s later (canary pods alive) into target/e2e/ksm/<ns>-25s.txt, for the fixture comparison of the README.
func update(t *testing.T, ctx context.Context, a app) time.Time {
	t.Helper()
	mustKubectl(t, ctx, a.yaml(), "apply", "-f", "-")
	go func() {
		time.Sleep(25 * time.Second)
		dumpKSM(a.NS, "25s")
	}()
	return time.Now()
}

// dumpKSM saves kube-state-metrics' pod series of a namespace (as exposed, before Prometheus).
func dumpKSM(ns, tag string) {
	resp, err := http.Get(c.KSMURL + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "kube_pod_") && strings.Contains(l, `namespace="`+ns+`"`) {
			keep = append(keep, l)
		}
	}
	dir := filepath.Join(c.Root, "target", "e2e", "ksm")
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, ns+"-"+tag+".txt"), []byte(strings.Join(keep, "\n")+"\n"), 0o644)
}

func waitRollout(t *testing.T, ctx context.Context, a app, d time.Duration, what string, ok func(obj) bool) obj {
	t.Helper()
	deadline := time.Now().Add(d)
	var last obj
	for {
		r, err := c.GetJSON(ctx, "rollout", a.Name, "-n", a.NS)
		if err == nil {
			last = r
			if ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s/%s: no %s within %s; last status: %s", a.NS, a.Name, what, d, str(last, "status"))
		}
		time.Sleep(2 * time.Second)
	}
}

// verdict waits until v2 is either promoted (Healthy on the new hash) or aborted.
func verdict(t *testing.T, ctx context.Context, a app, stable string, d time.Duration) (r obj, aborted bool) {
	t.Helper()
	r = waitRollout(t, ctx, a, d, "verdict (promoted or aborted)", func(r obj) bool {
		if get(r, "status", "abort") == true {
			return true
		}
		h := str(r, "status", "currentPodHash")
		return h != stable && str(r, "status", "stableRS") == h && str(r, "status", "phase") == "Healthy"
	})
	dumpKSM(a.NS, "verdict")
	go func() {
		time.Sleep(20 * time.Second)
		dumpKSM(a.NS, "verdict+20s")
	}()
	return r, get(r, "status", "abort") == true
}

// analysisRuns lists the namespace's AnalysisRuns, oldest first.
func analysisRuns(t *testing.T, ctx context.Context, ns string) []obj {
	t.Helper()
	l, err := c.GetJSON(ctx, "analysisrun", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	var out []obj
	for _, it := range get(l, "items").([]any) {
		out = append(out, it.(obj))
	}
	sort.Slice(out, func(i, j int) bool {
		return str(out[i], "metadata", "creationTimestamp") < str(out[j], "metadata", "creationTimestamp")
	})
	return out
}

// runsFor keeps the AnalysisRuns of the given pod-template hash.
func runsFor(runs []obj, hash string) []obj {
	var out []obj
	for _, r := range runs {
		if str(r, "metadata", "labels", "rollouts-pod-template-hash") == hash {
			out = append(out, r)
		}
	}
	return out
}

type measurement struct {
	Metric, Phase, Message string
	Metadata               map[string]any
	StartedAt, FinishedAt  string
}

func measurements(run obj) []measurement {
	var out []measurement
	mrs, _ := get(run, "status", "metricResults").([]any)
	for _, mr := range mrs {
		ms, _ := get(mr, "measurements").([]any)
		for _, m := range ms {
			md, _ := get(m, "metadata").(map[string]any)
			out = append(out, measurement{Metric: str(mr, "name"), Phase: str(m, "phase"), Message: str(m, "message"),
				Metadata: md, StartedAt: str(m, "startedAt"), FinishedAt: str(m, "finishedAt")})
		}
	}
	return out
}

func describeRuns(runs []obj) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "\n  AnalysisRun %s: %s %q", str(r, "metadata", "name"), str(r, "status", "phase"), str(r, "status", "message"))
		for _, m := range measurements(r) {
			fmt.Fprintf(&b, "\n    %s: %s %q failure=%v", m.Metric, m.Phase, m.Message, m.Metadata["failure"])
		}
	}
	return b.String()
}

// failedMeasurement returns the first Failed measurement of the metric (any metric when metric is "").
func failedMeasurement(runs []obj, metric string) (measurement, bool) {
	for _, r := range runs {
		for _, m := range measurements(r) {
			if m.Phase == "Failed" && (metric == "" || m.Metric == metric) {
				return m, true
			}
		}
	}
	return measurement{}, false
}

// pods lists the pod names of a pod-template hash.
func pods(t *testing.T, ctx context.Context, ns, hash string) []string {
	t.Helper()
	l, err := c.GetJSON(ctx, "pod", "-n", ns, "-l", "rollouts-pod-template-hash="+hash)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	items, _ := get(l, "items").([]any)
	for _, it := range items {
		out = append(out, str(it, "metadata", "name"))
	}
	return out
}

// assertStableFull checks the stable ReplicaSet still runs every replica.
func assertStableFull(t *testing.T, ctx context.Context, a app, stable string) {
	t.Helper()
	want := a.Replicas
	if want == 0 {
		want = 2
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := c.GetJSON(ctx, "replicaset", "-n", a.NS, "-l", "rollouts-pod-template-hash="+stable)
		if err != nil {
			t.Fatal(err)
		}
		items, _ := get(l, "items").([]any)
		if len(items) == 1 && num(items[0], "spec", "replicas") == want && num(items[0], "status", "availableReplicas") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stable ReplicaSet %s not at full scale (%d): %s", stable, want, str(l, "items"))
		}
		time.Sleep(2 * time.Second)
	}
}

// timeline logs seconds from the update to the first measurement, to the first verdict, to the rollout's verdict.
func timeline(t *testing.T, updated time.Time, runs []obj, decided time.Time) string {
	var first, verdictAt time.Time
	for _, r := range runs {
		for _, m := range measurements(r) {
			if ts, err := time.Parse(time.RFC3339, m.StartedAt); err == nil && (first.IsZero() || ts.Before(first)) {
				first = ts
			}
			if m.Phase == "Failed" || m.Phase == "Successful" {
				if ts, err := time.Parse(time.RFC3339, m.FinishedAt); err == nil && (verdictAt.IsZero() || ts.Before(verdictAt)) && (m.Phase == "Failed" || verdictAt.IsZero()) {
					verdictAt = ts
				}
			}
		}
	}
	s := func(ts time.Time) string {
		if ts.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%.0fs", ts.Sub(updated.Truncate(time.Second)).Seconds())
	}
	line := fmt.Sprintf("timeline: first measurement %s, first verdict %s, rollout verdict %s", s(first), s(verdictAt), s(decided))
	t.Log(line)
	return line
}
