package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The cases src/validate/immutable.rs reports, shared with tests/cli/validate.rs and tests/go/validate, and this
// suite's own (testdata/immutable: kinds and fields those fixtures do not reach).
var immutableDirs = []string{
	filepath.Join("..", "..", "..", "fixtures", "validate", "immutable"),
	filepath.Join("testdata", "immutable"),
}

var pathLine = regexp.MustCompile(`(?m)^# path: (\S+)`)

// storageClasses are the classes the PersistentVolumeClaim cases name; expansion allowed, so that a refusal is
// the immutable spec's doing and not the PersistentVolumeClaimResize admission plugin's.
const storageClasses = `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: standard}
provisioner: example.com/none
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: example.com/none
allowVolumeExpansion: true
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttributesClass
metadata: {name: silver}
driverName: example.com/none
parameters: {iops: "3000"}
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttributesClass
metadata: {name: gold}
driverName: example.com/none
parameters: {iops: "6000"}
`

// immutableFields applies each case's first revision, then its second, with `kubectl apply` (what Argo CD
// does; Flux's server-side apply reaches the same update validation): a refused case must be refused (422,
// naming the field or the spec it belongs to), an allowed one accepted and stored.
func immutableFields(t *testing.T) {
	ctx := ctxT(t)
	if out := kubectl(t, ctx, "", "get", "validatingadmissionpolicies", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("the admission policies are installed already (%s): these cases must meet only the API server's own validation", strings.TrimSpace(out))
	}
	kubectl(t, ctx, storageClasses, "apply", "-f", "-")
	for _, verdict := range []string{"refused", "allowed"} {
		var files []string
		for _, dir := range immutableDirs {
			found, _ := filepath.Glob(filepath.Join(dir, verdict, "*.yaml"))
			files = append(files, found...)
		}
		if len(files) < 7 {
			t.Fatalf("too few %s cases: %v", verdict, files)
		}
		for _, file := range files {
			t.Run(verdict+"/"+filepath.Base(file), func(t *testing.T) {
				immutableCase(t, file, verdict == "refused")
			})
		}
	}
}

func immutableCase(t *testing.T, file string, refused bool) {
	ctx := ctxT(t)
	docs := documents(t, file)
	if len(docs) != 2 {
		t.Fatalf("want two documents (before, after), got %d", len(docs))
	}
	want := pathLine.FindStringSubmatch(strings.Join(docs, "\n"))
	if refused && want == nil {
		t.Fatal("no `# path:` line")
	}
	validateAgrees(t, docs, refused, want)
	ns := namespace(t, ctx, dnsName("imm-", filepath.Base(file)))
	for i, doc := range docs {
		if !strings.Contains(doc, "namespace: shop") {
			t.Fatalf("document %d has no `namespace: shop` to move into %s", i, ns)
		}
		docs[i] = strings.ReplaceAll(doc, "namespace: shop", "namespace: "+ns)
	}
	name := strings.TrimSpace(kubectl(t, ctx, docs[0], "apply", "-f", "-", "-o", "name"))
	// Services of different cases ask for the same clusterIP: free it for the next case.
	if kindOf(docs[0]) == "Service" {
		t.Cleanup(func() { _, _ = c.Kubectl(ctx, "delete", name, "-n", ns, "--wait=true") })
	}
	if kindOf(docs[0]) == "PersistentVolumeClaim" {
		// What the PV controller does for a claim that found its volume: the spec's resize rules are those of
		// a bound claim (an unbound claim's spec is immutable altogether).
		kubectl(t, ctx, "", "patch", name, "-n", ns, "--subresource=status", "--type=merge",
			"-p", `{"status":{"phase":"Bound","accessModes":["ReadWriteOnce"],"capacity":{"storage":"1Gi"}}}`)
	}
	version := func() string {
		return kubectl(t, ctx, "", "get", name, "-n", ns, "-o", "jsonpath={.metadata.resourceVersion}")
	}
	before := version()
	out, err := c.KubectlIn(ctx, docs[1], "apply", "-f", "-")
	if !refused {
		if err != nil {
			t.Fatalf("the API server refuses a change validate allows: %v", err)
		}
		if after := version(); after == before {
			t.Fatalf("the second revision changed nothing (resourceVersion %s): the case proves nothing\n%s", before, out)
		}
		t.Logf("accepted: %s", strings.TrimSpace(out))
		return
	}
	if err == nil {
		t.Fatalf("the API server accepts a change validate refuses: %s", strings.TrimSpace(out))
	}
	msg := err.Error()
	if !strings.Contains(msg, "is invalid") || !namesFieldOrSpec(msg, want[1]) {
		t.Fatalf("want a validation refusal naming %s (or the spec it belongs to), got: %s", want[1], msg)
	}
	msg = msg[strings.Index(msg, "The "):]
	if len(msg) > 400 {
		msg = msg[:400] + "…"
	}
	t.Logf("refused: %s", msg)
}

// sameField maps a path validate reports to the field the API server names for it: a Service's clusterIP is
// validated as clusterIPs[0] (the API server keeps the two in step), a Secret's stringData is stored as data.
var sameField = map[string]string{"spec.clusterIP": "spec.clusterIPs[0]", "stringData": "data"}

// namesFieldOrSpec reports whether the API server's message names path or one of its parents as the field of a
// cause (`spec.selector: Invalid value`, `spec: Forbidden`, …); a CRD's CEL rule names `spec.selector`.
func namesFieldOrSpec(msg, path string) bool {
	if alias, ok := sameField[path]; ok && namesFieldOrSpec(msg, alias) {
		return true
	}
	parts := strings.Split(path, ".")
	for i := len(parts); i > 0; i-- {
		p := strings.Join(parts[:i], ".")
		if strings.Contains(msg, "invalid: "+p+": ") || strings.Contains(msg, "* "+p+": ") ||
			strings.Contains(msg, ", "+p+": ") {
			return true
		}
	}
	return false
}

// validateAgrees runs `rollouts-guardrails validate --against HEAD` on the case as tests/cli/validate.rs does (the
// first revision committed in a scratch repository, the second in the work tree), so that the binary's verdict is
// checked against the API server's on the same two documents: an immutable-field problem at the case's path for a
// refused case, no problem for an allowed one.
func validateAgrees(t *testing.T, docs []string, refused bool, path []string) {
	t.Helper()
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-c", "user.name=e2e", "-c", "user.email=e2e@localhost", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	object := filepath.Join(repo, "deploy", "object.yaml")
	git("init", "-q")
	if err := os.WriteFile(object, []byte(docs[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", ".")
	git("commit", "-qm", "before")
	if err := os.WriteFile(object, []byte(docs[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.PluginBinary(), "validate", "--against", "HEAD", "--output", "json", "deploy")
	cmd.Dir = repo
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("validate: %v", err)
	}
	var problems []struct{ Check, Path, Message string }
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line == "" {
			continue
		}
		var p struct{ Check, Path, Message string }
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("validate printed a line that is not JSON: %q", line)
		}
		problems = append(problems, p)
	}
	if !refused {
		if code != 0 || len(problems) > 0 {
			t.Fatalf("validate reports an allowed change (exit %d): %+v %s", code, problems, stderr.String())
		}
		return
	}
	for _, p := range problems {
		if p.Check == "immutable-field" && p.Path == path[1] {
			if code != 1 {
				t.Fatalf("validate found the problem but exited %d", code)
			}
			return
		}
	}
	t.Fatalf("validate does not report %s (exit %d): %+v %s", path[1], code, problems, stderr.String())
}
