//! Plugin-mode framing on arbitrary bytes, through the real code: the bytes are what a host writes on the
//! plugin's unix socket — yamux frames (`transport::mux::Session`) whose streams carry Go net/rpc requests
//! (`transport::netrpc::serve`: `Request{ServiceMethod, Seq}` then a gob argument) for the `Plugin` service
//! (`service::plugin::PluginService`, argument → AnalysisRun/Metric mapping). The provider behind it answers
//! at once without I/O. Any outcome but a panic, a hang or an unbounded allocation is fine.
#![no_main]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rollouts_guardrails::engine::{AnalysisContext, Measurement, MetricSpec, Phase};
use rollouts_guardrails::service::plugin::PluginService;
use rollouts_guardrails::service::Provider;
use rollouts_guardrails::transport::mux::Session;
use rollouts_guardrails::transport::netrpc::{self, InFlight, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one input may keep the server busy before the harness calls it a hang.
const INPUT_DEADLINE: Duration = Duration::from_secs(5);
/// Streams one input may have served (the fuzzer needs no more to reach every state).
const MAX_STREAMS: usize = 8;

/// A provider that measures nothing and always fails: the target is the framing, not the engine.
struct Refuse;

impl Provider for Refuse {
    fn run<'a>(
        &'a self,
        _ctx: &'a AnalysisContext,
        metric: &'a MetricSpec,
    ) -> Pin<Box<dyn Future<Output = Measurement> + Send + 'a>> {
        let message = format!(
            "fuzz: {} bytes of config",
            metric.plugin_config.as_ref().map_or(0, Vec::len)
        );
        Box::pin(async move {
            Measurement {
                phase: Phase::Failed,
                message,
                value: String::new(),
                metadata: BTreeMap::new(),
                started_at: None,
                finished_at: None,
                resume_at: None,
            }
        })
    }

    fn resume<'a>(
        &'a self,
        ctx: &'a AnalysisContext,
        metric: &'a MetricSpec,
        _started_at: SystemTime,
    ) -> Pin<Box<dyn Future<Output = Measurement> + Send + 'a>> {
        self.run(ctx, metric)
    }

    fn metadata(&self, _metric: &MetricSpec) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

fuzz_target!(|data: &[u8]| {
    RUNTIME.block_on(async {
        let (mut host, plugin_side) = tokio::io::duplex(64 * 1024);
        let mut session = Session::server(plugin_side);
        let services: Vec<Arc<dyn Service>> = vec![Arc::new(PluginService::new(Arc::new(Refuse)))];
        let in_flight = Arc::new(InFlight::default());
        let server = async move {
            let mut served = tokio::task::JoinSet::new();
            while let Some(stream) = session.accept().await {
                if served.len() >= MAX_STREAMS {
                    break;
                }
                let (reader, writer) = stream.into_split();
                served.spawn(netrpc::serve(
                    reader,
                    writer,
                    BytesMut::new(),
                    services.clone(),
                    in_flight.clone(),
                ));
            }
            drop(session);
            while served.join_next().await.is_some() {}
        };
        let input = data.to_vec();
        let host_side = async move {
            let _ = host.write_all(&input).await;
            let _ = host.shutdown().await;
            let mut sink = [0u8; 16 * 1024];
            while let Ok(n) = host.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ =
            tokio::time::timeout(INPUT_DEADLINE, async { tokio::join!(server, host_side) }).await;
    });
});
