//! Claims of `docs/wire/gob.md` and `docs/wire/go-plugin-netrpc.md` that no other test pinned: what Go's
//! encoder really sends (a nameless GobEncoderT for `*metav1.Time` fields, process-global type ids, the first
//! `RunArgs` split over 219 messages, every Argo argument under its registered name) and rules of our side (the
//! type-definition cap, the socket group mode, the GoAway codes we send, net/rpc replies matched by Seq).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::BytesMut;
use rollouts_guardrails::codec::gob::decode::Limits;
use rollouts_guardrails::codec::gob::types::{TypeId, WireType};
use rollouts_guardrails::codec::gob::wire::{get_uint, put_int, put_uint, uint_to_int};
use rollouts_guardrails::codec::gob::{
    DecodeError, Decoder, EncodeError, Encoder, Struct, StructType, Type, Value,
};
use rollouts_guardrails::transport::control::Control;
use rollouts_guardrails::transport::frame::{self, Flags, FrameType, Header, HEADER_LEN};
use rollouts_guardrails::transport::handshake::{HandshakeError, PluginListener};
use rollouts_guardrails::transport::mux::Session;
use rollouts_guardrails::transport::netrpc::{self, InFlight, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gob_fixtures::{decode_all, fixture};

/// The payloads of a stream's messages, each with the signed type id it starts with.
fn messages(mut bytes: &[u8]) -> Vec<(TypeId, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, used) = get_uint(bytes).expect("message length");
        let payload = bytes[used..used + len as usize].to_vec();
        let (id, _) = get_uint(&payload).expect("type id");
        out.push((uint_to_int(id), payload));
        bytes = &bytes[used + len as usize..];
    }
    out
}

/// Ids a stream defines in messages of their own (definitions inside an interface value's first message are
/// not at the front of a message and are not listed).
fn standalone_definitions(bytes: &[u8]) -> Vec<TypeId> {
    messages(bytes)
        .into_iter()
        .filter(|(id, _)| *id < 0)
        .map(|(id, _)| -id)
        .collect()
}

/// Every definition the decoder holds, by id (Go's ids stay far below 1000 in these fixtures).
fn definitions(decoder: &Decoder) -> Vec<(TypeId, WireType)> {
    (64..1000)
        .filter_map(|id| decoder.wire_type(id).map(|t| (id, t.clone())))
        .collect()
}

#[test]
fn go_sends_pointer_time_fields_as_a_nameless_gob_encoder_type_and_a_named_time_besides(
) -> Result<()> {
    let golden = fixture("measurements.bin");
    let (_, decoder) = decode_all(&golden)?;
    let defined = definitions(&decoder);
    let measurement = defined
        .iter()
        .find_map(|(_, t)| match t {
            WireType::Struct { name, fields } if name == "Measurement" => Some(fields.clone()),
            _ => None,
        })
        .context("Measurement is defined")?;
    let field_id = |name: &str| {
        measurement
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    };
    let time_id = field_id("StartedAt").context("StartedAt")?;
    assert_eq!(field_id("FinishedAt"), Some(time_id));
    assert_eq!(field_id("ResumeAt"), Some(time_id));
    assert_eq!(
        decoder.wire_type(time_id),
        Some(&WireType::Encoded {
            name: String::new()
        }),
        "the *metav1.Time fields' type is a GobEncoderT without a name"
    );
    let named: Vec<_> = defined
        .iter()
        .filter(|(_, t)| {
            *t == WireType::Encoded {
                name: "Time".into(),
            }
        })
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        named.len(),
        1,
        "a named \"Time\" GobEncoderT is defined too"
    );
    assert_ne!(named[0], time_id, "and no field uses it");
    // The nameless definition's CommonType.Id names the next id, which is never defined: the Id inside a
    // definition is not the id it defines, and only the message's leading id counts.
    let (_, payload) = messages(&golden)
        .into_iter()
        .find(|(id, _)| *id == -time_id)
        .context("the nameless definition is a message of its own")?;
    let mut expected = Vec::new();
    put_int(&mut expected, -time_id);
    expected.extend_from_slice(&[0x05, 0x01, 0x02]); // GobEncoderT, CommonType, field 1 (Id): no Name
    put_int(&mut expected, time_id + 1);
    expected.extend_from_slice(&[0x00, 0x00, 0x00]);
    assert_eq!(payload, expected);
    assert_eq!(decoder.wire_type(time_id + 1), None);
    Ok(())
}

