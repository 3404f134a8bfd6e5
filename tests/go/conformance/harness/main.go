package harness

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// freshnessBudget is how old the fixture's END may be when a case starts before Prometheus is restarted on a
// freshly shifted copy. Plugin mode evaluates "now", and the fixture's verdicts hold only briefly after END:
// pay/api's first restart (END−4m) leaves a 5 m window 30–60 s after END (so Value "3" turns into "2"), and
// ops/stale's last samples (END−4m) pass the 5 m staleness 60 s after END.
const freshnessBudget = 20 * time.Second

// env is the state TestMain sets up for Run.
var env struct {
	mu       sync.Mutex
	bin      string
	fixture  string
	prom     *Prometheus
	setupErr error
}

// Main is the TestMain of every release module: it resolves GUARDRAILS_BIN and the fixture, starts Prometheus
// on the shifted fixture, runs the tests and stops Prometheus. A setup failure does not exit: Run reports it
// as a test failure with the reason.
func Main(m *testing.M) {
	code := func() int {
		if err := setup(); err != nil {
			env.setupErr = err
			fmt.Fprintf(os.Stderr, "conformance setup failed: %v\n", err)
		}
		defer func() {
			env.mu.Lock()
			env.prom.Stop()
			env.mu.Unlock()
		}()
		return m.Run()
	}()
	os.Exit(code)
}

func setup() error {
	env.bin = os.Getenv("GUARDRAILS_BIN")
	if env.bin == "" {
		return errors.New("GUARDRAILS_BIN is unset: point it at the rollouts-guardrails binary " +
			"(e.g. GUARDRAILS_BIN=$PWD/target/release/rollouts-guardrails tests/go/conformance/run.sh)")
	}
	if st, err := os.Stat(env.bin); err != nil {
		return fmt.Errorf("GUARDRAILS_BIN=%s: %w", env.bin, err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("GUARDRAILS_BIN=%s is not an executable file", env.bin)
	}
	fixture, err := FixturePath()
	if err != nil {
		return err
	}
	env.fixture = fixture
	env.prom, err = StartPrometheus(fixture, time.Now())
	return err
}

// requireEnv fails t with the setup error, if any, and returns the binary and a Prometheus whose data ends
// no more than freshnessBudget ago (restarting it on a newly shifted fixture if needed).
func requireEnv(t *testing.T) (string, *Prometheus) {
	t.Helper()
	if env.setupErr != nil {
		t.Fatalf("conformance setup failed: %v", env.setupErr)
	}
	if env.bin == "" {
		t.Fatal("harness.Main was not called from TestMain")
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if time.Since(env.prom.DataEnd) > freshnessBudget {
		env.prom.Stop()
		p, err := StartPrometheus(env.fixture, time.Now())
		if err != nil {
			env.setupErr = err
			t.Fatalf("restart prometheus on a freshly shifted fixture: %v", err)
		}
		env.prom = p
		t.Logf("prometheus restarted at %s, fixture END shifted to %s", p.URL, p.DataEnd.Format(time.RFC3339))
	}
	return env.bin, env.prom
}
