// The API server's own verdicts on what `rollouts-guardrails validate` claims: the shipped
// ValidatingAdmissionPolicies and the immutable-field list, on etcd + kube-apiserver only (no controllers).
// A module of its own so that `make e2e` (go test ./... in tests/go/e2e) does not run it a second time.
module github.com/rollouts-guardrails/e2e/policies

go 1.26.1

require github.com/rollouts-guardrails/e2e v0.0.0

replace github.com/rollouts-guardrails/e2e => ../
