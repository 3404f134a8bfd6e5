//! Golden vectors written by real Go peers (`tests/go/gobgen`, Go's encoding/gob, net/rpc and the real Argo Rollouts
//! v1.9.1 metric-plugin RPC types) decoded by our decoder, and our encoder's output compared with Go's bytes.
//! Also writes `target/gob-out/*.bin` for the Go-side check (`cd tests/go/gobgen && go test`).

use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{ensure, Context, Result};
use bytes::BytesMut;

use crate::gob_fixtures::{decode_all, fixture};
use rollouts_guardrails::codec::gob::{
    self, Decoder, Encoder, Interface, Struct, StructType, Type, Value,
};

/// The messages of a stream: (payload, is a definition).
fn messages(mut bytes: &[u8]) -> Vec<(Vec<u8>, bool)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, used) = gob::wire::get_uint(bytes).expect("message length");
        let payload = bytes[used..used + len as usize].to_vec();
        let (id, _) = gob::wire::get_uint(&payload).expect("type id");
        out.push((payload, id & 1 == 1));
        bytes = &bytes[used + len as usize..];
    }
    out
}

/// The value messages' bytes after their leading type id: what must match Go whatever ids either side chose.
fn value_bodies(bytes: &[u8]) -> Vec<Vec<u8>> {
    messages(bytes)
        .into_iter()
        .filter(|(_, def)| !def)
        .map(|(payload, _)| {
            let (_, used) = gob::wire::get_uint(&payload).expect("type id");
            payload[used..].to_vec()
        })
        .collect()
}

fn s(x: &str) -> Value {
    Value::String(x.into())
}

fn strct(name: &str, fields: Vec<(&str, Value)>) -> Value {
    Value::Struct(Struct {
        type_name: name.into(),
        fields: fields.into_iter().map(|(n, v)| (n.into(), v)).collect(),
    })
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    v.path(path).and_then(Value::as_str)
}

fn time_at(v: &Value, path: &[&str]) -> Option<std::time::SystemTime> {
    v.path(path)
        .and_then(Value::as_bytes)
        .and_then(|b| gob::time::decode(b).ok())
}

fn unix(secs: u64, nanos: u32) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

const T2024: u64 = 1_704_067_200;
/// 2025-03-14T15:09:26.535897932Z
const T_STARTED: u64 = 1_741_964_966;

fn point_type() -> Type {
    Type::Struct(StructType::new(
        "Point",
        [("X", Type::Int), ("Y", Type::Int)],
    ))
}

#[test]
fn point_decodes_and_our_encoder_matches_go_byte_for_byte() -> Result<()> {
    let golden = fixture("point.bin");
    let (values, decoder) = decode_all(&golden)?;
    assert_eq!(
        values,
        [
            strct("Point", vec![("X", Value::Int(22)), ("Y", Value::Int(33))]),
            strct("Point", vec![("X", Value::Int(-1))]),
        ]
    );
    assert_eq!(decoder.type_count(), 1);
    // Go 1.26 gave Point id 64 in a fresh process; start our ids there to compare bytes exactly.
    let mut encoder = Encoder::with_first_id(64);
    let mut out = Vec::new();
    encoder.encode(&point_type(), &values[0], &mut out)?;
    encoder.encode(
        &point_type(),
        &strct("Point", vec![("X", Value::Int(-1)), ("Y", Value::Int(0))]),
        &mut out,
    )?;
    assert_eq!(out, golden);
    Ok(())
}

#[test]
fn singletons_decode() -> Result<()> {
    let (values, _) = decode_all(&fixture("singletons.bin"))?;
    assert_eq!(values.len(), 12);
    assert_eq!(values[0], s("hello"));
    assert_eq!(values[1].map_get("prometheus"), Some(&s("up")));
    assert_eq!(values[1].as_map().map(<[_]>::len), Some(2));
    assert_eq!(values[2], Value::Map(vec![]));
    assert_eq!(values[3], Value::Int(-129));
    assert_eq!(values[4], Value::Uint(300));
    assert_eq!(values[5], Value::Bool(true));
    assert_eq!(values[6], Value::Float(17.0));
    assert_eq!(values[7], Value::Bytes(vec![0, 1, 2, 255]));
    assert_eq!(values[8], Value::Slice(vec![s("a"), s(""), s("c")]));
    assert_eq!(values[9], Value::Array(vec![Value::Int(7), Value::Int(0)]));
    assert_eq!(values[10], Value::Complex(1.5, -2.0));
    assert_eq!(values[11], strct("", vec![]));
    Ok(())
}

