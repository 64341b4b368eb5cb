//! What every request shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::admin::Report;
use crate::engine::Rules;
use crate::metrics::Metrics;

pub struct AppState {
    pub rules: Rules,
    pub metrics: Metrics,
    /// Served on `/readyz`; false until bound and again while draining.
    pub ready: AtomicBool,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn new(rules: Rules, metrics: Metrics, max_body_bytes: usize) -> Arc<Self> {
        Arc::new(AppState {
            rules,
            metrics,
            ready: AtomicBool::new(false),
            max_body_bytes,
        })
    }
}

/// Ready once the webhook listener is bound and the config loaded; not
/// ready while draining, so that the Service stops sending us requests.
impl Report for AppState {
    fn ready(&self) -> Result<(), &'static str> {
        match self.ready.load(Ordering::SeqCst) {
            true => Ok(()),
            false => Err("not ready"),
        }
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }
}
