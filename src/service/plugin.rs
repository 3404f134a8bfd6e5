//! The net/rpc `Plugin` service of an Argo Rollouts metric provider.
//!
//! Spec: `docs/wire/go-plugin-netrpc.md` and `docs/wire/gob.md` (argo-rollouts
//! `metricproviders/plugin/rpc/rpc.go`). Each argument arrives as a gob interface value (`RunArgs`,
//! `TerminateAndResumeArgs`, `GarbageCollectArgs`, `GetMetadataArgs`, or nil); replies are `Measurement`,
//! `RpcError`, `string` or `map[string]string`, matched by field name on the Go side.
//!
//! Semantics, following argo's own plugins (argoproj-labs sample plugins and argo-rollouts' test plugin):
//! - `Run` asks the [`Provider`]; arguments we cannot map (no AnalysisRun, wrong shape) and a panicking
//!   provider become a `Failed` measurement with the reason, never a net/rpc error (which Argo would turn into
//!   phase `Error`). Missing `StartedAt`/`FinishedAt` are filled in.
//! - `Resume` returns the measurement it is given (we never return `Running`, so there is nothing to resume).
//! - `Terminate` returns the measurement with its phase unchanged (as the sample plugins do) but stamps
//!   `FinishedAt` when it is unset, so a terminated measurement always carries a finish time.
//! - `GarbageCollect` and `InitPlugin` succeed with an empty `RpcError` (nothing is stored).
//! - `Type` returns `"RPCPlugin"`: argo's `metricproviders/plugin.ProviderType`, which every sample plugin
//!   returns; the controller uses it as the provider type label, not as the plugin name.
//! - `GetMetadata` returns [`Provider::metadata`] (an empty map when the metric cannot be mapped).
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::codec::gob::{self, Struct, StructType, Type, Value};
use crate::engine::context::PLUGIN_NAME;
use crate::engine::{AnalysisContext, Measurement, MetricSpec, OwnerReference};
use crate::transport::netrpc::{Reply, Service};

use super::Provider;

/// What `Plugin.Type` answers (argo-rollouts `metricproviders/plugin.ProviderType`).
pub const PROVIDER_TYPE: &str = "RPCPlugin";

static TIME_TYPE: LazyLock<Type> = LazyLock::new(|| Type::GobEncoder("Time".into()));

static MEASUREMENT_TYPE: LazyLock<Type> = LazyLock::new(|| {
    Type::Struct(Arc::new(StructType {
        name: "Measurement".into(),
        fields: vec![
            ("Phase".into(), Type::String),
            ("Message".into(), Type::String),
            ("StartedAt".into(), TIME_TYPE.clone()),
            ("FinishedAt".into(), TIME_TYPE.clone()),
            ("Value".into(), Type::String),
            (
                "Metadata".into(),
                Type::Map(Box::new(Type::String), Box::new(Type::String)),
            ),
            ("ResumeAt".into(), TIME_TYPE.clone()),
        ],
    }))
});

static RPC_ERROR_TYPE: LazyLock<Type> = LazyLock::new(|| {
    Type::Struct(Arc::new(StructType {
        name: "RpcError".into(),
        fields: vec![("ErrorString".into(), Type::String)],
    }))
});

/// The `Plugin` service over a [`Provider`].
pub struct PluginService {
    provider: Arc<dyn Provider>,
}

impl PluginService {
    pub fn new(provider: Arc<dyn Provider>) -> Self {
        PluginService { provider }
    }