fn p(name: &str, n: i64) -> Value {
    let mut fields = vec![("Name", s(name))];
    if n != 0 {
        fields.push(("N", Value::Int(n)));
    }
    Value::Interface(Some(Box::new(Interface {
        name: "P".into(),
        value: strct("P", fields),
    })))
}

#[test]
fn interface_values_first_and_second_time_on_one_stream() -> Result<()> {
    let golden = fixture("interface.bin");
    let (values, _) = decode_all(&golden)?;
    assert_eq!(
        values,
        [p("first", 1), p("second", 0), Value::Interface(None)]
    );
    // The first value spans two messages (definition inside it), the second is one compact message.
    assert_eq!(messages(&golden).len(), 4);

    // Ours: definitions up front, compact interface form; same value bodies as Go once P is known.
    let mut encoder = Encoder::new();
    let mut out = Vec::new();
    for v in &values {
        encoder.encode(&Type::Interface, v, &mut out)?;
    }
    assert_eq!(decode_all(&out)?.0, values);
    let ours = value_bodies(&out);
    let go = value_bodies(&golden);
    let go = &go[go.len() - 2..];
    // Interface bodies carry the concrete type id (2 bytes here, after `00 01 'P'`), which differs.
    assert_eq!(ours[1].len(), go[0].len());
    assert_eq!(
        (&ours[1][..3], &ours[1][5..]),
        (&go[0][..3], &go[0][5..]),
        "second P"
    );
    assert_eq!(ours[2], go[1], "nil interface");
    Ok(())
}

fn measurement_type() -> Type {
    let time = Type::GobEncoder("Time".into());
    Type::Struct(StructType::new(
        "Measurement",
        [
            ("Phase", Type::String),
            ("Message", Type::String),
            ("StartedAt", time.clone()),
            ("FinishedAt", time.clone()),
            ("Value", Type::String),
            (
                "Metadata",
                Type::Map(Box::new(Type::String), Box::new(Type::String)),
            ),
            ("ResumeAt", time),
        ],
    ))
}

#[test]
fn measurements_decode_and_our_value_bytes_match_go() -> Result<()> {
    let golden = fixture("measurements.bin");
    let (values, _) = decode_all(&golden)?;
    assert_eq!(values.len(), 3);
    let [full, failed, running] = [&values[0], &values[1], &values[2]];
    assert_eq!(str_at(full, &["Phase"]), Some("Successful"));
    assert_eq!(time_at(full, &["StartedAt"]), Some(unix(T2024, 0)));
    assert_eq!(
        full.path(&["Metadata"]).and_then(|m| m.map_get("k")),
        Some(&s("v"))
    );
    assert_eq!(
        full.field("FinishedAt"),
        None,
        "nil *metav1.Time is omitted"
    );
    assert_eq!(str_at(failed, &["Message"]), Some("restarts 3 > 0"));
    assert_eq!(
        time_at(failed, &["StartedAt"]),
        Some(unix(T_STARTED, 535_897_932))
    );
    // 20:39:26 +05:30 and 16:09:33 +01:00:07 (a version 2 payload) are the same instant as 15:09:26Z.
    assert_eq!(time_at(failed, &["FinishedAt"]), Some(unix(T_STARTED, 0)));
    assert_eq!(
        failed
            .path(&["ResumeAt"])
            .and_then(Value::as_bytes)
            .map(|b| (b[0], b.len())),
        Some((2, 16))
    );
    assert_eq!(time_at(failed, &["ResumeAt"]), Some(unix(T_STARTED, 0)));
    assert_eq!(
        failed.field("Metadata"),
        Some(&Value::Map(vec![])),
        "empty non-nil map is sent"
    );
    assert_eq!(
        running,
        &strct("Measurement", vec![("Phase", s("Running"))])
    );

    let mut encoder = Encoder::new();
    let mut out = Vec::new();
    for v in &values {
        encoder.encode(&measurement_type(), v, &mut out)?;
    }
    assert_eq!(value_bodies(&out), value_bodies(&golden));
    // Go names the GobEncoderT of a `*metav1.Time` field "" (and defines a named "Time" besides); we name it.
    let unnamed = |vs: Vec<Value>| vs.into_iter().map(forget_encoded_names).collect::<Vec<_>>();
    assert_eq!(unnamed(decode_all(&out)?.0), unnamed(values.clone()));
    // The spec's worked example (gob.md §8.3), built from SystemTime through our time encoder.
    let mut ours = Encoder::new();
    let mut example = Vec::new();
    let value = strct(
        "Measurement",
        vec![
            ("Phase", s("Successful")),
            (
                "StartedAt",
                Value::Encoded {
                    type_name: "Time".into(),
                    bytes: gob::time::encode(unix(T2024, 0)),
                },
            ),
            ("Value", s("42")),
            ("Metadata", Value::Map(vec![(s("k"), s("v"))])),
        ],
    );
    ours.encode(&measurement_type(), &value, &mut example)?;
    assert_eq!(value_bodies(&example)[0], value_bodies(&golden)[0]);
    Ok(())
}

