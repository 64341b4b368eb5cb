//! A log writer that batches: each line is appended to a shared buffer,
//! and a writer thread writes the buffer out once per interval, or sooner
//! when a batch is full.
//!
//! A queue of lines (tracing-appender's `NonBlocking`) wakes its writer
//! thread for nearly every line, and that thread then spins, yields and
//! makes a system call per line or two, on the same cores as the reviews.
//! A batch is one wake-up and one write for up to a few hundred lines.
//!
//! Nothing is dropped. When the sink falls so far behind that the buffer is
//! full, loggers wait for it, as they would on a full pipe; if the writer
//! thread is gone, they write to the sink themselves.

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait for its batch; short enough that
/// `kubectl logs -f` still reads as live.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// A full batch is written at once.
const BATCH_BYTES: usize = 64 * 1024;
/// Loggers wait while this much is waiting for the sink.
const PENDING_BYTES_MAX: usize = 4 * 1024 * 1024;
/// On shutdown, how long to wait for the last batch to be written.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

type Sink = Box<dyn Write + Send>;

/// The `MakeWriter` to give the subscriber.
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

/// Writes what is still pending when dropped; keep it until exit.
#[must_use = "dropping the guard stops the writer thread"]
pub struct FlushGuard {
    shared: Arc<Shared>,
    writer_done: mpsc::Receiver<()>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// The writer thread waits here for a first line, then for a full batch.
    lines_added: Condvar,
    /// Loggers wait here while the buffer is full.
    batch_taken: Condvar,
    sink: Mutex<Sink>,
    limits: Limits,
}

struct Pending {
    bytes: Vec<u8>,
    /// The guard was dropped: the writer writes what is pending and ends.
    stopping: bool,
    /// The writer thread has ended (shutdown, or a panic in the sink):
    /// loggers write to the sink themselves.
    writer_gone: bool,
    /// How many times a logger waited for room; only tests read it.
    waits_for_room: u64,
}

#[derive(Clone, Copy)]
struct Limits {
    interval: Duration,
    batch_bytes: usize,
    pending_bytes_max: usize,
}

impl Limits {
    /// Room for a full batch and the lines that arrive while the writer
    /// wakes up, so that the buffers are not reallocated in steady state.
    fn buffer_capacity(self) -> usize {
        self.batch_bytes * 2
    }
}

/// Starts the writer thread for `sink`.
pub fn spawn(sink: impl Write + Send + 'static) -> io::Result<(BatchedWriter, FlushGuard)> {
    spawn_with(
        Box::new(sink),
        Limits {
            interval: FLUSH_INTERVAL,
            batch_bytes: BATCH_BYTES,
            pending_bytes_max: PENDING_BYTES_MAX,
        },
    )
}

fn spawn_with(sink: Sink, limits: Limits) -> io::Result<(BatchedWriter, FlushGuard)> {
    let shared = Arc::new(Shared::new(sink, limits));
    let (done, writer_done) = mpsc::channel();
    let for_thread = Arc::clone(&shared);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            let _gone = MarkGone(&for_thread, done);
            write_batches(&for_thread);
        })?;
    Ok((
        BatchedWriter {
            shared: Arc::clone(&shared),
        },
        FlushGuard {
            shared,
            writer_done,
        },
    ))
}

/// The writer thread: waits for a line, lets the batch gather, writes it.
fn write_batches(shared: &Shared) {
    let limits = shared.limits;
    let mut batch = Vec::with_capacity(limits.buffer_capacity());
    loop {
        let pending = shared.lock_pending();
        let pending = shared
            .lines_added
            .wait_while(pending, |p| p.bytes.is_empty() && !p.stopping)
            .unwrap_or_else(PoisonError::into_inner);
        let (mut pending, _) = shared
            .lines_added
            .wait_timeout_while(pending, limits.interval, |p| {
                p.bytes.len() < limits.batch_bytes && !p.stopping
            })
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut batch, &mut pending.bytes);
        let stopping = pending.stopping;
        drop(pending);
        shared.batch_taken.notify_all();
        let mut sink = shared.lock_sink();
        // A failing stderr has nowhere to report to.
        let _ = sink.write_all(&batch).and_then(|()| sink.flush());
        drop(sink);
        batch.clear();
        // A burst should not keep its memory for good.
        batch.shrink_to(limits.buffer_capacity());
        if stopping {
            return;
        }
    }
}

/// When the writer thread ends, by returning or by a panic: writes what
/// came in since its last batch, and lets loggers write for themselves.
struct MarkGone<'a>(&'a Shared, mpsc::Sender<()>);

impl Drop for MarkGone<'_> {
    fn drop(&mut self) {
        let mut pending = self.0.lock_pending();
        pending.writer_gone = true;
        let rest = std::mem::take(&mut pending.bytes);
        // Taken before the pending lock is let go, so that a logger's
        // direct write cannot overtake these lines.
        let mut sink = self.0.lock_sink();
        drop(pending);
        self.0.batch_taken.notify_all();
        let _ = sink.write_all(&rest).and_then(|()| sink.flush());
        drop(sink);
        let _ = self.1.send(());
    }
}

impl Shared {
    fn new(sink: Sink, limits: Limits) -> Self {
        Shared {
            pending: Mutex::new(Pending {
                bytes: Vec::with_capacity(limits.buffer_capacity()),
                stopping: false,
                writer_gone: false,
                waits_for_room: 0,
            }),
            lines_added: Condvar::new(),
            batch_taken: Condvar::new(),
            sink: Mutex::new(sink),
            limits,
        }
    }

    // A panic elsewhere while holding a lock leaves bytes, not broken
    // invariants: carry on with them.
    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        let limits = self.limits;
        let mut pending = self.lock_pending();
        if pending.bytes.len() >= limits.pending_bytes_max && !pending.writer_gone {
            pending.waits_for_room += 1;
            pending = self
                .batch_taken
                .wait_while(pending, |p| {
                    p.bytes.len() >= limits.pending_bytes_max && !p.writer_gone
                })
                .unwrap_or_else(PoisonError::into_inner);
        }
        if pending.writer_gone {
            drop(pending);
            return self.lock_sink().write_all(line);
        }
        let before = pending.bytes.len();
        pending.bytes.extend_from_slice(line);
        let after = pending.bytes.len();
        drop(pending);
        // Wake the writer for the first line of a batch and for a full
        // batch; in between, it sleeps.
        if before == 0 || (before < limits.batch_bytes && after >= limits.batch_bytes) {
            self.lines_added.notify_one();
        }
        Ok(())
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock_pending().stopping = true;
        self.shared.lines_added.notify_one();
        // A sink that never returns must not hold up the exit for good.
        let _ = self.writer_done.recv_timeout(SHUTDOWN_FLUSH_TIMEOUT);
    }
}

/// One event's line: tracing-subscriber formats the whole line, then
/// writes it in one call.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.shared.append(line)?;
        Ok(line.len())
    }

    fn write_all(&mut self, line: &[u8]) -> io::Result<()> {
        self.shared.append(line)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests;
