package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var shippedPolicies = []string{"no-mutable-image", "require-limits", "require-owner-label"}

const expectAnnotation = "rollouts-guardrails.test/expect"

// fixture is one object of tests/fixtures/validate/policies: its text and, for a denied one, the message validate and
// the policy give.
type fixture struct {
	doc, kind, name, want string
}

func fixtures(t *testing.T, ctx context.Context, file string) []fixture {
	t.Helper()
	var out []fixture
	for _, doc := range documents(t, filepath.Join("..", "..", "..", "fixtures", "validate", "policies", file)) {
		var meta struct {
			Kind     string
			Metadata struct {
				Name        string
				Annotations map[string]string
			}
		}
		// kubectl parses the YAML (the suite has only the standard library); client-side, nothing is sent.
		if err := json.Unmarshal([]byte(kubectl(t, ctx, doc, "create", "--dry-run=client", "-o", "json", "-f", "-")), &meta); err != nil {
			t.Fatal(err)
		}
		out = append(out, fixture{doc: doc, kind: meta.Kind, name: meta.Metadata.Name, want: meta.Metadata.Annotations[expectAnnotation]})
	}
	return out
}

// denial is what kube-apiserver answers when a binding with validationActions [Deny] refuses a request.
func denial(policy, message string) string {
	return "ValidatingAdmissionPolicy '" + policy + "' with binding '" + policy + "' denied request: " + message
}

// policyOf is the policy a fixture's expected message comes from (`no-mutable-image: container …`).
func policyOf(message string) string {
	name, _, _ := strings.Cut(message, ": ")
	return name
}