fn forget_encoded_names(v: Value) -> Value {
    match v {
        Value::Encoded { bytes, .. } => Value::Encoded {
            type_name: String::new(),
            bytes,
        },
        Value::Struct(s) => Value::Struct(Struct {
            type_name: s.type_name,
            fields: s
                .fields
                .into_iter()
                .map(|(n, v)| (n, forget_encoded_names(v)))
                .collect(),
        }),
        other => other,
    }
}

/// Headers and bodies alternate on a net/rpc stream.
fn header_body_pairs(values: &[Value]) -> Vec<(&Value, &Value)> {
    values.chunks(2).map(|pair| (&pair[0], &pair[1])).collect()
}

#[test]
fn control_stream_requests_and_responses_as_go_net_rpc_writes_them() -> Result<()> {
    let (requests, _) = decode_all(&fixture("control_requests.bin"))?;
    let requests = header_body_pairs(&requests);
    assert_eq!(requests.len(), 4);
    assert_eq!(
        requests[0].0,
        &strct("Request", vec![("ServiceMethod", s("Control.Ping"))])
    );
    assert_eq!(requests[0].1, &Value::Bool(true));
    assert_eq!(
        requests[1].0,
        &strct(
            "Request",
            vec![
                ("ServiceMethod", s("Dispenser.Dispense")),
                ("Seq", Value::Uint(1))
            ]
        )
    );
    assert_eq!(requests[1].1, &s("RpcMetricProviderPlugin"));
    assert_eq!(requests[3].1, &Value::Bool(false));

    let golden = fixture("control_responses.bin");
    let (responses, _) = decode_all(&golden)?;
    let pairs = header_body_pairs(&responses);
    assert_eq!(pairs.len(), 4);
    assert_eq!(pairs[0].1, &strct("", vec![]));
    assert_eq!(pairs[1].1, &Value::Uint(1));
    assert_eq!(
        str_at(pairs[2].0, &["Error"]),
        Some("unknown plugin type: nope")
    );
    assert_eq!(pairs[2].0.path(&["Seq"]), Some(&Value::Uint(2)));

    // Our encoder writes the same stream; Go's process-global ids differ, so compare value bodies exactly and
    // the whole stream semantically.
    let response = Type::Struct(StructType::new(
        "Response",
        [
            ("ServiceMethod", Type::String),
            ("Seq", Type::Uint),
            ("Error", Type::String),
        ],
    ));
    let empty = Type::Struct(StructType::new("", Vec::<(String, Type)>::new()));
    let mut encoder = Encoder::new();
    let mut out = Vec::new();
    for (header, body) in &pairs {
        encoder.encode(&response, header, &mut out)?;
        let body_type = match body {
            Value::Uint(_) => Type::Uint,
            _ => empty.clone(),
        };
        encoder.encode(&body_type, body, &mut out)?;
    }
    assert_eq!(value_bodies(&out), value_bodies(&golden));
    assert_eq!(decode_all(&out)?.0, responses);
    Ok(())
}

