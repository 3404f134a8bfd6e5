// Package conformance runs the rollouts-guardrails conformance suite with argo-rollouts v1.10.1 (newest release whose go directive Go 1.26.8 accepts; v1.10.2 needs 1.26.10) with go-plugin raised to v1.8.0..
package conformance

import (
	"testing"

	"github.com/rollouts-guardrails/conformance/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// TestConformance drives GUARDRAILS_BIN through the real argo-rollouts plugin client.
func TestConformance(t *testing.T) { harness.Run(t) }