#[test]
fn go_type_ids_are_process_global() -> Result<()> {
    // point.bin was the first thing the generator encoded: a fresh Go 1.26 process starts at 64.
    assert_eq!(standalone_definitions(&fixture("point.bin")), [64]);
    // The control-stream requests were encoded after Argo's whole type graph: net/rpc's Request got 287.
    let requests = fixture("control_requests.bin");
    assert_eq!(standalone_definitions(&requests), [287]);
    let (values, _) = decode_all(&requests)?;
    assert_eq!(values.len(), 8);
    Ok(())
}

#[test]
fn go_names_a_type_first_met_at_top_level_with_an_empty_name() -> Result<()> {
    // singletons.bin encodes a map[string]string at top level before any struct holds one.
    let (_, decoder) = decode_all(&fixture("singletons.bin"))?;
    assert_eq!(
        decoder.wire_type(65),
        Some(&WireType::Map {
            name: String::new(),
            key: 6,
            elem: 6
        })
    );
    Ok(())
}

#[test]
fn our_encoder_refuses_a_field_without_a_name() {
    let nameless = Type::Struct(StructType::new("T", [("", Type::Int)]));
    let value = Value::Struct(Struct {
        type_name: "T".into(),
        fields: vec![],
    });
    assert_eq!(
        Encoder::new().encode(&nameless, &value, &mut Vec::new()),
        Err(EncodeError::EmptyFieldName("T".into()))
    );
}

#[test]
fn the_first_run_args_brings_218_definitions_over_219_messages() -> Result<()> {
    let golden = fixture("run_args.bin");
    let all = messages(&golden);
    // First value: RunArgs' definition inside the first message, 217 definition messages, the rest of the
    // value; then the second value in one message.
    assert_eq!(all.len(), 220);
    assert_eq!(standalone_definitions(&golden).len(), 217);
    let first = &all[0].1;
    let mut head = vec![0x10, 0x00, 0x07];
    head.extend_from_slice(b"RunArgs");
    assert_eq!(
        &first[..head.len()],
        &head[..],
        "interface id 8, delta 0, name"
    );
    let (id_after_name, _) = get_uint(&first[head.len()..]).expect("an id");
    assert!(
        uint_to_int(id_after_name) < 0,
        "a definition follows the name"
    );
    assert_eq!(all[219].0, 8, "the second value is one interface message");
    let mut second = Vec::new();
    put_uint(&mut second, all[219].1.len() as u64);
    let second = second.len() + all[219].1.len();
    assert_eq!(golden.len() - second, 19_653, "bytes of the first RunArgs");
    let (values, decoder) = decode_all(&golden)?;
    assert_eq!(values.len(), 2);
    assert_eq!(decoder.type_count(), 218);
    Ok(())
}

/// The interface name an argument arrived under; `None` for a nil interface.
fn interface_name(value: &Value) -> Option<&str> {
    value.as_interface().map(|i| i.name.as_str())
}

#[test]
fn argo_sends_every_argument_as_an_interface_under_its_registered_name() -> Result<()> {
    let (requests, request_decoder) = decode_all(&fixture("plugin_requests.bin"))?;
    // Request, RunArgs' graph (218), TerminateAndResumeArgs, GarbageCollectArgs, GetMetadataArgs.
    assert_eq!(request_decoder.type_count(), 222);
    let (responses, _) = decode_all(&fixture("plugin_responses.bin"))?;
    let expected: [(&str, Option<&str>, &str); 8] = [
        ("Plugin.InitPlugin", None, "RpcError"),
        ("Plugin.Run", Some("RunArgs"), "Measurement"),
        ("Plugin.Run", Some("RunArgs"), "Measurement"),
        (
            "Plugin.Resume",
            Some("TerminateAndResumeArgs"),
            "Measurement",
        ),
        (
            "Plugin.Terminate",
            Some("TerminateAndResumeArgs"),
            "Measurement",
        ),
        (
            "Plugin.GarbageCollect",
            Some("GarbageCollectArgs"),
            "RpcError",
        ),
        ("Plugin.Type", None, "string"),
        ("Plugin.GetMetadata", Some("GetMetadataArgs"), "map"),
    ];
    assert_eq!(requests.len(), 2 * expected.len());
    assert_eq!(responses.len(), 2 * expected.len());
    for (seq, (method, argument, reply)) in expected.iter().enumerate() {
        let (header, body) = (&requests[2 * seq], &requests[2 * seq + 1]);
        assert_eq!(
            header.field("ServiceMethod").and_then(Value::as_str),
            Some(*method)
        );
        // Seq counts from 0, and a zero Seq is omitted like every zero field.
        let seq_field = header.field("Seq");
        if seq == 0 {
            assert_eq!(seq_field, None);
        } else {
            assert_eq!(seq_field, Some(&Value::Uint(seq as u64)));
        }
        assert!(
            matches!(body, Value::Interface(_)),
            "{method}: the body is an interface"
        );
        assert_eq!(interface_name(body), *argument, "{method}");
        let (reply_header, reply_body) = (&responses[2 * seq], &responses[2 * seq + 1]);
        assert_eq!(
            reply_header.field("ServiceMethod").and_then(Value::as_str),
            Some(*method)
        );
        let kind = match reply_body {
            Value::Struct(s) => s.type_name.as_str(),
            Value::String(_) => "string",
            Value::Map(_) => "map",
            other => panic!("{method}: unexpected reply {other:?}"),
        };
        assert_eq!(kind, *reply, "{method}");
    }
    Ok(())
}

