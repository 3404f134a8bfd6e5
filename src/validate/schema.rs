//! argo-rollouts objects (Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun, Experiment) against
//! the `openAPIV3Schema` of argo-rollouts' own CRDs, pinned in `schemas/argo-rollouts-v1.9.1/` (copied verbatim
//! from `github.com/argoproj/argo-rollouts@v1.9.1/manifests/crds/`; `tests/go/validate` keeps them equal).
//!
//! A CRD's structural schema is not a JSON Schema document; [`to_json_schema`] converts it node by node, the
//! way the API server's structural-schema validation and pruning treat an object:
//! - an object node with `properties` (or with none and no `additionalProperties`) gets
//!   `additionalProperties: false`: the API server prunes unknown fields silently, which here is a problem
//!   (`…templates[0].clusterScoped: unknown field; did you mean clusterScope?`);
//! - `x-kubernetes-preserve-unknown-fields: true` keeps unknown fields (no `additionalProperties: false`);
//! - `x-kubernetes-int-or-string: true` becomes `type: [integer, string]` (its `anyOf` is dropped);
//! - `nullable: true` adds `null` to `type`; other nulls are dropped from the object first, as pruning does;
//! - `format` (`int32`, `int64`, `date-time`), `x-kubernetes-list-type`/`-map-keys`/`-map-type` and
//!   `x-kubernetes-validations` (CEL, one rule in the Rollout CRD) are not checked;
//! - the root `metadata` is the API server's ObjectMeta, left to it.
//!
//! The validator is the `jsonschema` crate (draft 2020-12): maintained, fast, and its errors carry the
//! instance path and the schema path, from which the nearest valid field name is found.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::Validator;
use serde_json::{json, Map, Value};

use super::{nearest, Check, Document, Problem};
use crate::manifest::{containers, field_path};

/// The argo-rollouts version whose CRDs are pinned.
pub const ARGO_ROLLOUTS_VERSION: &str = "v1.9.1";

/// The pinned CRDs, by kind.
pub const CRDS: [(&str, &str); 5] = [
    (
        "Rollout",
        include_str!("../../schemas/argo-rollouts-v1.9.1/rollout-crd.yaml"),
    ),
    (
        "AnalysisTemplate",
        include_str!("../../schemas/argo-rollouts-v1.9.1/analysis-template-crd.yaml"),
    ),
    (
        "ClusterAnalysisTemplate",
        include_str!("../../schemas/argo-rollouts-v1.9.1/cluster-analysis-template-crd.yaml"),
    ),
    (
        "AnalysisRun",
        include_str!("../../schemas/argo-rollouts-v1.9.1/analysis-run-crd.yaml"),
    ),
    (
        "Experiment",
        include_str!("../../schemas/argo-rollouts-v1.9.1/experiment-crd.yaml"),
    ),
];

/// A compiled schema and the converted JSON Schema it came from (looked up for field-name suggestions).
struct Compiled {
    version: String,
    schema: Value,
    validator: Validator,
}

fn compiled() -> &'static BTreeMap<&'static str, Result<Compiled, String>> {
    static SCHEMAS: OnceLock<BTreeMap<&'static str, Result<Compiled, String>>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        CRDS.iter()
            .map(|(kind, text)| (*kind, compile(text)))
            .collect()
    })
}

fn compile(crd: &str) -> Result<Compiled, String> {
    let crd: Value =
        serde_norway::from_str(crd).map_err(|e| format!("pinned CRD is not YAML: {e}"))?;
    let version = crd
        .pointer("/spec/versions/0")
        .ok_or("pinned CRD has no version")?;
    let name = version
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let structural = version
        .pointer("/schema/openAPIV3Schema")
        .ok_or("pinned CRD has no openAPIV3Schema")?;
    let mut schema = to_json_schema(structural);
    // The root metadata is ObjectMeta, validated by the API server itself.
    if let Some(metadata) = schema.pointer_mut("/properties/metadata") {
        *metadata = json!({"type": "object"});
    }
    let validator = jsonschema::draft202012::new(&schema)
        .map_err(|e| format!("pinned CRD schema does not compile: {e}"))?;
    Ok(Compiled {
        version: name,
        schema,
        validator,
    })
}