fn check_run_args(args: &Value, measurements: usize) {
    let iface = args
        .as_interface()
        .expect("RunArgs arrives as an interface value");
    assert_eq!(iface.name, "RunArgs");
    let ar = args.field("AnalysisRun").expect("AnalysisRun");
    assert_eq!(str_at(ar, &["TypeMeta", "Kind"]), Some("AnalysisRun"));
    assert_eq!(str_at(ar, &["ObjectMeta", "Namespace"]), Some("prod"));
    assert_eq!(str_at(ar, &["ObjectMeta", "Name"]), Some("web-7d9f-2"));
    assert_eq!(ar.path(&["ObjectMeta", "Generation"]), Some(&Value::Int(2)));
    assert_eq!(
        time_at(ar, &["ObjectMeta", "CreationTimestamp"]),
        Some(unix(T_STARTED, 0))
    );
    let labels = ar.path(&["ObjectMeta", "Labels"]).expect("labels");
    assert_eq!(
        labels.map_get("rollouts-pod-template-hash"),
        Some(&s("7d9f"))
    );
    let owner = &ar
        .path(&["ObjectMeta", "OwnerReferences"])
        .and_then(Value::as_slice)
        .expect("owners")[0];
    assert_eq!(str_at(owner, &["Kind"]), Some("Rollout"));
    assert_eq!(owner.field("Controller"), Some(&Value::Bool(true)));
    let run_args = ar
        .path(&["Spec", "Args"])
        .and_then(Value::as_slice)
        .expect("args");
    assert_eq!(str_at(&run_args[0], &["Value"]), Some("web"));
    assert_eq!(
        run_args[1],
        strct("Argument", vec![("Name", s("empty"))]),
        "pointer to \"\" is omitted"
    );
    assert_eq!(
        str_at(&run_args[2], &["ValueFrom", "FieldRef", "FieldPath"]),
        Some("metadata.labels['rollouts-pod-template-hash']")
    );
    assert_eq!(
        time_at(ar, &["Status", "StartedAt"]),
        Some(unix(T_STARTED, 535_897_932))
    );
    let results = ar
        .path(&["Status", "MetricResults"])
        .and_then(Value::as_slice);
    let got = results.map_or(0, |r| {
        r[0].field("Measurements")
            .and_then(Value::as_slice)
            .map_or(0, <[_]>::len)
    });
    assert_eq!(got, measurements);

    let metric = args.field("Metric").expect("Metric");
    assert_eq!(str_at(metric, &["Name"]), Some("guardrails"));
    assert_eq!(metric.path(&["Count", "IntVal"]), Some(&Value::Int(5)));
    assert_eq!(
        metric
            .path(&["FailureLimit"])
            .and_then(Value::as_struct)
            .map(|s| s.fields.len()),
        Some(0)
    );
    let config = metric
        .path(&["Provider", "Plugin"])
        .and_then(|p| p.map_get("argoproj-labs/rollouts-guardrails"))
        .and_then(Value::as_bytes)
        .expect("plugin config");
    let config: serde_json::Value = serde_json::from_slice(config).expect("plugin config is JSON");
    assert_eq!(config["prometheus"], "http://prom:9090");
}

#[test]
fn run_args_first_time_spans_many_messages_second_time_is_compact() -> Result<()> {
    let golden = fixture("run_args.bin");
    let (values, decoder) = decode_all(&golden)?;
    assert_eq!(values.len(), 2);
    check_run_args(&values[0], 2);
    check_run_args(&values[1], 0);
    // RunArgs' own definition rides in the first message with the interface name (gob.md §4.2); every other
    // definition is its own message; then the rest of the first value, then the compact second value.
    let standalone = messages(&golden).iter().filter(|(_, def)| *def).count();
    let definitions = standalone + 1;
    assert_eq!(decoder.type_count(), definitions);
    assert!(
        definitions > 100,
        "Go sends the whole static type graph: {definitions}"
    );
    assert_eq!(messages(&golden).len(), standalone + 3);
    println!("RunArgs: Go sent {definitions} type definitions");

    // Rough cost of the first Plugin.Run body (definitions + value), not an assertion.
    let first_len = golden.len() - last_message_len(&golden);
    let rounds = 50;
    let start = Instant::now();
    for _ in 0..rounds {
        let mut d = Decoder::new();
        let mut buf = BytesMut::from(&golden[..first_len]);
        ensure!(d.decode(&mut buf)?.is_some() && buf.is_empty());
    }
    println!(
        "first RunArgs ({first_len} bytes): {:?} per decode",
        start.elapsed() / rounds
    );
    Ok(())
}

fn last_message_len(bytes: &[u8]) -> usize {
    let all = messages(bytes);
    let payload = &all.last().expect("a message").0;
    let mut prefix = Vec::new();
    gob::wire::put_uint(&mut prefix, payload.len() as u64);
    prefix.len() + payload.len()
}

#[test]
fn big_analysis_run_with_5000_measurements() -> Result<()> {
    let golden = fixture("big_run_args.bin");
    assert!(golden.len() > 256 << 10);
    let start = Instant::now();
    let (values, _) = decode_all(&golden)?;
    println!(
        "big RunArgs ({} bytes): {:?}",
        golden.len(),
        start.elapsed()
    );
    check_run_args(&values[0], 5000);
    let results = values[0]
        .path(&["AnalysisRun", "Status", "MetricResults"])
        .and_then(Value::as_slice);
    let last = results
        .and_then(|r| r[0].field("Measurements"))
        .and_then(Value::as_slice)
        .and_then(|m| m.last());
    assert_eq!(last.and_then(|m| str_at(m, &["Value"])), Some("4999"));
    assert_eq!(
        last.and_then(|m| time_at(m, &["FinishedAt"])),
        Some(unix(T2024 + 4999 * 30 + 1, 0))
    );
    Ok(())
}

