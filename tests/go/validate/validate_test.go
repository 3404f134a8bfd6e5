// Package validate proves, with Kubernetes' and argo-rollouts' own code, the claims `rollouts-guardrails
// validate` makes on the fixtures under tests/fixtures/validate (tests/cli/validate.rs runs the same fixtures
// through the binary):
//   - every immutable-field case under immutable/refused is refused by k8s.io/kubernetes v1.34's own
//     Validate…Update function (or, for a Rollout, by the pinned CRD's CEL transition rule evaluated by
//     apiextensions-apiserver's validator), and every case under immutable/allowed is accepted;
//   - the ValidatingAdmissionPolicies in manifests/policies, compiled and evaluated in the API server's own CEL
//     environment (k8s.io/apiserver/pkg/cel/environment), deny each object of policies/denied.yaml with
//     the message of its annotation and admit every object of policies/admitted.yaml;
//   - the CRDs pinned in schemas/argo-rollouts-v1.9.1 equal those of the argo-rollouts module tests/go/manifests
//     (the Go harness) builds against.
package validate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	celvalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	"k8s.io/kubernetes/pkg/apis/apps"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	appsvalidation "k8s.io/kubernetes/pkg/apis/apps/validation"
	"k8s.io/kubernetes/pkg/apis/batch"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	batchvalidation "k8s.io/kubernetes/pkg/apis/batch/validation"
	"k8s.io/kubernetes/pkg/apis/core"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	"sigs.k8s.io/yaml"
)

// root is the repository, three levels above this module (tests/go/validate); fixtures is validate's fixture
// tree, shared with tests/cli/validate.rs.
const root = "../../.."

var fixtures = filepath.Join(root, "tests", "fixtures", "validate")

// documents splits a YAML stream into JSON documents.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reader := utilyaml.NewYAMLReader(bufioReader(data))
	var out [][]byte
	for {
		doc, err := reader.Read()
		if err != nil {
			break
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(j)) == 0 || string(j) == "null" {
			continue
		}
		out = append(out, j)
	}
	return out
}

