//! Tells open connections to finish, and waits until they have.

use tokio::sync::watch;

pub(super) struct Drain {
    signal: watch::Sender<bool>,
}

impl Drain {
    pub fn new() -> Self {
        Drain {
            signal: watch::channel(false).0,
        }
    }

    /// Held by each open connection.
    pub fn watcher(&self) -> watch::Receiver<bool> {
        self.signal.subscribe()
    }

    /// Connections still open (each holds a watcher).
    pub fn open(&self) -> usize {
        self.signal.receiver_count()
    }

    /// Asks every connection to finish, and waits until all have closed.
    pub async fn drain(&self) {
        let _ = self.signal.send(true);
        self.signal.closed().await;
    }
}

/// Resolves once the drain has begun (the guard is dropped before returning,
/// so the future stays Send).
pub(super) async fn drain_requested(draining: &mut watch::Receiver<bool>) {
    let _ = draining.wait_for(|drain| *drain).await.map(|_| ());
}
