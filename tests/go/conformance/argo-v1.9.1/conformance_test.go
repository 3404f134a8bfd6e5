// Package conformance runs the rollouts-guardrails conformance suite with argo-rollouts v1.9.1 with the go-plugin it pins (v1.6.3)..
package conformance

import (
	"testing"

	"github.com/rollouts-guardrails/conformance/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// TestConformance drives GUARDRAILS_BIN through the real argo-rollouts plugin client.
func TestConformance(t *testing.T) { harness.Run(t) }
