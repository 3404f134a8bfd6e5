package policies

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// kubectl runs the suite's kubectl v1.34.4 (the client the e2e package uses) and fails the test on error.
func kubectl(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	out, err := c.KubectlIn(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var separator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// documents splits a YAML stream into its non-empty documents, as text (kubectl parses them).
func documents(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, doc := range separator.Split(string(b), -1) {
		if kindLine.MatchString(doc) {
			out = append(out, doc)
		}
	}
	return out
}

var kindLine = regexp.MustCompile(`(?m)^kind:[ \t]*(\S+)`)

func kindOf(doc string) string {
	if m := kindLine.FindStringSubmatch(doc); m != nil {
		return m[1]
	}
	return ""
}

// namespace creates a namespace for one case, with the `owner` label require-owner-label asks for and the
// default ServiceAccount kube-controller-manager would make (the ServiceAccount admission plugin refuses pods
// without it).
func namespace(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	kubectl(t, ctx, `apiVersion: v1
kind: Namespace
metadata:
  name: `+name+`
  labels: {owner: e2e}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: `+name+`}
`, "create", "-f", "-")
	return name
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsName turns a fixture's file name into a namespace name.
func dnsName(prefix, file string) string {
	n := prefix + notDNS.ReplaceAllString(strings.ToLower(strings.TrimSuffix(file, ".yaml")), "-")
	if len(n) > 63 {
		n = n[:63]
	}
	return strings.Trim(n, "-")
}
