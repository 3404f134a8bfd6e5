//! The control stream's net/rpc services: `Control` (Ping, Quit) and `Dispenser` (Dispense).
//!
//! Spec: `docs/wire/go-plugin-netrpc.md` (go-plugin v1.6.3 `rpc_server.go`: `controlServer`,
//! `dispenseServer`).
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;

use crate::codec::gob::{Type, Value};

use super::broker::Broker;
use super::netrpc::{empty_struct, Reply, Service};

/// The only plugin name Argo Rollouts dispenses for a metric provider.
pub const METRIC_PROVIDER_PLUGIN: &str = "RpcMetricProviderPlugin";

/// `Control`: Ping answers at once; Quit answers and then asks the server to shut down.
pub struct Control {
    quit: watch::Sender<bool>,
}

impl Control {
    /// `quit` becomes true when the host calls Quit.
    pub fn new(quit: watch::Sender<bool>) -> Self {
        Control { quit }
    }
}

impl Service for Control {
    fn name(&self) -> &'static str {
        "Control"
    }

    fn has_method(&self, method: &str) -> bool {
        matches!(method, "Ping" | "Quit")
    }

    fn call(self: Arc<Self>, method: String, _argument: Value) -> BoxFuture<'static, Reply> {
        if method == "Quit" {
            // The reply is still written: shutdown drains calls in flight, this one included.
            tracing::info!("host called Control.Quit, shutting down");
            self.quit.send_replace(true);
        }
        futures::future::ready(Ok(empty_struct())).boxed()
    }
}

/// `Dispenser`: hands out a MuxBroker id for the metric-provider plugin.
pub struct Dispenser {
    broker: Arc<Broker>,
}

impl Dispenser {
    pub fn new(broker: Arc<Broker>) -> Self {
        Dispenser { broker }
    }

    fn dispense(&self, argument: &Value) -> Reply {
        let Some(name) = argument.as_str() else {
            return Err(format!(
                "gob: decoding into local type *string, received {}",
                argument.go_kind()
            ));
        };
        if name != METRIC_PROVIDER_PLUGIN {
            return Err(format!("unknown plugin type: {name}"));
        }
        let id = self.broker.reserve();
        tracing::debug!(id, "dispensed {METRIC_PROVIDER_PLUGIN}");
        Ok((Type::Uint, Value::Uint(u64::from(id))))
    }
}

impl Service for Dispenser {
    fn name(&self) -> &'static str {
        "Dispenser"
    }

    fn has_method(&self, method: &str) -> bool {
        method == "Dispense"
    }

    fn call(self: Arc<Self>, _method: String, argument: Value) -> BoxFuture<'static, Reply> {
        futures::future::ready(self.dispense(&argument)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispense_names_the_unknown_plugin_like_go_plugin() {
        let dispenser = Dispenser::new(Arc::new(Broker::new()));
        assert_eq!(
            dispenser.dispense(&Value::String("Nope".into())),
            Err("unknown plugin type: Nope".to_string())
        );
        assert_eq!(
            dispenser.dispense(&Value::String(METRIC_PROVIDER_PLUGIN.into())),
            Ok((Type::Uint, Value::Uint(1)))
        );
        assert!(dispenser.dispense(&Value::Int(3)).is_err());
    }
}
