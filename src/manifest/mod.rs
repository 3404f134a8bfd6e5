//! Kubernetes manifests as this project reads them: bounded multi-document YAML into JSON values, the identity
//! of an object, and Argo's (Cluster)AnalysisTemplates with their `{{args.NAME}}` substitution — one reader for
//! `check --template` and `validate`, so the two cannot disagree about what a template says.
pub mod template;

use std::fmt;
use std::path::Path;

use serde_json::Value;

/// The largest manifest file read (manifests are KiBs; this bounds a wrong path such as a disk image).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Documents per file (a manifest file holds a handful; this bounds a huge generated stream).
pub const MAX_DOCUMENTS: usize = 10_000;

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("cannot read: larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("not valid YAML: {0}")]
    Yaml(String),
    #[error("more than {MAX_DOCUMENTS} YAML documents")]
    TooManyDocuments,
}

/// Reads a file of at most [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<String, ReadError> {
    let size = std::fs::metadata(path)
        .map_err(|e| ReadError::Io(e.to_string()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    std::fs::read_to_string(path).map_err(|e| ReadError::Io(e.to_string()))
}

/// The documents of a YAML stream, empty ones (comments only) skipped. On a syntax error the documents before it
/// are returned with the error: the stream cannot be resynchronised after one.
pub fn documents(text: &str) -> (Vec<Value>, Option<ReadError>) {
    let mut out = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        if index >= MAX_DOCUMENTS {
            return (out, Some(ReadError::TooManyDocuments));
        }
        match <Value as serde::Deserialize>::deserialize(document) {
            Ok(Value::Null) => {}
            Ok(value) => out.push(value),
            Err(e) => return (out, Some(ReadError::Yaml(e.to_string()))),
        }
    }
    (out, None)
}

/// Which object a document is: `Kind/namespace/name`, or `Kind/name` without a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// The API group (`apps`, `argoproj.io`; empty for the core group): a Rollout and a Deployment of the same
    /// name are different objects.
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// The identity of a document; `None` when it has no `kind` (a kustomize patch, a values file).
    pub fn of(document: &Value) -> Option<ObjectRef> {
        let kind = document.get("kind")?.as_str()?.to_string();
        let text = |pointer: &str| {
            document
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let api_version = text("/apiVersion");
        let group = match api_version.split_once('/') {
            Some((group, _)) => group.to_string(),
            None => String::new(),
        };
        Some(ObjectRef {
            group,
            kind,
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
        })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.name.is_empty() {
            "(unnamed)"
        } else {
            &self.name
        };
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, name)
        }
    }
}

/// Every container of a pod spec in the given lists (`containers`, `initContainers`, ...), with its list and
/// index: `(list, index, container)`.
pub fn containers<'a>(
    spec: &'a Value,
    lists: &'a [&'a str],
) -> impl Iterator<Item = (&'a str, usize, &'a Value)> + 'a {
    lists.iter().flat_map(move |list| {
        spec.get(*list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(move |(index, container)| (*list, index, container))
    })
}

/// A field path as Kubernetes prints it (`spec.steps[1].analysis`) from a JSON pointer into `document`: a
/// segment is an index (`[1]`) exactly when the value it indexes is an array.
pub fn field_path(document: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut current = Some(document);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match current {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{segment}]"));
                current = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&segment);
                current = other.and_then(|v| v.get(&segment));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_paths_index_arrays_only() {
        let doc = json!({"spec": {"steps": [{}, {"analysis": {"1": true}}]}});
        assert_eq!(
            field_path(&doc, "/spec/steps/1/analysis/1"),
            "spec.steps[1].analysis.1"
        );
        assert_eq!(field_path(&doc, ""), "");
    }

    #[test]
    fn objects_are_named_by_group_kind_namespace_and_name() {
        let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
        let object = ObjectRef::of(&doc).unwrap();
        assert_eq!(object.group, "apps");
        assert_eq!(object.to_string(), "Deployment/shop/web");
        assert_eq!(ObjectRef::of(&json!({"spec": {}})), None);
    }

    #[test]
    fn documents_skip_empty_ones_and_stop_at_a_syntax_error() {
        let (docs, error) = documents("a: 1\n---\n# nothing\n---\nb: 2\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(error, None);
        let (docs, error) = documents("a: 1\n---\nb: [\n");
        assert_eq!(docs.len(), 1);
        assert!(matches!(error, Some(ReadError::Yaml(_))));
    }
}
