package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rollouts-guardrails/e2e/cluster"
)

// c is the control plane every scenario shares (one namespace each).
var c *cluster.Cluster

// TestMain starts the control plane once, runs the scenarios, stops every process by its PID and fails the run if
// any process of the temp dir outlived it (pgrep).
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	t0 := time.Now()
	var err error
	c, err = cluster.Start(ctx, cluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: control plane did not start: %v\n", err)
		c.Stop()
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: control plane up in %.0f s (state in %s, argo-rollouts %s)\n", time.Since(t0).Seconds(), c.Dir, c.ArgoVersion)
	if err := c.InstallTemplates(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: templates: %v\n", err)
		c.Stop()
		return 1
	}
	code := m.Run()
	dir := c.Dir
	c.Stop()
	if out, err := exec.Command("pgrep", "-af", dir).Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: FAIL leftover processes after stop:\n%s", out)
		return 1
	}
	fmt.Fprintln(os.Stderr, "e2e: every process stopped (pgrep finds none)")
	return code
}