#[test]
fn more_type_definitions_than_the_cap_is_fatal() -> Result<()> {
    // singletons.bin defines four types; allow three.
    let golden = fixture("singletons.bin");
    let mut decoder = Decoder::with_limits(Limits {
        max_types: 3,
        ..Limits::default()
    });
    let mut buf = BytesMut::from(&golden[..]);
    let error = loop {
        match decoder.decode(&mut buf) {
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("the stream ended without hitting the cap"),
            Err(e) => break e,
        }
    };
    assert_eq!(error, DecodeError::TooManyTypes(3));
    assert!(!error.is_recoverable(), "the stream must be closed");
    assert_eq!(decoder.type_count(), 3);
    Ok(())
}

#[test]
fn an_error_after_an_interface_value_pulled_in_a_second_message_is_fatal() -> Result<()> {
    // interface.bin's first message: id 8, name "P", P's definition; then a continuation naming an undefined
    // concrete type instead of P's id.
    let golden = fixture("interface.bin");
    let (first_len, used) = get_uint(&golden)?;
    let mut stream = golden[..used + first_len as usize].to_vec();
    let mut continuation = Vec::new();
    put_int(&mut continuation, 99);
    continuation.extend_from_slice(&[0x01, 0x00]);
    stream.push(continuation.len() as u8);
    stream.extend_from_slice(&continuation);
    let mut buf = BytesMut::from(&stream[..]);
    let error = Decoder::new()
        .decode(&mut buf)
        .expect_err("undefined concrete type");
    assert_eq!(
        error,
        DecodeError::Desync(Box::new(DecodeError::UnknownType(99)))
    );
    assert!(!error.is_recoverable());
    // The same undefined id in a value of one message is recoverable: nothing else was pulled in.
    let mut single = BytesMut::from(&[0x03, 0xFF, 0xC6, 0x00][..]);
    let error = Decoder::new()
        .decode(&mut single)
        .expect_err("undefined type");
    assert_eq!(error, DecodeError::UnknownType(99));
    assert!(error.is_recoverable());
    Ok(())
}

#[tokio::test]
async fn a_socket_group_makes_the_socket_group_writable_in_the_hosts_directory() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let gid = std::fs::metadata(dir.path())?.gid();
    let listener = PluginListener::bind(Some(dir.path()), Some(&gid.to_string()))?;
    let socket = listener.path().to_path_buf();
    assert_eq!(socket.parent(), Some(dir.path()));
    let meta = std::fs::metadata(&socket)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid);
    drop(listener);
    assert!(!socket.exists(), "the socket is removed");
    assert!(dir.path().exists(), "the host's directory stays");

    let unknown = PluginListener::bind(Some(dir.path()), Some("no-such-group-for-this-test"));
    assert!(matches!(unknown, Err(HandshakeError::SocketGroup { .. })));
    Ok(())
}

fn header(frame_type: FrameType, flags: Flags, stream_id: u32, length: u32) -> [u8; HEADER_LEN] {
    frame::encode(&Header {
        frame_type,
        flags,
        stream_id,
        length,
    })
}

async fn next_header(peer: &mut tokio::io::DuplexStream) -> Result<Header> {
    let mut raw = [0u8; HEADER_LEN];
    peer.read_exact(&mut raw).await?;
    Ok(frame::decode(&raw)?)
}

#[tokio::test]
async fn go_away_codes_normal_on_close_protocol_error_on_bad_frames() -> Result<()> {
    let (ours, mut peer) = tokio::io::duplex(1 << 16);
    let session = Session::server(ours);
    session.handle().close();
    let go_away = next_header(&mut peer).await?;
    assert_eq!(
        (go_away.frame_type, go_away.stream_id, go_away.length),
        (FrameType::GoAway, 0, frame::GO_AWAY_NORMAL)
    );

    // Streams the host opens are odd; an even one, or a stream frame on the session's id 0, ends the session.
    for bad in [
        header(FrameType::WindowUpdate, Flags::SYN, 2, 0),
        header(FrameType::Data, Flags::NONE, 0, 0),
    ] {
        let (ours, mut peer) = tokio::io::duplex(1 << 16);
        let _session = Session::server(ours);
        peer.write_all(&bad).await?;
        let go_away = next_header(&mut peer).await?;
        assert_eq!(
            (go_away.frame_type, go_away.length),
            (FrameType::GoAway, frame::GO_AWAY_PROTOCOL_ERROR),
            "{bad:02X?}"
        );
    }
    Ok(())
}