// admissionPolicies installs manifests/policies exactly as a user does (kubectl apply -k) and asserts the
// API server's own verdicts: each object of denied.yaml denied with validate's message, naming the policy; each
// of admitted.yaml admitted; an update to a mutable image denied; an ephemeral container added by `kubectl
// debug` checked too; the shipped templates and examples admitted.
func admissionPolicies(t *testing.T) {
	ctx := ctxT(t)
	// Made before the policies exist, as in a cluster that installs them later: no limits, a `:latest` image.
	legacy := namespace(t, ctx, "legacy")
	kubectl(t, ctx, legacyReplicaSet, "create", "-n", legacy, "-f", "-")

	kubectl(t, ctx, "", "apply", "-k", filepath.Join(c.Root, "manifests", "policies"))
	t.Cleanup(func() { _, _ = c.Kubectl(ctx, "delete", "-k", filepath.Join(c.Root, "manifests", "policies")) })

	t.Run("compiled-without-type-warnings", func(t *testing.T) { typeChecked(t, ctx) })

	denied := fixtures(t, ctx, "denied.yaml")
	admitted := fixtures(t, ctx, "admitted.yaml")
	if len(denied) < 6 || len(admitted) < 3 {
		t.Fatalf("too few fixtures: %d denied, %d admitted", len(denied), len(admitted))
	}
	// Policies and bindings reach the admission plugin through informers: wait, with server-side dry runs (which
	// run admission and store nothing), until each policy denies its first fixture.
	for _, policy := range shippedPolicies {
		var probe *fixture
		for i := range denied {
			if policyOf(denied[i].want) == policy {
				probe = &denied[i]
				break
			}
		}
		if probe == nil {
			t.Fatalf("denied.yaml has no object for %s", policy)
		}
		ns := "default"
		if err := waitFor(ctx, 60*time.Second, func() bool {
			_, err := c.KubectlIn(ctx, probe.doc, "create", "--dry-run=server", "-n", ns, "-f", "-")
			return err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policy+"'")
		}); err != nil {
			t.Fatalf("%s never took effect: %v", policy, err)
		}
	}

	ns := namespace(t, ctx, "admission") // admitted: it has its owner label
	for _, f := range denied {
		t.Run("denied/"+f.kind+"/"+f.name, func(t *testing.T) {
			if f.want == "" {
				t.Fatalf("no %s annotation", expectAnnotation)
			}
			out, err := c.KubectlIn(ctx, f.doc, "create", "-n", ns, "-f", "-")
			if err == nil {
				t.Fatalf("admitted: %s", out)
			}
			if want := denial(policyOf(f.want), f.want); !strings.Contains(err.Error(), want) {
				t.Fatalf("want the denial\n  %s\ngot\n  %v", want, err)
			}
			if _, err := c.Kubectl(ctx, "get", strings.ToLower(f.kind), f.name, "-n", ns); err == nil || !strings.Contains(err.Error(), "NotFound") {
				t.Fatalf("the denied object exists, or cannot be looked up: %v", err)
			}
		})
	}
	for _, f := range admitted {
		t.Run("admitted/"+f.kind+"/"+f.name, func(t *testing.T) {
			kubectl(t, ctx, f.doc, "create", "-n", ns, "-f", "-")
		})
	}

	t.Run("update-to-latest-denied", func(t *testing.T) {
		_, err := c.Kubectl(ctx, "set", "image", "-n", ns, "daemonset/agent", "agent=nginx:latest")
		want := denial("no-mutable-image", "no-mutable-image: container `agent` uses mutable image `nginx:latest`: pin a tag other than latest, or a digest")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("want the denial\n  %s\ngot\n  %v", want, err)
		}
	})

	// argo-rollouts v1.9.1 scales a ReplicaSet with a full Update (rollout/sync.go scaleReplicaSet →
	// rollout/controller.go updateReplicaSet), as a merge patch does here; the Deployment controller does the
	// same. Denied, a Rollout could neither scale down an old stable ReplicaSet made before the policies nor
	// scale it back up on abort.
	t.Run("scaling-a-replicaset-made-before-the-policies-admitted", func(t *testing.T) {
		kubectl(t, ctx, "", "patch", "-n", legacy, "replicaset/legacy", "--type=merge", "-p", `{"spec":{"replicas":0}}`)
		kubectl(t, ctx, "", "patch", "-n", legacy, "replicaset/legacy", "--type=merge", "-p", `{"spec":{"replicas":2}}`)
		// Its pod template is still judged when it changes.
		_, err := c.Kubectl(ctx, "set", "image", "-n", legacy, "replicaset/legacy", "app=nginx:1.27.3")
		want := denial("require-limits", "require-limits: container `app` has no cpu and memory limits")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("want the denial\n  %s\ngot\n  %v", want, err)
		}
	})

	// The ReplicaSet controller creates its pods; judged, the old stable's pods would be denied on abort.
	t.Run("pods-of-a-replicaset-made-before-the-policies-admitted", func(t *testing.T) {
		uid := kubectl(t, ctx, "", "get", "-n", legacy, "replicaset/legacy", "-o", "jsonpath={.metadata.uid}")
		kubectl(t, ctx, legacyPod("legacy-abc12", "apps/v1", "ReplicaSet", "legacy", uid), "create", "-n", legacy, "-f", "-")
		// A pod of a controller kind the policies do not judge is judged itself.
		// It breaks two policies (a mutable image, no limits); the API server reports whichever denied first,
		// and the order of policies is not part of its contract: either denial proves the pod was judged.
		_, err := c.KubectlIn(ctx, legacyPod("widget-abc12", "example.com/v1", "Widget", "w", uid), "create", "-n", legacy, "-f", "-")
		wants := []string{
			denial("no-mutable-image", "no-mutable-image: container `app` uses mutable image `nginx:latest`: pin a tag other than latest, or a digest"),
			denial("require-limits", "require-limits: container `app` has no cpu and memory limits"),
		}
		if err == nil || !(strings.Contains(err.Error(), wants[0]) || strings.Contains(err.Error(), wants[1])) {
			t.Fatalf("want one of the denials\n  %s\ngot\n  %v", strings.Join(wants, "\n  "), err)
		}
		// An ephemeral container on the admitted pod is judged too.
		_, err = c.Kubectl(ctx, "debug", "-n", legacy, "legacy-abc12", "--image=busybox:latest", "--container=debugger")
		want := denial("no-mutable-image", "no-mutable-image: container `app` uses mutable image `nginx:latest`: pin a tag other than latest, or a digest")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("want the denial\n  %s\ngot\n  %v", want, err)
		}
	})

	t.Run("namespace-label-removed-denied", func(t *testing.T) {
		_, err := c.Kubectl(ctx, "label", "namespace", ns, "owner-")
		want := denial("require-owner-label", "require-owner-label: Namespace `"+ns+"` has no `owner` label")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("want the denial\n  %s\ngot\n  %v", want, err)
		}
	})

	t.Run("ephemeral-container-latest-denied", func(t *testing.T) {
		kubectl(t, ctx, `apiVersion: v1
kind: Pod
metadata: {name: debug-me}
spec:
  containers:
    - name: app
      image: ghcr.io/example/app:1.0.0
      resources: {limits: {cpu: 100m, memory: 64Mi}}
`, "create", "-n", ns, "-f", "-")
		// What an operator runs; the ephemeral container reaches the API server through pods/ephemeralcontainers.
		out, err := c.Kubectl(ctx, "debug", "-n", ns, "debug-me", "--image=busybox:latest", "--container=debugger", "--target=app")
		want := denial("no-mutable-image", "no-mutable-image: container `debugger` uses mutable image `busybox:latest`: pin a tag other than latest, or a digest")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("want the denial\n  %s\ngot\n  %v %s", want, err, out)
		}
		// A pinned one is admitted: ephemeral containers carry no resources, require-limits must not ask.
		kubectl(t, ctx, "", "debug", "-n", ns, "debug-me", "--image=busybox:1.36.1", "--container=pinned", "--target=app")
	})

	t.Run("shipped-manifests-and-examples-admitted", func(t *testing.T) {
		for _, n := range []string{"pay", "rollouts-guardrails", "inventory-prod"} {
			namespace(t, ctx, n) // shop is admitted.yaml's
		}
		for _, args := range [][]string{
			{"-k", "manifests/analysis"},
			{"-k", "examples/kustomize-overlay/production"},
			{"-f", "examples/canary/rollout.yaml"},
			{"-f", "examples/canary/rollout-prod.yaml"},
			{"-f", "examples/bluegreen/rollout.yaml"},
			{"-f", "examples/query/analysis-template.yaml"},
			{"-f", "examples/grpc/deployment.yaml"},
			{"-f", "examples/guardrails"},
			{"-f", "examples/demo/template.yaml"},
		} {
			kubectl(t, ctx, "", "apply", args[0], filepath.Join(c.Root, args[1]))
		}
	})
}