/// A structural schema node as JSON Schema (see the module documentation for each rule).
pub fn to_json_schema(node: &Value) -> Value {
    let Some(node) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();
    let preserve = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let nullable = node.get("nullable") == Some(&Value::Bool(true));
    for (key, value) in node {
        match key.as_str() {
            "properties" => {
                let properties: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), to_json_schema(v)))
                    .collect();
                out.insert(key.clone(), Value::Object(properties));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(key.clone(), to_json_schema(value));
            }
            "anyOf" | "allOf" | "oneOf" if !int_or_string => {
                let list = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(to_json_schema)
                    .collect();
                out.insert(key.clone(), Value::Array(list));
            }
            "type" | "required" | "enum" | "pattern" | "minimum" | "maximum"
            | "exclusiveMinimum" | "exclusiveMaximum" | "minLength" | "maxLength" | "minItems"
            | "maxItems" | "minProperties" | "maxProperties" | "multipleOf" | "uniqueItems" => {
                out.insert(key.clone(), value.clone());
            }
            // description, default, format, nullable, x-kubernetes-*: annotations or handled above.
            _ => {}
        }
    }
    if int_or_string {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if nullable {
        if let Some(Value::String(t)) = out.get("type").cloned() {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    let is_object = out.get("type") == Some(&json!("object")) || out.contains_key("properties");
    if is_object && !preserve && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// Removes object fields whose value is null, recursively, as pruning does for non-nullable fields.
fn drop_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), drop_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(drop_nulls).collect()),
        other => other.clone(),
    }
}

/// Checks one document when it is an argo-rollouts object.
pub fn check(document: &Document, problems: &mut Vec<Problem>) {
    let Some(object) = &document.object else {
        return;
    };
    if object.group != "argoproj.io" {
        return;
    }
    let Some(entry) = compiled().get(object.kind.as_str()) else {
        return;
    };
    let compiled = match entry {
        Ok(compiled) => compiled,
        Err(reason) => {
            problems.push(Problem::at(Check::Schema, document, "", reason.clone()));
            return;
        }
    };
    let api_version = document
        .value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let want = format!("argoproj.io/{}", compiled.version);
    if api_version != want {
        problems.push(Problem::at(
            Check::Schema,
            document,
            "apiVersion",
            format!(
                "argo-rollouts {ARGO_ROLLOUTS_VERSION} serves {} only as {want}",
                object.kind
            ),
        ));
        return;
    }
    let instance = drop_nulls(&document.value);
    let mut found: Vec<Problem> = Vec::new();
    for error in compiled.validator.iter_errors(&instance) {
        found.extend(problems_of(&error, compiled, &instance, document));
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup();
    problems.extend(found);
    if object.kind == "Rollout" {
        require_images(document, problems);
    }
}

/// One schema violation as the problems a user reads: field paths, not JSON pointers, and the nearest valid
/// field or value where there is one.
fn problems_of(
    error: &jsonschema::ValidationError<'_>,
    compiled: &Compiled,
    instance: &Value,
    document: &Document,
) -> Vec<Problem> {
    let path = field_path(instance, error.instance_path().as_str());
    let join = |child: &str| {
        if path.is_empty() {
            child.to_string()
        } else {
            format!("{path}.{child}")
        }
    };
    let at = |path: String, message: String| Problem::at(Check::Schema, document, path, message);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = known_fields(compiled, error.schema_path().as_str());
            unexpected
                .iter()
                .map(|field| {
                    let suggestion =
                        nearest(field, known.iter().map(String::as_str)).map(str::to_string);
                    let message = match &suggestion {
                        Some(s) => format!("unknown field; did you mean {s}?"),
                        None if known.is_empty() => {
                            "unknown field (this object takes no fields)".to_string()
                        }
                        None => "unknown field".to_string(),
                    };
                    Problem {
                        suggestion,
                        ..at(join(field), message)
                    }
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let field = property
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| property.to_string());
            vec![at(join(&field), "required field missing".to_string())]
        }
        ValidationErrorKind::Type { kind } => {
            let got = json_type(error.instance().as_ref());
            vec![at(
                path,
                format!("wrong type: want {}, got {got}", type_names(kind)),
            )]
        }
        ValidationErrorKind::Enum { options } => {
            let suggestion = error
                .instance()
                .as_str()
                .and_then(|value| {
                    let allowed = options.as_array().into_iter().flatten();
                    nearest(value, allowed.filter_map(Value::as_str))
                })
                .map(str::to_string);
            let message = match &suggestion {
                Some(s) => format!("must be one of {options}; did you mean {s}?"),
                None => format!("must be one of {options}"),
            };
            vec![Problem {
                suggestion,
                ..at(path, message)
            }]
        }
        _ => vec![at(path, error.to_string())],
    }
}

