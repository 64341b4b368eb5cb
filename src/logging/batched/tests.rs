//! The batched writer under threads, stalls, panics and shutdown.
use super::*;
use std::time::Instant;

/// A sink the test can read, and hold shut.
#[derive(Clone, Default)]
struct TestSink {
    written: Arc<Mutex<Vec<u8>>>,
    gate: Arc<(Mutex<bool>, Condvar)>,
    writes_begun: Arc<std::sync::atomic::AtomicUsize>,
}

impl TestSink {
    fn text(&self) -> String {
        String::from_utf8(self.written.lock().expect("lock").clone()).expect("UTF-8")
    }

    fn set_open(&self, open: bool) {
        let (lock, condvar) = &*self.gate;
        *lock.lock().expect("lock") = !open;
        condvar.notify_all();
    }
}

impl Write for TestSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes_begun
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (lock, condvar) = &*self.gate;
        let _open = condvar
            .wait_while(lock.lock().expect("lock"), |shut| *shut)
            .expect("lock");
        self.written.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn limits(interval: Duration) -> Limits {
    Limits {
        interval,
        batch_bytes: 256,
        pending_bytes_max: 1024,
    }
}

fn started(interval: Duration) -> (TestSink, BatchedWriter, FlushGuard) {
    let sink = TestSink::default();
    let (writer, guard) = spawn_with(Box::new(sink.clone()), limits(interval)).expect("spawn");
    (sink, writer, guard)
}

/// `line 000\n` to `line {count-1}\n`: 9 bytes each.
fn numbered_lines(count: usize) -> impl Iterator<Item = String> {
    (0..count).map(|n| format!("line {n:03}\n"))
}

fn log(writer: &BatchedWriter, line: &str) {
    writer
        .make_writer()
        .write_all(line.as_bytes())
        .expect("logged");
}

/// Polls until `done` holds; panics with `what` after a generous bound.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn lines_from_many_threads_arrive_whole_and_in_order() {
    let (sink, writer, guard) = started(Duration::from_secs(3600));
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let writer = writer.clone();
            scope.spawn(move || {
                for n in 0..500 {
                    log(&writer, &format!("thread {thread} line {n}\n"));
                }
            });
        }
    });
    drop(guard);
    let text = sink.text();
    assert_eq!(text.lines().count(), 2000, "every line is written");
    for thread in 0..4 {
        let prefix = format!("thread {thread} line ");
        let numbers: Vec<usize> = text
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(|n| n.parse().expect("a whole line"))
            .collect();
        assert_eq!(numbers, (0..500).collect::<Vec<_>>(), "thread {thread}");
    }
}

#[test]
fn a_lone_line_is_written_after_the_interval_without_shutdown() {
    let (sink, writer, _guard) = started(Duration::from_millis(5));
    log(&writer, "ready\n");
    eventually("the line reaches the sink", || sink.text() == "ready\n");
}

#[test]
fn a_full_batch_is_written_before_the_interval() {
    let (sink, writer, _guard) = started(Duration::from_secs(3600));
    let line = format!("{}\n", "x".repeat(299));
    log(&writer, &line);
    eventually("the full batch reaches the sink", || sink.text() == line);
}

#[test]
fn a_stalled_sink_makes_loggers_wait_and_loses_nothing() {
    let (sink, writer, guard) = started(Duration::from_millis(1));
    sink.set_open(false);
    log(&writer, "first\n");
    eventually("the writer is stuck in the sink", || {
        sink.writes_begun.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    let shared = Arc::clone(&writer.shared);
    // 1,800 bytes: more than the buffer holds while the sink is stuck.
    let logger = std::thread::spawn(move || {
        for line in numbered_lines(200) {
            log(&writer, &line);
        }
    });
    eventually("a logger waits for room", || {
        shared.lock_pending().waits_for_room > 0
    });
    let pending = shared.lock_pending().bytes.len();
    assert!(
        pending <= 1024 + 9,
        "the buffer stops at its bound: {pending}"
    );
    assert!(!logger.is_finished(), "the logger is waiting");
    sink.set_open(true);
    logger.join().expect("logger");
    drop(guard);
    let expected: String = numbered_lines(200).collect();
    assert_eq!(sink.text(), format!("first\n{expected}"));
}

#[test]
fn lines_that_come_in_as_the_writer_ends_are_written() {
    let sink = TestSink::default();
    let shared = Shared::new(Box::new(sink.clone()), limits(Duration::from_secs(3600)));
    shared.append(b"late\n").expect("appended");
    drop(MarkGone(&shared, mpsc::channel().0));
    assert_eq!(sink.text(), "late\n");
    shared.append(b"direct\n").expect("written");
    assert_eq!(sink.text(), "late\ndirect\n");
}

#[test]
fn a_panic_in_the_sink_leaves_no_logger_waiting() {
    /// Panics on its first write, then works.
    struct PanicsOnce(TestSink, bool);
    impl Write for PanicsOnce {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !std::mem::replace(&mut self.1, true) {
                panic!("the sink broke");
            }
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let sink = TestSink::default();
    let (writer, guard) = spawn_with(
        Box::new(PanicsOnce(sink.clone(), false)),
        limits(Duration::from_millis(1)),
    )
    .expect("spawn");
    log(&writer, "lost with the panic\n");
    eventually("the writer thread ends", || {
        writer.shared.lock_pending().writer_gone
    });
    // More than the buffer holds, with nobody left to empty it.
    let logger = std::thread::spawn(move || {
        for line in numbered_lines(200) {
            log(&writer, &line);
        }
    });
    eventually("the logger finishes", || logger.is_finished());
    drop(guard);
    let expected: String = numbered_lines(200).collect();
    assert_eq!(sink.text(), expected);
}

#[test]
fn after_shutdown_lines_are_written_directly() {
    let (sink, writer, guard) = started(Duration::from_secs(3600));
    log(&writer, "before\n");
    drop(guard);
    log(&writer, "after\n");
    assert_eq!(sink.text(), "before\nafter\n");
}
