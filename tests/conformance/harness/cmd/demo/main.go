// Command demo drives rollouts-guardrails exactly as the Argo Rollouts controller does (go-plugin net/rpc,
// Dispense, InitPlugin, Ping before each Run) against a private Prometheus holding the canonical fixture shifted
// to end now, and prints one row per guardrail and canary: verdict, value and why.
//
//	go run ./cmd/demo -bin ../../../target/release/rollouts-guardrails
//
// Exits 1 when a verdict differs from the one the fixture promises (briefs/scenarios.md).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/rollouts-guardrails/conformance/harness"
)

func main() {
	bin := flag.String("bin", os.Getenv("GUARDRAILS_BIN"), "the rollouts-guardrails binary (default $GUARDRAILS_BIN)")
	fixture := flag.String("fixture", "", "OpenMetrics fixture (default: the repository's "+harness.FixtureRelPath+")")
	flag.Parse()
	if err := run(*bin, *fixture); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(bin, fixture string) error {
	if bin == "" {
		return fmt.Errorf("no plugin binary: pass -bin PATH or set GUARDRAILS_BIN")
	}
	if fixture == "" {
		var err error
		if fixture, err = harness.FixturePath(); err != nil {
			return err
		}
	}
	prom, err := harness.StartPrometheus(fixture, time.Now())
	if err != nil {
		return err
	}
	defer prom.Stop()
	fmt.Printf("Prometheus %s: %s shifted so that its END is %s\n", prom.URL, fixture, prom.DataEnd.Format(time.RFC3339))

	p, err := harness.Start(bin, harness.Options{})
	if err != nil {
		return err
	}
	defer p.Kill()
	fmt.Printf("plugin %s: type %q\n\n", bin, p.Provider.Type())

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "RESULT\tGUARDRAIL\tTARGET\tPROFILE\tEXPECTED\tPHASE\tVALUE\tMESSAGE")
	mismatches := 0
	for _, e := range harness.Expectations {
		if err := p.Ping(); err != nil {
			return fmt.Errorf("ping before %s: %w", e.Name(), err)
		}
		// As the controller does: Run, then Resume while the plugin answers Running (settling, 2s here).
		taken, problems := harness.RunToCompletion(p, harness.NewAnalysisRun(e.Target, "demo-"+e.Target.Rollout), harness.NewMetric(e.Guardrail, e.Config(prom.URL)))
		m := taken[len(taken)-1]
		result := "ok"
		if m.Phase != e.Phase || len(problems) > 0 {
			result = "MISMATCH"
			mismatches++
		}
		profile := e.Profile
		if profile == "" {
			profile = "default"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", result, e.Guardrail, e.Target, profile,
			verdict(e.Phase), verdict(m.Phase), m.Value, oneLine(m.Message))
	}
	w.Flush()
	if mismatches > 0 {
		return fmt.Errorf("%d of %d verdicts differ from the fixture's", mismatches, len(harness.Expectations))
	}
	fmt.Printf("\nall %d verdicts as expected\n", len(harness.Expectations))
	return nil
}

func verdict(p v1alpha1.AnalysisPhase) string {
	switch p {
	case v1alpha1.AnalysisPhaseSuccessful:
		return "PASS"
	case v1alpha1.AnalysisPhaseFailed:
		return "FAIL"
	default:
		return string(p)
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
