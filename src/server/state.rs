//! What every request shares.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;

pub struct AppState {
    pub config: Config,
    pub metrics: Metrics,
    /// Served on `/readyz`; false until bound and again while draining.
    pub ready: AtomicBool,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn new(config: Config, metrics: Metrics, max_body_bytes: usize) -> Arc<Self> {
        Arc::new(AppState {
            config,
            metrics,
            ready: AtomicBool::new(false),
            max_body_bytes,
        })
    }
}
