// Package policies runs what the API server itself decides about the objects `rollouts-guardrails validate`
// judges, on a control plane of etcd and kube-apiserver v1.34.4 (cluster.StartAPIServer), kube-controller-manager
// running only the policies' type checker, and argo-rollouts v1.9.1's CRDs. TestAPIServer runs, in this order:
//   - immutable-fields (immutable_test.go), before any policy exists: every case of tests/fixtures/validate/immutable
//     and testdata/immutable applied as a GitOps tool would, revision after revision; each refused case must be refused
//     naming the field, each allowed one stored, and `validate --against` must say the same;
//   - admission-policies (admission_test.go): manifests/policies applied as shipped (kubectl apply -k); each object of
//     tests/fixtures/validate/policies/denied.yaml denied with its annotated message, naming the policy, each of
//     admitted.yaml, the shipped manifests and the examples admitted;
//   - type-checker-flags-an-ill-typed-policy: the type check the policies pass does flag a type error.
package policies

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

// c is the API server every test shares (one namespace per case).
var c *cluster.Cluster

// TestAPIServer runs the three in order: the immutable-field cases must meet only the API server's own
// validation, before the policies are installed (they would deny the cases' unlimited containers).
func TestAPIServer(t *testing.T) {
	t.Run("immutable-fields", immutableFields)
	t.Run("admission-policies", admissionPolicies)
	t.Run("type-checker-flags-an-ill-typed-policy", typeCheckerFlagsAnIllTypedPolicy)
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	t0 := time.Now()
	var err error
	c, err = cluster.StartAPIServer(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "policies: API server did not start: %v\n", err)
		c.Stop()
		return 1
	}
	// The one controller admission policies need: it type-checks each policy against the schemas of the kinds it
	// matches and writes status.typeChecking (kube-apiserver alone never does).
	if err := c.StartControllerManager("validatingadmissionpolicy-status-controller"); err != nil {
		fmt.Fprintf(os.Stderr, "policies: kube-controller-manager: %v\n", err)
		c.Stop()
		return 1
	}
	if err := c.ApplyCRDs(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "policies: CRDs: %v\n", err)
		c.Stop()
		return 1
	}
	fmt.Fprintf(os.Stderr, "policies: etcd + kube-apiserver %s up, argo-rollouts %s CRDs Established in %.0f s (state in %s)\n",
		cluster.K8sVersion, c.ArgoVersion, time.Since(t0).Seconds(), c.Dir)
	code := m.Run()
	dir := c.Dir
	c.Stop()
	if out, err := exec.Command("pgrep", "-af", dir).Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		fmt.Fprintf(os.Stderr, "policies: FAIL leftover processes after stop:\n%s", out)
		return 1
	}
	fmt.Fprintln(os.Stderr, "policies: every process stopped (pgrep finds none)")
	return code
}
