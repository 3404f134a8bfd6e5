package hostile

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
)

// maxGrowthKiB is the resident-memory growth allowed between the first and the last tenth of the run.
const maxGrowthKiB = 2 * 1024

func envInt(name string, fallback int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return fallback
}

// rssKiB is VmRSS of pid.
func rssKiB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// TestSustainedLoad: many callers share one plugin through argo-rollouts' client, every reply is checked
// against the request it answers (target named in metadata and message, phase from the target's health),
// and the plugin's resident memory must not grow between the first and the last tenth of the run.
func TestSustainedLoad(t *testing.T) {
	total := envInt("GUARDRAILS_LOAD_MEASUREMENTS", 100_000)
	callers := envInt("GUARDRAILS_LOAD_CALLERS", 30)
	address := fakePrometheus(t, 0)
	plugin, err := harness.Start(binary_(t), harness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer plugin.Kill()
	pid := plugin.Client.ReattachConfig().Pid
	metric := notReadyMetric(address)

	type point struct{ done, kib int }
	var (
		next, done, mismatches atomic.Int64
		mu                     sync.Mutex
		curve                  []point
		firstMismatch          string
	)
	step := total / 100
	if step == 0 {
		step = 1
	}
	started := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(caller int) {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > total {
					return
				}
				bad := i%3 == 0
				rollout := fmt.Sprintf("c%d-m%d", caller, i)
				if bad {
					rollout += "-bad"
				}
				target := harness.Target{Namespace: "load", Rollout: rollout, Hash: "6c8d7f9a1"}
				m := plugin.Provider.Run(harness.NewAnalysisRun(target, rollout), metric)
				want := v1alpha1.AnalysisPhaseSuccessful
				if bad {
					want = v1alpha1.AnalysisPhaseFailed
				}
				rs := target.ReplicaSet()
				ok := m.Phase == want && strings.Contains(m.Metadata["target"], rs) &&
					(!bad || strings.Contains(m.Message, rs+"-aaaaa"))
				if !ok {
					if mismatches.Add(1) == 1 {
						mu.Lock()
						firstMismatch = fmt.Sprintf("request %d (%s, want %s): %+v", i, rs, want, m)
						mu.Unlock()
					}
				}
				if n := int(done.Add(1)); n%step == 0 || n == total {
					kib, err := rssKiB(pid)
					if err != nil {
						t.Errorf("rss: %v", err)
						return
					}
					mu.Lock()
					curve = append(curve, point{n, kib})
					mu.Unlock()
				}
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(started)
	if n := mismatches.Load(); n > 0 {
		t.Fatalf("%d of %d replies mismatched or lost; first: %s", n, total, firstMismatch)
	}
	if int(done.Load()) != total {
		t.Fatalf("%d of %d measurements completed", done.Load(), total)
	}
	// Samples arrive slightly out of order from concurrent callers: order them by completion count.
	for i := 1; i < len(curve); i++ {
		for j := i; j > 0 && curve[j].done < curve[j-1].done; j-- {
			curve[j], curve[j-1] = curve[j-1], curve[j]
		}
	}
	firstMax, lastMax := 0, 0
	var report strings.Builder
	fmt.Fprintf(&report, "sustained load: %d measurements, %d callers, %v (%.0f/s), plugin pid %d\n", total, callers, elapsed.Round(time.Second), float64(total)/elapsed.Seconds(), pid)
	fmt.Fprintf(&report, "%-12s %s\n", "completed", "VmRSS KiB")
	for i, p := range curve {
		if p.done <= total/10 && p.kib > firstMax {
			firstMax = p.kib
		}
		if p.done > total-total/10 && p.kib > lastMax {
			lastMax = p.kib
		}
		if i%10 == 9 || i == 0 {
			fmt.Fprintf(&report, "%-12d %d\n", p.done, p.kib)
		}
	}
	growth := lastMax - firstMax
	fmt.Fprintf(&report, "peak RSS first 10%%: %d KiB, last 10%%: %d KiB, growth %d KiB (limit %d KiB)\n", firstMax, lastMax, growth, maxGrowthKiB)
	t.Log("\n" + report.String())
	if path := os.Getenv("GUARDRAILS_LOAD_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if firstMax == 0 || lastMax == 0 {
		t.Fatalf("too few memory samples: %v", curve)
	}
	if growth > maxGrowthKiB {
		t.Fatalf("resident memory grew %d KiB between the first and the last tenth of the run", growth)
	}
}
