// Package conformance runs the rollouts-guardrails conformance suite with argo-rollouts v1.10.0 with the go-plugin it pins (v1.7.0). v1.10.0-rc1 is not served by the module proxy (403)..
package conformance

import (
	"testing"

	"github.com/rollouts-guardrails/conformance/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// TestConformance drives GUARDRAILS_BIN through the real argo-rollouts plugin client.
func TestConformance(t *testing.T) { harness.Run(t) }
