package harness

import "github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

// Expectation is one verdict the fixture promises (tests/fixtures/prometheus/kube-state-metrics.om, see
// briefs/scenarios.md), evaluated at the fixture's END shifted to "now".
type Expectation struct {
	Guardrail string
	Target    Target
	// Profile is "" for the plugin's default profile, else the config's "profile".
	Profile string
	Phase   v1alpha1.AnalysisPhase
}

const (
	successful = v1alpha1.AnalysisPhaseSuccessful
	failed     = v1alpha1.AnalysisPhaseFailed
)

// Expectations lists every verdict of the scenario table, in its order.
var Expectations = []Expectation{
	{"restarts", ShopWeb, "", successful},
	{"not-ready", ShopWeb, "", successful},
	{"latest-image", ShopWeb, "", successful},
	{"restarts", PayAPI, "", failed},
	{"not-ready", PayAPI, "", failed},
	{"latest-image", PayAPI, "", successful},
	{"restarts", PayLedger, "", successful},
	{"restarts", PayLedger, "prod", failed},
	{"not-ready", PayWorker, "", failed},
	{"restarts", PayWorker, "", successful},
	{"latest-image", MediaEncoder, "", failed},
	{"latest-image", MediaThumbs, "", failed},
	{"latest-image", MediaResizer, "", successful},
	{"latest-image", MediaUploader, "", failed},
	{"not-ready", MediaUploader, "", failed},
	{"restarts", OpsStale, "", successful},
	{"not-ready", OpsStale, "", successful},
	{"latest-image", OpsStale, "", successful},
	{"restarts", OpsStale, "prod", failed},
	{"restarts", OpsGone, "", failed},
	{"not-ready", OpsGone, "", failed},
	{"latest-image", OpsGone, "", failed},
	{"restarts", OpsGhost, "", failed},
	{"not-ready", OpsGhost, "", failed},
	{"latest-image", OpsGhost, "", failed},
	{"restarts", PayYoung, "", failed},
	// waiting-reasons and oom-killed (issue 9) on the same pods.
	{"waiting-reasons", ShopWeb, "", successful},
	{"waiting-reasons", PayAPI, "", failed},
	{"waiting-reasons", MediaUploader, "", failed},
	{"waiting-reasons", OpsGhost, "", failed},
	{"oom-killed", ShopWeb, "", successful},
	{"oom-killed", PayLedger, "", failed},
	{"oom-killed", PayYoung, "", successful},
	{"oom-killed", OpsGone, "", failed},
}

// Config is the plugin config for this expectation against Prometheus at address (target from the
// AnalysisRun's defaults).
func (e Expectation) Config(address string) map[string]any {
	c := GuardrailConfig(address, e.Guardrail)
	if e.Profile != "" {
		c["profile"] = e.Profile
	}
	return c
}

// Name is "guardrail target[ profile]".
func (e Expectation) Name() string {
	n := e.Guardrail + " " + e.Target.String()
	if e.Profile != "" {
		n += " " + e.Profile
	}
	return n
}