#[test]
fn plugin_rpc_streams_from_the_real_argo_client_and_server() -> Result<()> {
    let (requests, decoder) = decode_all(&fixture("plugin_requests.bin"))?;
    let requests = header_body_pairs(&requests);
    let methods: Vec<_> = requests
        .iter()
        .map(|(h, _)| str_at(h, &["ServiceMethod"]).unwrap_or(""))
        .collect();
    assert_eq!(
        methods,
        [
            "Plugin.InitPlugin",
            "Plugin.Run",
            "Plugin.Run",
            "Plugin.Resume",
            "Plugin.Terminate",
            "Plugin.GarbageCollect",
            "Plugin.Type",
            "Plugin.GetMetadata"
        ]
    );
    assert_eq!(requests[0].1, &Value::Interface(None));
    check_run_args(requests[1].1, 2);
    check_run_args(requests[2].1, 2);
    let resume = requests[3].1;
    assert_eq!(
        resume.as_interface().map(|i| i.name.as_str()),
        Some("TerminateAndResumeArgs")
    );
    assert_eq!(
        str_at(resume, &["Measurement", "Phase"]),
        Some("Successful")
    );
    assert_eq!(requests[5].1.field("Limit"), Some(&Value::Int(10)));
    assert_eq!(requests[6].1, &Value::Interface(None));
    assert_eq!(
        str_at(requests[7].1, &["Metric", "Name"]),
        Some("guardrails")
    );
    println!(
        "plugin request stream: {} type definitions",
        decoder.type_count()
    );

    let (responses, _) = decode_all(&fixture("plugin_responses.bin"))?;
    let responses = header_body_pairs(&responses);
    assert_eq!(responses.len(), 8);
    assert_eq!(responses[0].1, &strct("RpcError", vec![]));
    let run_reply = responses[1].1;
    assert_eq!(
        run_reply
            .path(&["Metadata"])
            .and_then(|m| m.map_get("namespace")),
        Some(&s("prod"))
    );
    assert_eq!(
        time_at(run_reply, &["StartedAt"]),
        Some(unix(T_STARTED, 535_897_932))
    );
    assert_eq!(
        time_at(responses[4].1, &["FinishedAt"]),
        Some(unix(T2024, 0))
    );
    assert_eq!(
        str_at(responses[5].1, &["ErrorString"]),
        Some("garbage collection failed")
    );
    assert_eq!(responses[6].1, &s("RpcMetricProviderPlugin"));
    assert_eq!(responses[7].1.map_get("metric"), Some(&s("guardrails")));
    assert_eq!(responses[7].0.path(&["Seq"]), Some(&Value::Uint(7)));
    Ok(())
}

/// Decodes `bytes` as if they were all that has arrived: only whole values may come out, never an error.
fn decode_prefix(bytes: &[u8]) -> Result<usize> {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::from(bytes);
    let mut values = 0;
    while decoder.decode(&mut buf)?.is_some() {
        values += 1;
    }
    Ok(values)
}

#[test]
fn every_truncation_of_golden_streams_is_incomplete_never_an_error() -> Result<()> {
    for name in [
        "point.bin",
        "singletons.bin",
        "interface.bin",
        "measurements.bin",
        "control_responses.bin",
    ] {
        let golden = fixture(name);
        let total = decode_all(&golden)?.0.len();
        for cut in 0..golden.len() {
            let values =
                decode_prefix(&golden[..cut]).with_context(|| format!("{name} cut at {cut}"))?;
            ensure!(values < total, "{name} cut at {cut} decoded every value");
        }
    }
    // The 20 KB RunArgs stream: every offset across the first messages, then a stride.
    let golden = fixture("run_args.bin");
    for cut in (0..golden.len()).filter(|c| *c < 2048 || c % 97 == 0) {
        ensure!(
            decode_prefix(&golden[..cut]).with_context(|| format!("run_args cut at {cut}"))? < 2
        );
    }
    Ok(())
}

