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
//! - `Run` answers `Running` with `ResumeAt` (and no `FinishedAt`) while absence so far settles; argo's
//!   controller then calls `Resume` at `ResumeAt`, as for its own Job provider. `Resume` of a `Running`
//!   measurement measures again with the same AnalysisRun and metric on the measurement's own `StartedAt`
//!   ([`Provider::resume`]); a completed measurement (any other phase, or `FinishedAt` set) is returned as
//!   given.
//! - `Terminate` returns the measurement with its phase unchanged (as the sample plugins do) but stamps
//!   `FinishedAt` when it is unset, so a terminated measurement always carries a finish time. A `Running`
//!   (settling) measurement becomes `Failed` ("terminated … before the measurement was proven"): left Running
//!   with a `FinishedAt`, argo's controller would count it as in flight forever.
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
use crate::engine::settle;
use crate::engine::{AnalysisContext, Measurement, MetricSpec, OwnerReference, Phase};
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
        let measurement = match mapped {
            Ok((ctx, metric)) => {
                self.guarded(&metric, self.provider.run(&ctx, &metric))
                    .await
            }
            Err(reason) => {
                tracing::warn!(%reason, "Plugin.Run arguments cannot be mapped");
                Measurement::failed(format!("cannot read the Run arguments: {reason}"))
            }
        };
        measurement_value(&stamped(measurement, started))
    }

    /// Resume: a `Running` measurement is measured again on its own `StartedAt`; any other is returned as given.
    async fn resume(&self, argument: Value) -> Value {
        let running = args_struct(&argument, "TerminateAndResumeArgs").and_then(|args| {
            let Some(Value::Struct(given)) = args.field("Measurement") else {
                return Err("no Measurement".to_string());
            };
            let phase = given.field("Phase").and_then(Value::as_str).unwrap_or("");
            if phase != Phase::Running.as_str() || given.field("FinishedAt").is_some() {
                return Ok(None);
            }
            let started_at = match given.field("StartedAt") {
                Some(Value::Encoded { bytes, .. }) => gob::time::decode(bytes)
                    .map_err(|e| format!("the measurement's StartedAt: {e}"))?,
                // Argo always sets it; without it the wait starts now (never longer than one `settle`).
                _ => SystemTime::now(),
            };
            Ok(Some((
                analysis_context(args.field("AnalysisRun"))?,
                metric_spec(args.field("Metric"))?,
                started_at,
            )))
        });
        match running {
            Ok(None) => Self::given_measurement(&argument, false),
            Ok(Some((ctx, metric, started_at))) => {
                let measurement = self
                    .guarded(&metric, self.provider.resume(&ctx, &metric, started_at))
                    .await;
                measurement_value(&stamped(measurement, started_at))
            }
            Err(reason) => {
                tracing::warn!(%reason, "Plugin.Resume arguments cannot be mapped");
                let failed =
                    Measurement::failed(format!("cannot read the Resume arguments: {reason}"));
                measurement_value(&stamped(failed, SystemTime::now()))
            }
        }
    }

    /// Runs a provider call, turning a panic into a `Failed` measurement.
    async fn guarded(
        &self,
        metric: &MetricSpec,
        call: impl std::future::Future<Output = Measurement>,
    ) -> Measurement {
        match AssertUnwindSafe(call).catch_unwind().await {
            Ok(measurement) => measurement,
            Err(_) => {
                tracing::error!(metric = %metric.name, "the provider panicked");
                Measurement::failed("internal error: the measurement panicked")
            }
        }
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
                    let settling = measurement.field("Phase").and_then(Value::as_str)
                        == Some(Phase::Running.as_str());
                    if settling {
                        // Terminated while settling: Failed (see `settle::terminated_message`).
                        let message = measurement
                            .field("Message")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string();
                        measurement.fields.retain(|(n, _)| {
                            !matches!(n.as_str(), "Phase" | "Message" | "ResumeAt")
                        });
                        measurement
                            .fields
                            .push(("Phase".into(), Value::String(Phase::Failed.as_str().into())));
                        measurement.fields.push((
                            "Message".into(),
                            Value::String(settle::terminated_message(&message)),
                        ));
                    }
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
                "Resume" => (MEASUREMENT_TYPE.clone(), self.resume(argument).await),
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
    let proven_metrics = run
        .field("Status")
        .map(|status| slice_field(status, "MetricResults"))
        .unwrap_or_default()
        .iter()
        .filter(|result| {
            result
                .field("Successful")
                .and_then(Value::as_i64)
                .is_some_and(|n| n > 0)
        })
        .map(|result| string_field(result, "Name"))
        .collect();
    Ok(AnalysisContext {
        proven_metrics,
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

/// Fills in `StartedAt` and, unless the measurement is still `Running`, `FinishedAt`.
fn stamped(mut measurement: Measurement, started: SystemTime) -> Measurement {
    measurement.started_at.get_or_insert(started);
    if measurement.phase != Phase::Running {
        measurement.finished_at.get_or_insert_with(SystemTime::now);
    }
    measurement
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
mod tests;
