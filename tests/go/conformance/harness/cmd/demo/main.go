// Command demo drives rollouts-guardrails exactly as the Argo Rollouts controller does (go-plugin net/rpc,
// Dispense, InitPlugin, Ping before each Run) against a private Prometheus holding the canonical fixture shifted
// to end now, and prints one row per guardrail and canary (its verdict, the verdict the fixture promises, and
// whether they agree), with the plugin's whole message wrapped under the row.
//
//	go run ./cmd/demo -bin ../../../../target/release/rollouts-guardrails
//
// Exits 1 when a verdict differs from the one the fixture promises (briefs/scenarios.md).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
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

	rows := [][]string{{"AS EXPECTED", "GUARDRAIL", "TARGET", "SCENARIO", "PROFILE", "EXPECTED", "PHASE", "VALUE"}}
	var messages []string
	mismatches := 0
	for _, e := range harness.Expectations {
		if err := p.Ping(); err != nil {
			return fmt.Errorf("ping before %s: %w", e.Name(), err)
		}
		// As the controller does: Run, then Resume while the plugin answers Running (settling, 2s here).
		taken, problems := harness.RunToCompletion(p, harness.NewAnalysisRun(e.Target, "demo-"+e.Target.Rollout), harness.NewMetric(e.Guardrail, e.Config(prom.URL)))
		m := taken[len(taken)-1]
		asExpected := "yes"
		if m.Phase != e.Phase || len(problems) > 0 {
			asExpected = "NO"
			mismatches++
		}
		profile := e.Profile
		if profile == "" {
			profile = "default"
		}
		rows = append(rows, []string{asExpected, e.Guardrail, e.Target.String(), scenarios[e.Target], profile,
			verdict(e.Phase), verdict(m.Phase), m.Value})
		messages = append(messages, strings.Join(strings.Fields(m.Message), " "))
	}
	printTable(rows, messages)
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

// scenarios says what each canary of the fixture looks like (tests/fixtures/prometheus/README.md), so that two
// rows failing with the same message (ops/gone, ops/ghost: no fresh series) say how they differ.
var scenarios = map[harness.Target]string{
	harness.ShopWeb:       "3 healthy pods",
	harness.PayAPI:        "1 of 2 pods crash-looping",
	harness.PayLedger:     "1 restart in the last 5 min",
	harness.PayWorker:     "1 of 2 pods not ready",
	harness.MediaEncoder:  "image :latest",
	harness.MediaThumbs:   "image without a tag",
	harness.MediaResizer:  ":latest pinned by digest",
	harness.MediaUploader: "stuck in ImagePullBackOff",
	harness.OpsStale:      "series stopped 4 min ago",
	harness.OpsGone:       "pods existed, series stopped 30 min ago",
	harness.OpsGhost:      "no pod ever had a series",
	harness.PayYoung:      "pod born 3 min ago, 2 restarts",
}

// messageWidth is where the messages under the rows wrap (between words: nothing is cut).
const messageWidth = 110

// printTable aligns the columns and prints each row's whole message under it, wrapped between words.
func printTable(rows [][]string, messages []string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	line := func(row []string) {
		var b strings.Builder
		for i, cell := range row {
			if i < len(row)-1 {
				fmt.Fprintf(&b, "%-*s  ", widths[i], cell)
			} else {
				b.WriteString(cell)
			}
		}
		fmt.Println(strings.TrimRight(b.String(), " "))
	}
	line(rows[0])
	for i, row := range rows[1:] {
		line(row)
		for _, l := range wrap(messages[i], messageWidth) {
			fmt.Println("    " + l)
		}
	}
}

func wrap(text string, width int) []string {
	var lines []string
	current := ""
	for _, word := range strings.Fields(text) {
		if current != "" && len(current)+1+len(word) > width {
			lines = append(lines, current)
			current = word
			continue
		}
		if current != "" {
			current += " "
		}
		current += word
	}
	if current != "" {
		lines = append(lines, current)
	}
	return lines
}
