// Command pluginrun drives rollouts-guardrails in plugin mode through argo-rollouts' own plugin client
// (harness.Start: go-plugin configured as the controller configures it), one measurement per input line, so Rust
// tests (tests/faces/fault_matrix.rs, tests/faces/secrets.rs) can put the plugin-mode face under the same faults as the
// engine and the gRPC face.
//
//	pluginrun -bin target/debug/rollouts-guardrails < requests.jsonl > replies.jsonl
//
// Input, one JSON object per line: {"namespace":"shop","rollout":"web","hash":"6c8d7f9a1","config":{…}} — the
// AnalysisRun's namespace, owner Rollout and pod-template-hash label, and the plugin configuration, sent as the
// metric's provider.plugin["rollouts-guardrails/prometheus"] entry verbatim.
// Output, one line per input: {"phase":…,"message":…,"value":…,"metadata":{…}}. At end of input the plugin is
// stopped as the controller stops it (Control.Quit) and a last line {"logs":"…"} carries everything the host
// logged for it (its stderr, re-logged by go-plugin). With -scrape URL, a line {"scraped":"…"} before it carries
// the body of a GET of URL made while the plugin still runs (its /metrics under GUARDRAILS_METRICS_LISTEN).
// The plugin inherits this process's environment.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rollouts-guardrails/conformance/harness"
)

type request struct {
	Namespace string          `json:"namespace"`
	Rollout   string          `json:"rollout"`
	Hash      string          `json:"hash"`
	Config    json.RawMessage `json:"config"`
}

type reply struct {
	Phase    string            `json:"phase"`
	Message  string            `json:"message"`
	Value    string            `json:"value"`
	Metadata map[string]string `json:"metadata"`
}

func main() {
	bin := flag.String("bin", os.Getenv("GUARDRAILS_BIN"), "the rollouts-guardrails binary")
	scrape := flag.String("scrape", "", "a URL to GET after the last measurement, while the plugin runs")
	var args argList
	flag.Var(&args, "arg", "a registration arg passed to the plugin's command line, as Argo does (repeatable)")
	flag.Parse()
	if err := run(*bin, *scrape, args); err != nil {
		fmt.Fprintln(os.Stderr, "pluginrun:", err)
		os.Exit(1)
	}
}

// argList collects repeated -arg flags.
type argList []string

func (a *argList) String() string     { return strings.Join(*a, " ") }
func (a *argList) Set(v string) error { *a = append(*a, v); return nil }

func run(bin, scrape string, args []string) error {
	if bin == "" {
		return fmt.Errorf("no binary: pass -bin or set GUARDRAILS_BIN")
	}
	plugin, err := harness.Start(bin, harness.Options{Args: args})
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for n := 1; in.Scan(); n++ {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			plugin.Kill()
			return fmt.Errorf("line %d: %w", n, err)
		}
		ar := harness.NewAnalysisRun(harness.Target{Namespace: req.Namespace, Rollout: req.Rollout, Hash: req.Hash}, fmt.Sprintf("run-%d", n))
		metric := harness.RawMetric(fmt.Sprintf("m%d", n), req.Config)
		m := plugin.Provider.Run(ar, metric)
		if err := out.Encode(reply{Phase: string(m.Phase), Message: m.Message, Value: m.Value, Metadata: m.Metadata}); err != nil {
			plugin.Kill()
			return err
		}
	}
	if scrape != "" {
		body, err := get(scrape)
		if err != nil {
			plugin.Kill()
			return err
		}
		if err := out.Encode(map[string]string{"scraped": body}); err != nil {
			plugin.Kill()
			return err
		}
	}
	plugin.Kill()
	if err := in.Err(); err != nil {
		return err
	}
	return out.Encode(map[string]string{"logs": plugin.Logs()})
}

func get(url string) (string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}