    async fn run(&self, argument: Value) -> Value {
        let started = SystemTime::now();
        let mapped = args_struct(&argument, "RunArgs").and_then(|args| {
            Ok((
                analysis_context(args.field("AnalysisRun"))?,
                metric_spec(args.field("Metric"))?,
            ))
        });
        let mut measurement = match mapped {
            Ok((ctx, metric)) => {
                let run = AssertUnwindSafe(self.provider.run(&ctx, &metric)).catch_unwind();
                match run.await {
                    Ok(measurement) => measurement,
                    Err(_) => {
                        tracing::error!(metric = %metric.name, "the provider panicked");
                        Measurement::failed("internal error: the measurement panicked")
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(%reason, "Plugin.Run arguments cannot be mapped");
                Measurement::failed(format!("cannot read the Run arguments: {reason}"))
            }
        };
        measurement.started_at.get_or_insert(started);
        measurement.finished_at.get_or_insert_with(SystemTime::now);
        measurement_value(&measurement)
    }

    /// Resume and Terminate: the measurement they are given, re-encoded field by field.
    fn given_measurement(argument: &Value, finish: bool) -> Value {
        let given = args_struct(argument, "TerminateAndResumeArgs").and_then(|args| {
            match args.field("Measurement") {
                Some(Value::Struct(s)) => Ok(s.clone()),
                _ => Err("no Measurement".to_string()),
            }
        });
        match given {
            Ok(mut measurement) => {
                if finish && !measurement.fields.iter().any(|(n, _)| n == "FinishedAt") {
                    measurement
                        .fields
                        .push(("FinishedAt".into(), time_value(SystemTime::now())));
                }
                Value::Struct(measurement)
            }
            Err(reason) => {
                let mut m =
                    Measurement::failed(format!("cannot read the measurement arguments: {reason}"));
                let now = SystemTime::now();
                m.started_at = Some(now);
                m.finished_at = Some(now);
                measurement_value(&m)
            }
        }
    }

    fn metadata(&self, argument: &Value) -> Value {
        let metadata = args_struct(argument, "GetMetadataArgs")
            .and_then(|args| metric_spec(args.field("Metric")))
            .map(|metric| self.provider.metadata(&metric))
            .unwrap_or_default();
        string_map(&metadata)
    }
}

impl Service for PluginService {
    fn name(&self) -> &'static str {
        "Plugin"
    }

    fn has_method(&self, method: &str) -> bool {
        matches!(
            method,
            "InitPlugin"
                | "Run"
                | "Resume"
                | "Terminate"
                | "GarbageCollect"
                | "Type"
                | "GetMetadata"
        )
    }

    fn call(self: Arc<Self>, method: String, argument: Value) -> BoxFuture<'static, Reply> {
        async move {
            Ok(match method.as_str() {
                "Run" => (MEASUREMENT_TYPE.clone(), self.run(argument).await),
                "Resume" => (
                    MEASUREMENT_TYPE.clone(),
                    Self::given_measurement(&argument, false),
                ),
                "Terminate" => (
                    MEASUREMENT_TYPE.clone(),
                    Self::given_measurement(&argument, true),
                ),
                "GetMetadata" => (
                    Type::Map(Box::new(Type::String), Box::new(Type::String)),
                    self.metadata(&argument),
                ),
                "Type" => (Type::String, Value::String(PROVIDER_TYPE.into())),
                // InitPlugin, GarbageCollect: nothing to set up or collect.
                _ => (RPC_ERROR_TYPE.clone(), empty_rpc_error()),
            })
        }
        .boxed()
    }
}

fn empty_rpc_error() -> Value {
    Value::Struct(Struct {
        type_name: "RpcError".into(),
        fields: Vec::new(),
    })
}

/// The struct inside the interface argument, checking its registered name.
fn args_struct<'v>(argument: &'v Value, expected: &str) -> Result<&'v Value, String> {
    match argument {
        Value::Interface(Some(interface)) if interface.name == expected => match &interface.value {
            value @ Value::Struct(_) => Ok(value),
            _ => Err(format!("{expected} is not a struct")),
        },
        Value::Interface(Some(interface)) => {
            Err(format!("expected {expected}, got {:?}", interface.name))
        }
        Value::Interface(None) => Err(format!("expected {expected}, got nil")),
        _ => Err(format!("expected an interface holding {expected}")),
    }
}