/// The fields the schema object that refused an additional property declares (its `properties`).
fn known_fields(compiled: &Compiled, schema_path: &str) -> Vec<String> {
    let parent = schema_path
        .strip_suffix("/additionalProperties")
        .unwrap_or(schema_path);
    compiled
        .schema
        .pointer(parent)
        .and_then(|node| node.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(set) => {
            let names: Vec<String> = set.iter().map(|t| t.to_string()).collect();
            names.join(" or ")
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A container without image: the CRD schema allows it, argo-rollouts' `ValidateRollout` (through Kubernetes'
/// pod-template validation) refuses it. Typically a kustomize strategic-merge patch of a Rollout's container
/// list, which replaces the list instead of merging by name (kustomize has no schema for the CRD).
fn require_images(document: &Document, problems: &mut Vec<Problem>) {
    let Some(spec) = document.value.pointer("/spec/template/spec") else {
        return;
    };
    for (list, index, container) in containers(spec, &["initContainers", "containers"]) {
        if container
            .get("image")
            .and_then(Value::as_str)
            .is_none_or(|i| i.trim().is_empty())
        {
            problems.push(Problem::at(
                Check::Schema,
                document,
                format!("spec.template.spec.{list}[{index}].image"),
                "required value: argo-rollouts refuses a container without image (did a kustomize patch replace the container list?)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{documents, ObjectRef};

    fn problems(text: &str) -> Vec<String> {
        let (values, _) = documents(text);
        let mut out = Vec::new();
        for value in values {
            let document = Document {
                file: "r.yaml".into(),
                object: ObjectRef::of(&value),
                value,
            };
            check(&document, &mut out);
        }
        out.iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn every_pinned_crd_compiles() {
        for (kind, _) in CRDS {
            let compiled = compiled()[kind].as_ref().expect(kind);
            assert_eq!(compiled.version, "v1alpha1");
        }
    }

    #[test]
    fn the_conversion_follows_structural_pruning() {
        let node = json!({"type": "object", "properties": {
            "a": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true},
            "b": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "c": {"type": "string", "nullable": true, "format": "date-time"},
            "d": {"type": "object", "additionalProperties": {"type": "string"}}}});
        assert_eq!(
            to_json_schema(&node),
            json!({"type": "object", "additionalProperties": false, "properties": {
                "a": {"type": ["integer", "string"]},
                "b": {"type": "object"},
                "c": {"type": ["string", "null"]},
                "d": {"type": "object", "additionalProperties": {"type": "string"}}}})
        );
    }

    const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1", resources: {limits: {cpu: 1, memory: 1Gi}}}]
  strategy:
    canary:
      maxSurge: "25%"
      steps:
        - setWeight: 20
        - analysis:
            templates:
              - templateName: rollouts-guardrails
                clusterScope: true
"#;

    #[test]
    fn a_valid_rollout_has_no_problem() {
        assert_eq!(problems(ROLLOUT), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_wrong_types_and_missing_fields_are_problems() {
        assert_eq!(
            problems(&ROLLOUT.replace("clusterScope:", "clusterScoped:")),
            ["spec.strategy.canary.steps[1].analysis.templates[0].clusterScoped: unknown field; did you mean clusterScope?"]
        );
        assert_eq!(
            problems(&ROLLOUT.replace("replicas: 2", "replicas: two")),
            ["spec.replicas: wrong type: want integer, got string"]
        );
        assert_eq!(
            problems(&ROLLOUT.replace("[{name: web, image", "[{image")),
            ["spec.template.spec.containers[0].name: required field missing"]
        );
        assert_eq!(
            problems(&ROLLOUT.replace(
                "apiVersion: argoproj.io/v1alpha1",
                "apiVersion: argoproj.io/v1"
            )),
            ["apiVersion: argo-rollouts v1.9.1 serves Rollout only as argoproj.io/v1alpha1"]
        );
    }
}