#[test]
fn a_host_asking_for_auto_mtls_is_refused_before_the_handshake() -> Result<()> {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollouts-guardrails"))
        .env_clear()
        .env("ARGO_ROLLOUTS_RPC_PLUGIN", "metricprovider")
        .env("PLUGIN_CLIENT_CERT", "-----BEGIN CERTIFICATE-----")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // A plugin that accepted would wait for the host forever: stop it rather than hang the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            anyhow::bail!(
                "the plugin is still running: it accepted a host that asked for AutoMTLS"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "no handshake line on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AutoMTLS"), "{stderr}");
    Ok(())
}

fn request(method: &str, seq: u64) -> Value {
    Value::Struct(Struct {
        type_name: "Request".into(),
        fields: vec![
            ("ServiceMethod".into(), Value::String(method.into())),
            ("Seq".into(), Value::Uint(seq)),
        ],
    })
}

#[tokio::test]
async fn net_rpc_answers_by_seq_with_go_error_texts_and_an_empty_struct_body() -> Result<()> {
    let (ours, mut peer) = tokio::io::duplex(1 << 20);
    let mut session = Session::server(ours);
    peer.write_all(&header(FrameType::WindowUpdate, Flags::SYN, 1, 0))
        .await?;
    let ack = next_header(&mut peer).await?;
    assert_eq!((ack.flags, ack.stream_id), (Flags::ACK, 1));
    let (reader, writer) = session.accept().await.context("stream 1")?.into_split();
    let (quit, quit_requested) = tokio::sync::watch::channel(false);
    let services: Vec<Arc<dyn Service>> = vec![Arc::new(Control::new(quit))];
    tokio::spawn(netrpc::serve(
        reader,
        writer,
        BytesMut::new(),
        services,
        Arc::new(InFlight::default()),
    ));

    // Two requests as Go's client writes them: the Request header, then the argument.
    let request_type = Type::Struct(StructType::new(
        "Request",
        [("ServiceMethod", Type::String), ("Seq", Type::Uint)],
    ));
    let mut encoder = Encoder::new();
    let mut bytes = Vec::new();
    for (seq, method) in ["Control", "Control.Quit"].iter().enumerate() {
        encoder.encode(&request_type, &request(method, seq as u64), &mut bytes)?;
        encoder.encode(&Type::Bool, &Value::Bool(true), &mut bytes)?;
    }
    let mut data = header(FrameType::Data, Flags::NONE, 1, bytes.len() as u32).to_vec();
    data.extend_from_slice(&bytes);
    peer.write_all(&data).await?;

    // Replies come in any order: collect header and body pairs by Seq.
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut values = Vec::new();
    while values.len() < 4 {
        let h = next_header(&mut peer).await?;
        if h.frame_type != FrameType::Data {
            continue;
        }
        let mut payload = vec![0u8; h.length as usize];
        peer.read_exact(&mut payload).await?;
        buf.extend_from_slice(&payload);
        while let Some(value) = decoder.decode(&mut buf)? {
            values.push(value);
        }
    }
    let mut replies = std::collections::BTreeMap::new();
    for pair in values.chunks(2) {
        let seq = pair[0].field("Seq").and_then(Value::as_u64).unwrap_or(0);
        replies.insert(seq, (pair[0].clone(), pair[1].clone()));
    }
    let empty = Value::Struct(Struct {
        type_name: String::new(),
        fields: vec![],
    });
    let (ill_formed, body) = &replies[&0];
    assert_eq!(
        ill_formed.field("Error").and_then(Value::as_str),
        Some("rpc: service/method request ill-formed: Control")
    );
    assert_eq!(body, &empty, "an error reply's body is struct{{}}");
    let (quit_reply, body) = &replies[&1];
    assert_eq!(
        quit_reply.field("ServiceMethod").and_then(Value::as_str),
        Some("Control.Quit")
    );
    assert_eq!(quit_reply.field("Error"), None, "no error: omitted");
    assert_eq!(body, &empty);
    assert!(*quit_requested.borrow(), "Quit asks the server to stop");
    Ok(())
}
