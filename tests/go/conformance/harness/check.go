package harness

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Want is what one Run reply must look like. Every reply is also checked for the fields the contract
// requires of any finished measurement (see CheckMeasurement).
type Want struct {
	Phase v1alpha1.AnalysisPhase
	// Value is compared exactly unless AnyValue is set.
	Value    string
	AnyValue bool
	// MessageContains are substrings the message must contain.
	MessageContains []string
	// MessageMatches are patterns the message must match.
	MessageMatches []*regexp.Regexp
	// Target must be named by the resolved PromQL in the metadata (namespace quoted, and the hash).
	Target Target
	// Prometheus is the address expected under metadata["prometheus"].
	Prometheus string
}

// CheckMeasurement returns every way m differs from want; called bounds the Run call in wall-clock time.
func CheckMeasurement(m v1alpha1.Measurement, want Want, calledAt, returnedAt time.Time) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if m.Phase != want.Phase {
		bad("phase = %q, want %q (message %q)", m.Phase, want.Phase, m.Message)
	}
	if !want.AnyValue && m.Value != want.Value {
		bad("value = %q, want %q", m.Value, want.Value)
	}
	if m.Phase == v1alpha1.AnalysisPhaseFailed && strings.TrimSpace(m.Message) == "" {
		bad("failed measurement has an empty message")
	}
	for _, s := range want.MessageContains {
		if !strings.Contains(m.Message, s) {
			bad("message %q does not contain %q", m.Message, s)
		}
	}
	for _, re := range want.MessageMatches {
		if !re.MatchString(m.Message) {
			bad("message %q does not match %s", m.Message, re)
		}
	}
	// Timestamps: both set, ordered, inside the call (the plugin may truncate to whole seconds).
	lo, hi := calledAt.Truncate(time.Second).Add(-time.Second), returnedAt.Add(time.Second)
	switch {
	case m.StartedAt == nil:
		bad("startedAt is nil")
	case m.StartedAt.Time.Before(lo) || m.StartedAt.Time.After(hi):
		bad("startedAt %s outside the call [%s, %s]", m.StartedAt.Time, calledAt, returnedAt)
	}
	switch {
	case m.FinishedAt == nil:
		bad("finishedAt is nil")
	case m.FinishedAt.Time.Before(lo) || m.FinishedAt.Time.After(hi):
		bad("finishedAt %s outside the call [%s, %s]", m.FinishedAt.Time, calledAt, returnedAt)
	case m.StartedAt != nil && m.FinishedAt.Time.Before(m.StartedAt.Time):
		bad("finishedAt %s before startedAt %s", m.FinishedAt.Time, m.StartedAt.Time)
	}
	if m.ResumeAt != nil {
		bad("resumeAt = %s on a finished measurement", m.ResumeAt.Time)
	}
	if want.Prometheus != "" {
		if got, ok := m.Metadata["prometheus"]; !ok {
			bad("metadata has no \"prometheus\" key (keys %v)", keys(m.Metadata))
		} else if strings.TrimSuffix(got, "/") != strings.TrimSuffix(want.Prometheus, "/") {
			bad("metadata[prometheus] = %q, want %q", got, want.Prometheus)
		}
	}
	if want.Target != (Target{}) {
		problems = append(problems, CheckQueries(m.Metadata, want.Target)...)
	}
	return problems
}

// CheckQueries checks that metadata holds resolved PromQL (keys starting with "query") naming target.
func CheckQueries(metadata map[string]string, target Target) []string {
	var queries []string
	for k, v := range metadata {
		if strings.HasPrefix(k, "query") {
			queries = append(queries, v)
		}
	}
	if len(queries) == 0 {
		return []string{fmt.Sprintf("metadata has no key starting with \"query\" (keys %v)", keys(metadata))}
	}
	var problems []string
	all := strings.Join(queries, "\n")
	if !strings.Contains(all, `"`+target.Namespace+`"`) {
		problems = append(problems, fmt.Sprintf("resolved queries do not select namespace %q: %q", target.Namespace, queries))
	}
	if !strings.Contains(all, target.Hash) {
		problems = append(problems, fmt.Sprintf("resolved queries do not name pod-template hash %q: %q", target.Hash, queries))
	}
	for _, q := range queries {
		if strings.TrimSpace(q) == "" {
			problems = append(problems, "a query metadata value is empty")
		}
	}
	return problems
}

// SameMeasurement reports how got differs from want, comparing times as instants.
func SameMeasurement(got, want v1alpha1.Measurement) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if got.Phase != want.Phase {
		bad("phase = %q, want %q", got.Phase, want.Phase)
	}
	if got.Message != want.Message {
		bad("message = %q, want %q", got.Message, want.Message)
	}
	if got.Value != want.Value {
		bad("value = %q, want %q", got.Value, want.Value)
	}
	for name, pair := range map[string][2]*time.Time{
		"startedAt":  {timeOf(got.StartedAt), timeOf(want.StartedAt)},
		"finishedAt": {timeOf(got.FinishedAt), timeOf(want.FinishedAt)},
		"resumeAt":   {timeOf(got.ResumeAt), timeOf(want.ResumeAt)},
	} {
		g, w := pair[0], pair[1]
		switch {
		case g == nil && w == nil:
		case g == nil || w == nil:
			bad("%s = %v, want %v", name, g, w)
		case !g.Equal(*w):
			bad("%s = %s, want %s", name, g, w)
		}
	}
	if len(got.Metadata) != len(want.Metadata) {
		bad("metadata = %v, want %v", got.Metadata, want.Metadata)
	} else {
		for k, v := range want.Metadata {
			if got.Metadata[k] != v {
				bad("metadata[%q] = %q, want %q", k, got.Metadata[k], v)
			}
		}
	}
	return problems
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil {
		return nil
	}
	return &t.Time
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
