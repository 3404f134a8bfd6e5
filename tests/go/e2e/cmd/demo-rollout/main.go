// Command demo-rollout (make demo-rollout) starts the end-to-end control plane from the binaries in
// target/e2e/bin, rolls out a healthy and then a crash-looping v2 of one app guarded by the shipped
// ClusterAnalysisTemplate (the suite's shortened copy), prints `kubectl argo rollouts get rollout` before and after
// each and the failing measurement's message, then stops everything.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rollouts-guardrails/e2e/cluster"
)

const rollout = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: checkout
  namespace: demo
spec:
  replicas: 3
  revisionHistoryLimit: 3
  selector:
    matchLabels: {app: checkout}
  template:
    metadata:
      labels:
        app: checkout%s
    spec:
      containers:
        - name: checkout
          image: %s
  strategy:
    canary:
      analysis:
        templates:
          - templateName: rollouts-guardrails-e2e
            clusterScope: true
        args:
          - name: namespace
            valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
          - name: canary-hash
            valueFrom: {podTemplateHashValue: Latest}
          - name: image
            valueFrom: {fieldRef: {fieldPath: "spec.template.spec.containers[0].image"}}
      steps:
        - setWeight: 34
        - pause: {duration: 50s}
`

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "demo-rollout:", err)
		cluster.StopAll()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	t0 := time.Now()
	fmt.Println("== starting the control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kube-state-metrics, Prometheus, argo-rollouts", cluster.ArgoVersions[0]+")")
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		return err
	}
	defer c.Stop()
	if err := c.InstallTemplates(ctx); err != nil {
		return err
	}
	fmt.Printf("   up in %.0f s\n", time.Since(t0).Seconds())
	if _, err := c.Kubectl(ctx, "create", "namespace", "demo"); err != nil {
		return err
	}
	apply := func(image, state string) error {
		label := ""
		if state != "" {
			label = "\n        e2e.rollouts-guardrails/state: " + state
		}
		_, err := c.KubectlIn(ctx, fmt.Sprintf(rollout, label, image), "apply", "-f", "-")
		return err
	}
	if err := apply("registry.example/checkout:1.0.0", ""); err != nil {
		return err
	}
	if _, err := wait(ctx, c, 3*time.Minute, func(r map[string]any) bool { return field(r, "status", "phase") == "Healthy" }); err != nil {
		return err
	}
	for _, step := range []struct{ title, image, state string }{
		{"a healthy v2 (1.1.0)", "registry.example/checkout:1.1.0", ""},
		{"a crash-looping v3 (1.2.0: restarts rising, CrashLoopBackOff, never Ready)", "registry.example/checkout:1.2.0", "crashloop"},
	} {
		show(ctx, c, "before: "+step.title)
		r, _ := c.GetJSON(ctx, "rollout", "checkout", "-n", "demo")
		stable := field(r, "status", "stableRS")
		updated := time.Now()
		if err := apply(step.image, step.state); err != nil {
			return err
		}
		r, err := wait(ctx, c, 4*time.Minute, func(r map[string]any) bool {
			h := field(r, "status", "currentPodHash")
			return field(r, "status", "abort") == "true" || (h != stable && field(r, "status", "stableRS") == h && field(r, "status", "phase") == "Healthy")
		})
		if err != nil {
			return err
		}
		decided := time.Since(updated).Seconds()
		show(ctx, c, "after: "+step.title)
		verdict := "promoted"
		if field(r, "status", "abort") == "true" {
			verdict = "aborted"
		}
		first, failed := firstAndFailed(ctx, c, field(r, "status", "currentPodHash"), updated)
		fmt.Printf("   timeline: update → first measurement %s, → %s %.0f s\n", first, verdict, decided)
		if failed != "" {
			fmt.Println("   the failing measurement:", failed)
		}
	}
	fmt.Println("== stopping every process")
	return nil
}

func show(ctx context.Context, c *cluster.Cluster, title string) {
	fmt.Println("== kubectl argo rollouts get rollout checkout -n demo   #", title)
	out, err := c.ArgoRollouts(ctx, "get", "rollout", "checkout", "-n", "demo", "--no-color")
	if err != nil {
		fmt.Println("  ", err)
	}
	fmt.Print(out)
}

func wait(ctx context.Context, c *cluster.Cluster, d time.Duration, ok func(map[string]any) bool) (map[string]any, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r, err := c.GetJSON(ctx, "rollout", "checkout", "-n", "demo"); err == nil && ok(r) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil, fmt.Errorf("rollout demo/checkout: no verdict within %s", d)
}

func field(o any, path ...string) string {
	for _, p := range path {
		m, ok := o.(map[string]any)
		if !ok {
			return ""
		}
		o = m[p]
	}
	switch v := o.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// firstAndFailed: seconds from the update to the first measurement of the hash's AnalysisRuns, and the message of
// the first Failed measurement with its metric and failure class.
func firstAndFailed(ctx context.Context, c *cluster.Cluster, hash string, updated time.Time) (string, string) {
	l, err := c.GetJSON(ctx, "analysisrun", "-n", "demo", "-l", "rollouts-pod-template-hash="+hash)
	if err != nil {
		return "-", ""
	}
	var first time.Time
	failed := ""
	items, _ := l["items"].([]any)
	for _, it := range items {
		st, _ := it.(map[string]any)["status"].(map[string]any)
		if msg, _ := st["message"].(string); msg != "" && failed == "" {
			failed = "AnalysisRun: " + msg
		}
		mrs, _ := st["metricResults"].([]any)
		for _, mr := range mrs {
			mrm := mr.(map[string]any)
			ms, _ := mrm["measurements"].([]any)
			for _, m := range ms {
				mm := m.(map[string]any)
				if ts, err := time.Parse(time.RFC3339, field(mm, "startedAt")); err == nil && (first.IsZero() || ts.Before(first)) {
					first = ts
				}
				if field(mm, "phase") == "Failed" && !strings.Contains(failed, "\n") {
					failed += fmt.Sprintf("\n   %s: %s (failure=%s)", field(mrm, "name"), field(mm, "message"), field(mm, "metadata", "failure"))
				}
			}
		}
	}
	if first.IsZero() {
		return "-", failed
	}
	return fmt.Sprintf("%.0f s", first.Sub(updated.Truncate(time.Second)).Seconds()), failed
}