fn string_field(value: &Value, name: &str) -> String {
    value
        .field(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn string_map_field(value: &Value, name: &str) -> BTreeMap<String, String> {
    match value.field(name) {
        Some(Value::Map(entries)) => entries
            .iter()
            .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn slice_field<'v>(value: &'v Value, name: &str) -> &'v [Value] {
    match value.field(name) {
        Some(Value::Slice(items)) | Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// `RunArgs.AnalysisRun` → [`AnalysisContext`].
fn analysis_context(run: Option<&Value>) -> Result<AnalysisContext, String> {
    let Some(run @ Value::Struct(_)) = run else {
        return Err("no AnalysisRun".into());
    };
    let Some(meta @ Value::Struct(_)) = run.field("ObjectMeta") else {
        return Err("the AnalysisRun has no ObjectMeta".into());
    };
    let owner_references = slice_field(meta, "OwnerReferences")
        .iter()
        .map(|owner| OwnerReference {
            api_version: string_field(owner, "APIVersion"),
            kind: string_field(owner, "Kind"),
            name: string_field(owner, "Name"),
            uid: string_field(owner, "UID"),
            controller: owner
                .field("Controller")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
        .collect();
    // Literal args only: a `valueFrom` arg has no Value (the controller resolves those into the metric).
    let args = run
        .field("Spec")
        .map(|spec| slice_field(spec, "Args"))
        .unwrap_or_default()
        .iter()
        .filter_map(|arg| {
            let value = arg.field("Value")?.as_str()?;
            Some((string_field(arg, "Name"), value.to_string()))
        })
        .collect();
    Ok(AnalysisContext {
        namespace: string_field(meta, "Namespace"),
        name: string_field(meta, "Name"),
        uid: string_field(meta, "UID"),
        labels: string_map_field(meta, "Labels"),
        owner_references,
        args,
    })
}

/// `v1alpha1.Metric` → [`MetricSpec`].
fn metric_spec(metric: Option<&Value>) -> Result<MetricSpec, String> {
    let Some(metric @ Value::Struct(_)) = metric else {
        return Err("no Metric".into());
    };
    let plugin_config = match metric.field("Provider").and_then(|p| p.field("Plugin")) {
        Some(Value::Map(entries)) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(PLUGIN_NAME))
            .and_then(|(_, v)| v.as_bytes())
            .map(<[u8]>::to_vec),
        _ => None,
    };
    Ok(MetricSpec {
        name: string_field(metric, "Name"),
        plugin_config,
        success_condition: string_field(metric, "SuccessCondition"),
        failure_condition: string_field(metric, "FailureCondition"),
    })
}

fn time_value(t: SystemTime) -> Value {
    Value::Encoded {
        type_name: "Time".into(),
        bytes: gob::time::encode(t),
    }
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Map(
        map.iter()
            .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone())))
            .collect(),
    )
}

/// [`Measurement`] → `v1alpha1.Measurement`.
fn measurement_value(m: &Measurement) -> Value {
    let mut fields = vec![
        ("Phase".to_string(), Value::String(m.phase.as_str().into())),
        ("Message".to_string(), Value::String(m.message.clone())),
        ("Value".to_string(), Value::String(m.value.clone())),
    ];
    for (name, time) in [
        ("StartedAt", m.started_at),
        ("FinishedAt", m.finished_at),
        ("ResumeAt", m.resume_at),
    ] {
        if let Some(time) = time {
            fields.push((name.to_string(), time_value(time)));
        }
    }
    if !m.metadata.is_empty() {
        fields.push(("Metadata".to_string(), string_map(&m.metadata)));
    }
    Value::Struct(Struct {
        type_name: "Measurement".into(),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::gob::Interface;

    fn st(name: &str, fields: Vec<(&str, Value)>) -> Value {
        Value::Struct(Struct {
            type_name: name.into(),
            fields: fields
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        })
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn run_args() -> Value {
        let run = st(
            "AnalysisRun",
            vec![
                (
                    "ObjectMeta",
                    st(
                        "ObjectMeta",
                        vec![
                            ("Name", s("run-1")),
                            ("Namespace", s("shop")),
                            ("UID", s("u-1")),
                            ("Labels", Value::Map(vec![(s("app"), s("cart"))])),
                            (
                                "OwnerReferences",
                                Value::Slice(vec![st(
                                    "OwnerReference",
                                    vec![
                                        ("Kind", s("Rollout")),
                                        ("Name", s("cart")),
                                        ("Controller", Value::Bool(true)),
                                    ],
                                )]),
                            ),
                        ],
                    ),
                ),
                (
                    "Spec",
                    st(
                        "AnalysisRunSpec",
                        vec![(
                            "Args",
                            Value::Slice(vec![
                                st("Argument", vec![("Name", s("svc")), ("Value", s("cart"))]),
                                st("Argument", vec![("Name", s("from-secret"))]),
                            ]),
                        )],
                    ),
                ),
            ],
        );
        let metric = st(
            "Metric",
            vec![
                ("Name", s("guard")),
                ("SuccessCondition", s("result == true")),
                (
                    "Provider",
                    st(
                        "MetricProvider",
                        vec![(
                            "Plugin",
                            Value::Map(vec![(
                                s(PLUGIN_NAME),
                                Value::Bytes(br#"{"guardrail":"restarts"}"#.to_vec()),
                            )]),
                        )],
                    ),
                ),
            ],
        );
        Value::Interface(Some(Box::new(Interface {
            name: "RunArgs".into(),
            value: st("RunArgs", vec![("AnalysisRun", run), ("Metric", metric)]),
        })))
    }

    #[test]
    fn run_args_map_to_the_engine_context() {
        let args = run_args();
        let inner = args_struct(&args, "RunArgs").expect("RunArgs");
        let ctx = analysis_context(inner.field("AnalysisRun")).expect("context");
        assert_eq!(
            (ctx.namespace.as_str(), ctx.name.as_str(), ctx.uid.as_str()),
            ("shop", "run-1", "u-1")
        );
        assert_eq!(ctx.labels.get("app").map(String::as_str), Some("cart"));
        assert_eq!(ctx.owner_references[0].kind, "Rollout");
        assert!(ctx.owner_references[0].controller);
        assert_eq!(ctx.args.len(), 1, "valueFrom args are not literal");
        assert_eq!(ctx.args.get("svc").map(String::as_str), Some("cart"));
        let metric = metric_spec(inner.field("Metric")).expect("metric");
        assert_eq!(metric.name, "guard");
        assert_eq!(metric.success_condition, "result == true");
        assert_eq!(
            metric.plugin_config.as_deref(),
            Some(&br#"{"guardrail":"restarts"}"#[..])
        );
    }

    #[test]
    fn run_args_without_an_analysis_run_are_refused_with_a_reason() {
        let args = Value::Interface(Some(Box::new(Interface {
            name: "RunArgs".into(),
            value: st("RunArgs", vec![]),
        })));
        let inner = args_struct(&args, "RunArgs").expect("RunArgs");
        assert_eq!(
            analysis_context(inner.field("AnalysisRun")),
            Err("no AnalysisRun".to_string())
        );
        assert!(args_struct(&Value::Interface(None), "RunArgs").is_err());
    }

    #[test]
    fn terminate_stamps_finished_at_and_keeps_the_phase() {
        let measurement = st("Measurement", vec![("Phase", s("Running"))]);
        let args = Value::Interface(Some(Box::new(Interface {
            name: "TerminateAndResumeArgs".into(),
            value: st("TerminateAndResumeArgs", vec![("Measurement", measurement)]),
        })));
        let terminated = PluginService::given_measurement(&args, true);
        assert_eq!(terminated.field("Phase"), Some(&s("Running")));
        assert!(matches!(
            terminated.field("FinishedAt"),
            Some(Value::Encoded { .. })
        ));
        let resumed = PluginService::given_measurement(&args, false);
        assert_eq!(resumed.field("FinishedAt"), None);
    }

    /// Records what it was asked and answers Successful; panics for the metric named "boom".
    struct FakeProvider {
        seen: std::sync::Mutex<Vec<(AnalysisContext, MetricSpec)>>,
    }

    impl Provider for FakeProvider {
        fn run<'a>(
            &'a self,
            ctx: &'a AnalysisContext,
            metric: &'a MetricSpec,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Measurement> + Send + 'a>> {
            Box::pin(async move {
                assert_ne!(metric.name, "boom", "fake provider panics on request");
                self.seen
                    .lock()
                    .expect("lock")
                    .push((ctx.clone(), metric.clone()));
                Measurement {
                    value: "0".into(),
                    ..Measurement::failed(String::new())
                }
            })
        }

        fn metadata(&self, metric: &MetricSpec) -> BTreeMap<String, String> {
            BTreeMap::from([("metric".to_string(), metric.name.clone())])
        }
    }

    #[tokio::test]
    async fn run_calls_the_provider_and_stamps_times() {
        let provider = Arc::new(FakeProvider {
            seen: Default::default(),
        });
        let service = Arc::new(PluginService::new(provider.clone()));
        let (ty, value) = service
            .clone()
            .call("Run".into(), run_args())
            .await
            .expect("reply");
        assert_eq!(ty, *MEASUREMENT_TYPE);
        assert_eq!(value.field("Value"), Some(&s("0")));
        assert!(matches!(
            value.field("StartedAt"),
            Some(Value::Encoded { .. })
        ));
        assert!(matches!(
            value.field("FinishedAt"),
            Some(Value::Encoded { .. })
        ));
        let (ctx, metric) = provider.seen.lock().expect("lock")[0].clone();
        assert_eq!(ctx.namespace, "shop");
        assert_eq!(metric.name, "guard");
        let (_, metadata) = service
            .call(
                "GetMetadata".into(),
                Value::Interface(Some(Box::new(Interface {
                    name: "GetMetadataArgs".into(),
                    value: st(
                        "GetMetadataArgs",
                        vec![("Metric", st("Metric", vec![("Name", s("guard"))]))],
                    ),
                }))),
            )
            .await
            .expect("reply");
        assert_eq!(metadata, Value::Map(vec![(s("metric"), s("guard"))]));
    }

    #[tokio::test]
    async fn a_panicking_provider_becomes_a_failed_measurement() {
        let service = Arc::new(PluginService::new(Arc::new(FakeProvider {
            seen: Default::default(),
        })));
        let mut args = run_args();
        if let Value::Interface(Some(i)) = &mut args {
            if let Value::Struct(run_args) = &mut i.value {
                run_args.fields[1].1 = st("Metric", vec![("Name", s("boom"))]);
            }
        }
        let (_, value) = service.call("Run".into(), args).await.expect("reply");
        assert_eq!(value.field("Phase"), Some(&s("Failed")));
        assert!(value
            .field("Message")
            .and_then(Value::as_str)
            .is_some_and(|m| m.contains("panicked")));
    }
}