// legacyReplicaSet breaks both workload policies.
const legacyReplicaSet = `apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: legacy}
spec:
  replicas: 1
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: app, image: "nginx:latest"}]
`

// legacyPod is a pod of legacyReplicaSet's template with a controller ownerReference.
func legacyPod(name, apiVersion, kind, owner, uid string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels: {app: legacy}
  ownerReferences: [{apiVersion: %s, kind: %s, name: %s, uid: %s, controller: true}]
spec:
  containers: [{name: app, image: "nginx:latest"}]
`, name, apiVersion, kind, owner, uid)
}

// typeChecked waits for the API server's type check of each policy (status.typeChecking, written once per
// generation against the OpenAPI schema of every kind the policy matches) and fails on any warning: a CEL type
// error the untyped evaluation of tests/go/validate cannot see.
func typeChecked(t *testing.T, ctx context.Context) {
	for _, name := range shippedPolicies {
		var status struct {
			Metadata struct{ Generation int64 }
			Status   struct {
				ObservedGeneration int64 `json:"observedGeneration"`
				TypeChecking       *struct {
					ExpressionWarnings []struct {
						FieldRef string `json:"fieldRef"`
						Warning  string
					} `json:"expressionWarnings"`
				} `json:"typeChecking"`
			}
		}
		if err := waitFor(ctx, 60*time.Second, func() bool {
			out, err := c.Kubectl(ctx, "get", "validatingadmissionpolicy", name, "-o", "json")
			return err == nil && json.Unmarshal([]byte(out), &status) == nil &&
				status.Status.TypeChecking != nil && status.Status.ObservedGeneration == status.Metadata.Generation
		}); err != nil {
			t.Fatalf("%s: never type-checked: %v", name, err)
		}
		for _, w := range status.Status.TypeChecking.ExpressionWarnings {
			t.Errorf("%s: %s: %s", name, w.FieldRef, w.Warning)
		}
	}
}

// typeProbe is ill-typed on purpose (a Deployment's replicas is an integer): the type checker must flag it, or
// typeChecked's silence proves nothing.
const typeProbe = `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: guardrails-e2e-type-probe}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  validations:
    - expression: object.spec.replicas == 'one'
`

func typeCheckerFlagsAnIllTypedPolicy(t *testing.T) {
	ctx := ctxT(t)
	kubectl(t, ctx, typeProbe, "apply", "-f", "-")
	t.Cleanup(func() { _, _ = c.Kubectl(ctx, "delete", "validatingadmissionpolicy", "guardrails-e2e-type-probe") })
	var warnings string
	if err := waitFor(ctx, 60*time.Second, func() bool {
		out, err := c.Kubectl(ctx, "get", "validatingadmissionpolicy", "guardrails-e2e-type-probe",
			"-o", "jsonpath={.status.typeChecking.expressionWarnings[*].warning}")
		warnings = out
		return err == nil && strings.Contains(out, "no matching overload")
	}); err != nil {
		t.Fatalf("no type warning for an int compared with a string (got %q): %v", warnings, err)
	}
	t.Logf("the type checker's warning: %s", warnings)
}

func waitFor(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return nil
}
