package hostile

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
)

// fakePrometheus answers the not-ready guardrail's queries for any target: every pod of the ReplicaSet named
// in the query exists, is fresh and is ready unless the ReplicaSet's name ends in "-bad"; answers are stamped
// with the request's own evaluation time. delay holds every answer back.
func fakePrometheus(t testing.TB, delay time.Duration) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			time.Sleep(delay)
		}
		query, at := r.FormValue("query"), r.FormValue("time")
		rs := between(query, `created_by_name="`, `"`)
		pod := rs + "-aaaaa"
		sample := func(value string) string {
			return fmt.Sprintf(`{"metric":{"namespace":"load","pod":%q,"container":"app"},"value":[%s,%q]}`, pod, at, value)
		}
		var result string
		switch {
		case strings.HasPrefix(query, "timestamp("):
			var now float64
			fmt.Sscanf(at, "%g", &now)
			result = sample(fmt.Sprintf("%.3f", now-15))
		case strings.Contains(query, "kube_pod_status_ready"):
			ready := "1"
			if strings.Contains(rs, "-bad-") {
				ready = "0"
			}
			result = sample(ready)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, result)
	})}
	go server.Serve(listener)
	t.Cleanup(func() { server.Close() })
	return "http://" + listener.Addr().String()
}

func between(s, open, close string) string {
	i := strings.Index(s, open)
	if i < 0 {
		return ""
	}
	s = s[i+len(open):]
	if j := strings.Index(s, close); j >= 0 {
		return s[:j]
	}
	return s
}

func notReadyMetric(address string) v1alpha1.Metric {
	return harness.NewMetric("ready", map[string]any{"guardrail": "not-ready", "address": address, "timeout": "10s"})
}

func TestSigkillMidRunThenAFreshClientWorks(t *testing.T) {
	bin := binary_(t)
	slow := fakePrometheus(t, 3*time.Second)
	plugin, err := harness.Start(bin, harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid := plugin.Client.ReattachConfig().Pid
	target := harness.Target{Namespace: "load", Rollout: "web", Hash: "6c8d7f9a1"}
	done := make(chan v1alpha1.Measurement, 1)
	go func() { done <- plugin.Provider.Run(harness.NewAnalysisRun(target, "killed"), notReadyMetric(slow)) }()
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL %d: %v", pid, err)
	}
	select {
	case m := <-done:
		if m.Phase == v1alpha1.AnalysisPhaseSuccessful {
			t.Fatalf("a Run cut by SIGKILL returned Successful: %+v", m)
		}
		t.Logf("the interrupted Run: phase %q, message %q", m.Phase, m.Message)
	case <-time.After(15 * time.Second):
		t.Fatal("the interrupted Run never returned")
	}
	plugin.Kill()
	if !plugin.Client.Exited() {
		t.Fatal("the client does not see the killed plugin as exited")
	}

	// The controller's next measurement starts a fresh plugin, which works.
	healthy := fakePrometheus(t, 0)
	fresh, err := harness.Start(bin, harness.Options{})
	if err != nil {
		t.Fatalf("fresh plugin after SIGKILL: %v", err)
	}
	defer fresh.Kill()
	if newPid := fresh.Client.ReattachConfig().Pid; newPid == pid {
		t.Fatalf("the fresh plugin has the killed one's pid %d", pid)
	}
	m := fresh.Provider.Run(harness.NewAnalysisRun(target, "fresh"), notReadyMetric(healthy))
	if m.Phase != v1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("fresh plugin: %+v", m)
	}
}

// shortTempDir is a fresh directory with a short path (a unix socket path must fit in 108 bytes).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "gh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// entries lists what is left in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

func TestNoSocketOrTempDirLeftAfterNormalExits(t *testing.T) {
	bin := binary_(t)
	healthy := fakePrometheus(t, 0)
	target := harness.Target{Namespace: "load", Rollout: "web", Hash: "6c8d7f9a1"}

	t.Run("go-plugin client, Control.Quit", func(t *testing.T) {
		dir := shortTempDir(t)
		t.Setenv("TMPDIR", dir)
		plugin, err := harness.Start(bin, harness.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m := plugin.Provider.Run(harness.NewAnalysisRun(target, "a"), notReadyMetric(healthy)); m.Phase != v1alpha1.AnalysisPhaseSuccessful {
			t.Fatalf("%+v", m)
		}
		if len(entries(t, dir)) == 0 {
			t.Fatal("the plugin made nothing under TMPDIR: this check would prove nothing")
		}
		plugin.Kill()
		if left := entries(t, dir); len(left) > 0 {
			t.Fatalf("left behind in TMPDIR: %v", left)
		}
	})

	for _, how := range []string{"SIGTERM", "SIGINT", "host hangs up"} {
		t.Run(how, func(t *testing.T) {
			dir := shortTempDir(t)
			s := startPlugin(t, "TMPDIR="+dir)
			c := connect(t, s)
			stillServes(t, s, c)
			switch how {
			case "SIGTERM":
				_ = s.cmd.Process.Signal(syscall.SIGTERM)
			case "SIGINT":
				_ = s.cmd.Process.Signal(syscall.SIGINT)
			default:
				_ = c.mux.Close()
			}
			if err := s.waitExit(t, 10*time.Second); err != nil {
				t.Fatalf("exit: %v; stderr:\n%s", err, s.stderr)
			}
			if left := entries(t, dir); len(left) > 0 {
				t.Fatalf("left behind in TMPDIR: %v", left)
			}
		})
	}
}