// internal decodes a v1 object, applies the scheme's defaults (as the API server does before validation) and
// converts it to the internal type the validation functions take.
func internal(t *testing.T, doc []byte) runtime.Object {
	t.Helper()
	obj, gvk, err := legacyscheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacyscheme.Scheme.Default(obj)
	out, err := legacyscheme.Scheme.ConvertToVersion(obj, schema.GroupVersion{Group: gvk.Group, Version: runtime.APIVersionInternal})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// allocated fills what the API server's registry sets on create: resourceVersion, a Job's generated fields,
// a Service's clusterIPs and IP families.
func allocated(obj runtime.Object) {
	switch o := obj.(type) {
	case *apps.Deployment:
		o.ResourceVersion = "1"
	case *apps.StatefulSet:
		o.ResourceVersion = "1"
	case *batch.Job:
		o.ResourceVersion = "1"
	case *core.Service:
		o.ResourceVersion = "1"
		if o.Spec.Type != core.ServiceTypeExternalName {
			if len(o.Spec.ClusterIPs) == 0 && o.Spec.ClusterIP != "" {
				o.Spec.ClusterIPs = []string{o.Spec.ClusterIP}
			}
			single := core.IPFamilyPolicySingleStack
			o.Spec.IPFamilyPolicy = &single
			if o.Spec.ClusterIP != core.ClusterIPNone {
				o.Spec.IPFamilies = []core.IPFamily{core.IPv4Protocol}
			}
		}
	case *core.PersistentVolumeClaim:
		// A claim is resized once bound; an unbound claim's spec is immutable altogether.
		o.ResourceVersion = "1"
		o.Status.Phase = core.ClaimBound
	case *core.ConfigMap:
		o.ResourceVersion = "1"
	case *core.Secret:
		o.ResourceVersion = "1"
	}
}

// update runs the API server's update validation of the object's kind.
func update(t *testing.T, newObj, oldObj runtime.Object) field.ErrorList {
	t.Helper()
	pod := corevalidation.PodValidationOptions{}
	switch n := newObj.(type) {
	case *apps.Deployment:
		return appsvalidation.ValidateDeploymentUpdate(n, oldObj.(*apps.Deployment), pod)
	case *apps.StatefulSet:
		return appsvalidation.ValidateStatefulSetUpdate(n, oldObj.(*apps.StatefulSet), pod)
	case *batch.Job:
		return batchvalidation.ValidateJobUpdate(n, oldObj.(*batch.Job), batchvalidation.JobValidationOptions{PodValidationOptions: pod})
	case *core.Service:
		return corevalidation.ValidateServiceUpdate(n, oldObj.(*core.Service))
	case *core.PersistentVolumeClaim:
		return corevalidation.ValidatePersistentVolumeClaimUpdate(n, oldObj.(*core.PersistentVolumeClaim), corevalidation.PersistentVolumeClaimSpecValidationOptions{})
	case *core.ConfigMap:
		return corevalidation.ValidateConfigMapUpdate(n, oldObj.(*core.ConfigMap))
	case *core.Secret:
		return corevalidation.ValidateSecretUpdate(n, oldObj.(*core.Secret))
	}
	t.Fatalf("no update validation for %T", newObj)
	return nil
}

// rolloutUpdate evaluates the pinned Rollout CRD's CEL rules (x-kubernetes-validations) on an update, with
// apiextensions-apiserver's own validator.
func rolloutUpdate(t *testing.T, newDoc, oldDoc []byte) field.ErrorList {
	t.Helper()
	crdJSON, err := yaml.YAMLToJSON(mustRead(t, filepath.Join(root, "schemas/argo-rollouts-v1.9.1/rollout-crd.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := json.Unmarshal(crdJSON, &crd); err != nil {
		t.Fatal(err)
	}
	var props apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, &props, nil); err != nil {
		t.Fatal(err)
	}
	structural, err := structuralschema.NewStructural(&props)
	if err != nil {
		t.Fatal(err)
	}
	validator := celvalidation.NewValidator(structural, true, celconfig.PerCallLimit)
	var newObj, oldObj map[string]interface{}
	_ = json.Unmarshal(newDoc, &newObj)
	_ = json.Unmarshal(oldDoc, &oldObj)
	errs, _ := validator.Validate(context.Background(), nil, structural, newObj, oldObj, celconfig.RuntimeCELCostBudget)
	return errs
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func kindOf(doc []byte) string {
	var meta struct{ Kind string }
	_ = json.Unmarshal(doc, &meta)
	return meta.Kind
}

func updateErrors(t *testing.T, oldDoc, newDoc []byte) field.ErrorList {
	if kindOf(oldDoc) == "Rollout" {
		return rolloutUpdate(t, newDoc, oldDoc)
	}
	oldObj, newObj := internal(t, oldDoc), internal(t, newDoc)
	allocated(oldObj)
	allocated(newObj)
	// The old object itself must pass: a refusal below is then the change's doing.
	if errs := update(t, internal(t, oldDoc), oldObj); len(errs) > 0 {
		allocatedCopy := internal(t, oldDoc)
		allocated(allocatedCopy)
		if errs := update(t, allocatedCopy, oldObj); len(errs) > 0 {
			t.Fatalf("unchanged object refused (fixture invalid): %v", errs)
		}
	}
	return update(t, newObj, oldObj)
}

func TestImmutableFieldsAsTheAPIServerValidatesThem(t *testing.T) {
	for _, verdict := range []string{"refused", "allowed"} {
		files, _ := filepath.Glob(filepath.Join(fixtures, "immutable", verdict, "*.yaml"))
		if len(files) < 5 {
			t.Fatalf("too few %s cases: %v", verdict, files)
		}
		for _, file := range files {
			t.Run(verdict+"/"+filepath.Base(file), func(t *testing.T) {
				docs := documents(t, file)
				if len(docs) != 2 {
					t.Fatalf("want two documents (old, new), got %d", len(docs))
				}
				errs := updateErrors(t, docs[0], docs[1])
				if verdict == "refused" && len(errs) == 0 {
					t.Fatalf("the API server's validation accepts this change")
				}
				if verdict == "allowed" && len(errs) > 0 {
					t.Fatalf("the API server's validation refuses this change: %v", errs)
				}
				t.Logf("%s: %v", verdict, errs)
			})
		}
	}
}

// policy is the part of a ValidatingAdmissionPolicy evaluated here.
type policy struct {
	Kind     string
	Metadata struct{ Name string }
	Spec     struct {
		MatchConstraints struct {
			ResourceRules []struct {
				APIGroups []string `json:"apiGroups"`
				Resources []string
			} `json:"resourceRules"`
		} `json:"matchConstraints"`
		Variables   []struct{ Name, Expression string }
		Validations []struct {
			Expression        string
			MessageExpression string `json:"messageExpression"`
		}
	}
}

// evaluate runs a policy on one object in the API server's CEL environment: "" when admitted, else the message.
func evaluate(t *testing.T, env *cel.Env, p policy, object map[string]interface{}) string {
	t.Helper()
	program := func(expression string) cel.Program {
		ast, issues := env.Compile(expression)
		if issues != nil && issues.Err() != nil {
			t.Fatalf("%s: %v", p.Metadata.Name, issues.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		return prg
	}
	variables := map[string]interface{}{}
	activation := map[string]interface{}{"object": object, "variables": variables}
	for _, v := range p.Spec.Variables {
		out, _, err := program(v.Expression).Eval(activation)
		if err != nil {
			t.Fatalf("%s: variable %s: %v", p.Metadata.Name, v.Name, err)
		}
		variables[v.Name] = out.Value()
	}
	for _, v := range p.Spec.Validations {
		out, _, err := program(v.Expression).Eval(activation)
		if err != nil {
			t.Fatalf("%s: %v", p.Metadata.Name, err)
		}
		if out.Value() == true {
			continue
		}
		msg, _, err := program(v.MessageExpression).Eval(activation)
		if err != nil {
			t.Fatalf("%s: messageExpression: %v", p.Metadata.Name, err)
		}
		return msg.Value().(string)
	}
	return ""
}

// matches reports whether a policy's resource rules select the object's kind.
func matches(p policy, object map[string]interface{}) bool {
	apiVersion, _ := object["apiVersion"].(string)
	group := ""
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	resource := strings.ToLower(object["kind"].(string)) + "s"
	for _, rule := range p.Spec.MatchConstraints.ResourceRules {
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				if g == group && r == resource {
					return true
				}
			}
		}
	}
	return false
}

func TestAdmissionPoliciesDenyWithValidatesMessages(t *testing.T) {
	envSet, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion(), true).Extend(environment.VersionedOptions{
		IntroducedVersion: environment.DefaultCompatibilityVersion(),
		EnvOptions: []cel.EnvOption{
			cel.Variable("object", cel.DynType),
			cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	env, err := envSet.Env(environment.StoredExpressions)
	if err != nil {
		t.Fatal(err)
	}
	var policies []policy
	files, _ := filepath.Glob(filepath.Join(root, "manifests/policies/*.yaml"))
	for _, file := range files {
		for _, doc := range documents(t, file) {
			var p policy
			if err := json.Unmarshal(doc, &p); err != nil {
				t.Fatal(err)
			}
			if p.Kind == "ValidatingAdmissionPolicy" {
				policies = append(policies, p)
			}
		}
	}
	if len(policies) != 3 {
		t.Fatalf("want 3 policies, got %d", len(policies))
	}
	for _, fixture := range []string{"denied", "admitted"} {
		for _, doc := range documents(t, filepath.Join(fixtures, "policies", fixture+".yaml")) {
			var object map[string]interface{}
			_ = json.Unmarshal(doc, &object)
			metadata := object["metadata"].(map[string]interface{})
			want := ""
			if annotations, ok := metadata["annotations"].(map[string]interface{}); ok {
				want, _ = annotations["rollouts-guardrails.test/expect"].(string)
			}
			var got []string
			for _, p := range policies {
				if matches(p, object) {
					if msg := evaluate(t, env, p, object); msg != "" {
						got = append(got, msg)
					}
				}
			}
			name := object["kind"].(string) + "/" + metadata["name"].(string)
			switch {
			case fixture == "denied" && (len(got) != 1 || got[0] != want):
				t.Errorf("%s: want denied with %q, got %q", name, want, got)
			case fixture == "admitted" && len(got) != 0:
				t.Errorf("%s: want admitted, got %q", name, got)
			}
		}
	}
}

func TestPinnedCRDsEqualTheHarnessModule(t *testing.T) {
	// The version the Go harness (tests/go/manifests) builds against, wherever its module cache is.
	list := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-rollouts")
	list.Dir = filepath.Join(root, "tests/go/manifests")
	list.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list in tests/go/manifests: %v", err)
	}
	module := strings.TrimSpace(string(out))
	for _, name := range []string{"rollout", "analysis-template", "cluster-analysis-template", "analysis-run", "experiment"} {
		pinned := mustRead(t, filepath.Join(root, "schemas/argo-rollouts-v1.9.1", name+"-crd.yaml"))
		upstream := mustRead(t, filepath.Join(module, "manifests/crds", name+"-crd.yaml"))
		if !bytes.Equal(pinned, upstream) {
			t.Errorf("schemas/argo-rollouts-v1.9.1/%s-crd.yaml differs from %s/manifests/crds: copy it again", name, module)
		}
	}
	if !strings.HasSuffix(module, "@v1.9.1") {
		t.Errorf("the harness uses %s, the pinned CRDs are v1.9.1: update schemas/ and src/validate/schema.rs", module)
	}
}

func bufioReader(data []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(data)) }
