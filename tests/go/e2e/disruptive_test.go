package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollouts-guardrails/e2e/cluster"
)

// Phase 2 (after phase 1): scenarios that disturb shared processes, one at a time.
func disruptive(t *testing.T) {
	t.Run("prometheus-stopped-aborted", prometheusStopped)
	t.Run("kube-state-metrics-stopped-aborted", ksmStopped)
	t.Run("controller-restarted-https-registration", controllerRestarted)
	t.Run("helm-chart-registration", helmChart)
}

// Phase 3: the newer controller release, a smoke set.
func argoV1_10(t *testing.T) {
	ctx := ctxT(t)
	c.Controller.Stop(10 * time.Second)
	cfg, err := c.DefaultPluginConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetPluginConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := c.UseArgo(ctx, cluster.ArgoVersions[1]); err != nil {
		t.Fatal(err)
	}
	if err := c.StartController(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Run("group", func(t *testing.T) {
		t.Run("v1.10-healthy-promoted", func(t *testing.T) { t.Parallel(); healthyPromoted(t, "v110-healthy") })
		t.Run("v1.10-crashloop-aborted", func(t *testing.T) { t.Parallel(); crashloopAborted(t, "v110-crashloop") })
	})
}

// waitMeasured waits for the first Successful measurement of v2's AnalysisRun.
func waitMeasured(t *testing.T, a app, stable string) {
	ctx := ctxT(t)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, run := range analysisRuns(t, ctx, a.NS) {
			if str(run, "metadata", "labels", "rollouts-pod-template-hash") == stable {
				continue
			}
			for _, m := range measurements(run) {
				if m.Phase == "Successful" {
					return
				}
				if m.Phase == "Failed" {
					t.Fatalf("failed before the disturbance: %s %q", m.Metric, m.Message)
				}
			}
		}
		time.Sleep(2 * time.Second)
	}
	t.Fatalf("no Successful measurement within 2m:%s", describeRuns(analysisRuns(t, ctx, a.NS)))
}

// disturbed: a healthy v2 measured once, then disturb() → aborted, never promoted, with the failure class.
func disturbed(t *testing.T, ns string, disturb, restore func() error, classes ...string) {
	ctx := ctxT(t)
	a := app{NS: ns, Name: "web", Image: imageV1, Strategy: backgroundCanary("rollouts-guardrails-e2e", "120s")}
	stable := deploy(t, ctx, a)
	a.Image = imageV2
	t0 := update(t, ctx, a)
	waitMeasured(t, a, stable)
	if err := disturb(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := restore(); err != nil {
			t.Errorf("restore: %v", err)
		}
	}()
	r, aborted := verdict(t, ctx, a, stable, 3*time.Minute)
	runs := runsFor(analysisRuns(t, ctx, ns), str(r, "status", "currentPodHash"))
	timeline(t, t0, runs, time.Now())
	if !aborted {
		t.Fatalf("promoted although disturbed%s", describeRuns(runs))
	}
	m, ok := failedMeasurement(runs, "")
	if !ok {
		t.Fatalf("aborted without a Failed measurement:%s", describeRuns(runs))
	}
	got := fmt.Sprint(m.Metadata["failure"])
	for _, want := range classes {
		if got == want {
			t.Logf("failure class %s: %q", got, m.Message)
			assertStableFull(t, ctx, a, stable)
			return
		}
	}
	t.Errorf("failure class %q, want one of %v: %q", got, classes, m.Message)
}

func prometheusStopped(t *testing.T) {
	ctx := ctxT(t)
	disturbed(t, "prom-down",
		func() error { c.Prom.Stop(10 * time.Second); return nil },
		func() error { return c.StartPrometheus(ctx) },
		"query-error", "timeout")
}

func ksmStopped(t *testing.T) {
	ctx := ctxT(t)
	disturbed(t, "ksm-down",
		func() error { c.KSM.Stop(10 * time.Second); return nil },
		func() error { return c.StartKSM(ctx) },
		"no-data", "stale")
}

// controllerRestarted: the controller is stopped mid-analysis and started again with the https:// registration
// (sha256, served by a local TLS server with a test CA): first with a wrong checksum, which the controller refuses,
// then with the right one; the plugin is downloaded and started again and the analysis completes.
func controllerRestarted(t *testing.T) {
	ctx := ctxT(t)
	bin, err := os.ReadFile(c.PluginBinary())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cluster.ServeFile(c.Dir, c.PluginBinary())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	httpsConfig := func(sum string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: argo-rollouts-config
data:
  metricProviderPlugins: |-
    - name: rollouts-guardrails/prometheus
      location: %s
      sha256: %s
`, srv.URL, sum)
	}
	env := []string{"SSL_CERT_FILE=" + srv.CAFile}

	a := app{NS: "restart", Name: "web", Image: imageV1, Strategy: backgroundCanary("rollouts-guardrails-e2e", "90s")}
	stable := deploy(t, ctx, a)
	a.Image = imageV2
	t0 := update(t, ctx, a)
	waitMeasured(t, a, stable)
	c.Controller.Stop(10 * time.Second)

	// A wrong checksum: the controller refuses to start.
	if err := c.SetPluginConfig(ctx, httpsConfig(strings.Repeat("0", 64))); err != nil {
		t.Fatal(err)
	}
	err = c.StartController(ctx, env)
	if err == nil {
		t.Fatalf("controller started with a wrong sha256")
	}
	log, _ := os.ReadFile(c.Controller.Log)
	if !strings.Contains(string(log), "sha256 hash of downloaded plugin") {
		t.Errorf("controller exit does not name the checksum mismatch: %v", err)
	}
	c.Controller.Stop(time.Second)

	// The right checksum: downloaded, started again, the analysis completes.
	if err := c.SetPluginConfig(ctx, httpsConfig(fmt.Sprintf("%x", sha256.Sum256(bin)))); err != nil {
		t.Fatal(err)
	}
	if err := c.StartController(ctx, env); err != nil {
		t.Fatal(err)
	}
	r, aborted := verdict(t, ctx, a, stable, 6*time.Minute)
	runs := runsFor(analysisRuns(t, ctx, a.NS), str(r, "status", "currentPodHash"))
	timeline(t, t0, runs, time.Now())
	if aborted {
		t.Fatalf("aborted across the restart: %s%s", str(r, "status", "message"), describeRuns(runs))
	}
	for _, run := range runs {
		if str(run, "status", "phase") != "Successful" || len(measurements(run)) < 12 {
			t.Errorf("analysis did not complete across the restart:%s", describeRuns(runs))
		}
	}
	downloaded, err := filepath.Glob(filepath.Join(c.ControllerDir(), "plugin-bin", "*", "*"))
	if err != nil || len(downloaded) == 0 {
		t.Fatalf("nothing downloaded into %s/plugin-bin", c.ControllerDir())
	}
	if out, err := exec.Command("pgrep", "-f", downloaded[0]).Output(); err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Errorf("no plugin process running from %s after the restart", downloaded[0])
	}
}
