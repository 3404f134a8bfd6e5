//! Unit tests of `plugin`.
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
    let terminate = |phase: &str| {
        let measurement = st(
            "Measurement",
            vec![("Phase", s(phase)), ("Message", s("waiting for x"))],
        );
        let args = Value::Interface(Some(Box::new(Interface {
            name: "TerminateAndResumeArgs".into(),
            value: st("TerminateAndResumeArgs", vec![("Measurement", measurement)]),
        })));
        PluginService::given_measurement(&args, true)
    };
    let failed = terminate("Failed");
    assert_eq!(failed.field("Phase"), Some(&s("Failed")));
    assert_eq!(failed.field("Message"), Some(&s("waiting for x")));
    assert!(matches!(
        failed.field("FinishedAt"),
        Some(Value::Encoded { .. })
    ));
    // A settling measurement terminated before its proof is Failed, never left in flight.
    let settling = terminate("Running");
    assert_eq!(settling.field("Phase"), Some(&s("Failed")));
    assert_eq!(
        settling.field("Message"),
        Some(&s(
            "terminated by the controller before the measurement was proven: waiting for x"
        ))
    );
    assert!(settling.field("FinishedAt").is_some());
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

    fn resume<'a>(
        &'a self,
        ctx: &'a AnalysisContext,
        metric: &'a MetricSpec,
        _started_at: SystemTime,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Measurement> + Send + 'a>> {
        self.run(ctx, metric)
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