#[test]
fn corrupted_golden_streams_never_panic() {
    for name in [
        "measurements.bin",
        "interface.bin",
        "control_requests.bin",
        "run_args.bin",
    ] {
        let golden = fixture(name);
        let step = (golden.len() / 3000).max(1);
        for at in (0..golden.len()).step_by(step) {
            for flip in [0xFF, 0x80, 0x01] {
                let mut bytes = golden.clone();
                bytes[at] ^= flip;
                let mut decoder = Decoder::new();
                let mut buf = BytesMut::from(&bytes[..]);
                // Any outcome but a panic or a hang is acceptable; stop at the first fatal error.
                while let Ok(Some(_)) | Err(gob::DecodeError::UnknownType(_)) =
                    decoder.decode(&mut buf)
                {
                    if buf.is_empty() {
                        break;
                    }
                }
            }
        }
    }
}

/// Writes the reply stream our plugin would send the controller, one file per reply (`NN.bin`; the stream is
/// their concatenation), for `cd tests/go/gobgen && go test`, which feeds them to Go's real net/rpc client
/// decoding into the real Argo types.
#[test]
fn write_reply_stream_for_the_go_check() -> Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/gob-out/plugin_replies");
    std::fs::create_dir_all(&dir)?;
    let response = Type::Struct(StructType::new(
        "Response",
        [
            ("ServiceMethod", Type::String),
            ("Seq", Type::Uint),
            ("Error", Type::String),
        ],
    ));
    let rpc_error = Type::Struct(StructType::new("RpcError", [("ErrorString", Type::String)]));
    let empty = Type::Struct(StructType::new("", Vec::<(String, Type)>::new()));
    let metadata = Type::Map(Box::new(Type::String), Box::new(Type::String));
    let time = |secs, nanos| Value::Encoded {
        type_name: "Time".into(),
        bytes: gob::time::encode(unix(secs, nanos)),
    };
    let replies: Vec<(&str, &str, Type, Value)> = vec![
        (
            "Plugin.InitPlugin",
            "",
            rpc_error.clone(),
            strct("RpcError", vec![]),
        ),
        (
            "Plugin.Run",
            "",
            measurement_type(),
            strct(
                "Measurement",
                vec![
                    ("Phase", s("Successful")),
                    ("StartedAt", time(T_STARTED, 535_897_932)),
                    ("FinishedAt", time(T_STARTED + 1, 0)),
                    ("Value", s("0")),
                    (
                        "Metadata",
                        Value::Map(vec![
                            (s("namespace"), s("prod")),
                            (s("guardrail"), s("restarts")),
                        ]),
                    ),
                ],
            ),
        ),
        (
            "Plugin.Resume",
            "",
            measurement_type(),
            strct(
                "Measurement",
                vec![
                    ("Phase", s("Failed")),
                    ("Message", s("no data for pod web-1")),
                    ("Metadata", Value::Map(vec![])),
                    ("ResumeAt", time(T2024, 0)),
                ],
            ),
        ),
        (
            "Plugin.GarbageCollect",
            "",
            rpc_error,
            strct("RpcError", vec![("ErrorString", s("gc failed"))]),
        ),
        (
            "Plugin.Type",
            "",
            Type::String,
            s("RpcMetricProviderPlugin"),
        ),
        (
            "Plugin.GetMetadata",
            "",
            metadata.clone(),
            Value::Map(vec![(s("metric"), s("guardrails"))]),
        ),
        ("Plugin.GetMetadata", "", metadata, Value::Map(vec![])),
        (
            "Plugin.Nope",
            "rpc: can't find method Plugin.Nope",
            empty,
            strct("", vec![]),
        ),
    ];
    let mut encoder = Encoder::new();
    let mut stream = Vec::new();
    for (seq, (method, error, ty, body)) in replies.iter().enumerate() {
        let mut chunk = Vec::new();
        let header = strct(
            "Response",
            vec![
                ("ServiceMethod", s(method)),
                ("Seq", Value::Uint(seq as u64)),
                ("Error", s(error)),
            ],
        );
        encoder.encode(&response, &header, &mut chunk)?;
        encoder.encode(ty, body, &mut chunk)?;
        std::fs::write(dir.join(format!("{seq:02}.bin")), &chunk)?;
        stream.extend_from_slice(&chunk);
    }
    // What we wrote must read back as what we meant.
    let (values, _) = decode_all(&stream)?;
    assert_eq!(values.len(), 2 * replies.len());
    assert_eq!(
        time_at(&values[3], &["StartedAt"]),
        Some(unix(T_STARTED, 535_897_932))
    );
    Ok(())
}
