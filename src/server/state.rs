//! What every request shares.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
