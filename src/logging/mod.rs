//! Logging: tracing with an `EnvFilter` (`RUST_LOG`, `info` by default),
//! written to stderr in batches by a background thread (`batched.rs`), so
//! that a review never waits on a write.
//!
//! `json` writes one object per line, with the event's fields at the top
//! level: `{"timestamp":…,"level":…,"message":…,<fields>,"target":…}` and,
//! inside spans, `"spans":[names, outermost first]`. The formatter and the
//! writer are our own because a paired load run says they pay for
//! themselves on the admission path (docs/performance.md has the figures).

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use crate::json_text::{self, Escaped};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub use batched::FlushGuard;

mod batched;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the global subscriber. Keep the guard until exit: dropping it
/// writes the lines still pending.
pub fn init(format: LogFormat) -> std::io::Result<FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = batched::spawn(std::io::stderr())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.event_format(JsonLines).init(),
    }
    Ok(guard)
}

/// Formats each event as one JSON object on one line.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        write_rfc3339_micros(&mut writer, time::OffsetDateTime::now_utc())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(metadata.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = JsonFields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        if let Some(scope) = ctx.event_scope() {
            writer.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                if i > 0 {
                    writer.write_char(',')?;
                }
                json_text::write_str(&mut writer, span.name())?;
            }
            writer.write_char(']')?;
        }
        writer.write_str(",\"target\":")?;
        json_text::write_str(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`; the first error is kept.
struct JsonFields<'w, 'a> {
    out: &'w mut Writer<'a>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.out.write_str(",\"")?;
            Escaped(&mut *self.out).write_str(field.name())?;
            self.out.write_str("\":")?;
            value(self.out)
        })();
    }

    fn integer(&mut self, field: &Field, value: impl itoa::Integer) {
        self.field(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    /// A string formatted on the fly, escaped as it is written.
    fn quoted(&mut self, field: &Field, text: fmt::Arguments<'_>) {
        self.field(field, |out| {
            out.write_char('"')?;
            Escaped(&mut *out).write_fmt(text)?;
            out.write_char('"')
        });
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |out| json_text::write_str(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.integer(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.integer(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.integer(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.integer(field, value);
    }

    /// JSON has no NaN or infinity; those are written as strings.
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, |out| write!(out, "{value}"));
        } else {
            self.field(field, |out| write!(out, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.quoted(field, format_args!("{value}"));
    }

    /// `%value`, `?value` and the message all arrive here.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.quoted(field, format_args!("{value:?}"));
    }
}

/// `2026-11-24T06:42:01.693427Z`: RFC 3339 in UTC with microseconds, as
/// tracing-subscriber writes its timestamps.
fn write_rfc3339_micros(out: &mut impl fmt::Write, at: time::OffsetDateTime) -> fmt::Result {
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |start: usize, width: usize, mut value: u32| {
        for digit in text[start..start + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, at.year().clamp(0, 9999) as u32);
    put(5, 2, u8::from(at.month()).into());
    put(8, 2, at.day().into());
    put(11, 2, at.hour().into());
    put(14, 2, at.minute().into());
    put(17, 2, at.second().into());
    put(20, 6, at.microsecond());
    out.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// The lines `log` writes through `JsonLines`, each parsed as JSON.
    fn json_lines(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(captured.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("UTF-8");
        assert!(
            text.ends_with('\n'),
            "each line ends with a newline: {text:?}"
        );
        text.lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"))
            })
            .collect()
    }

    #[test]
    fn every_kind_of_field_is_written_as_json() {
        let error = io::Error::other("disk \"full\"");
        let lines = json_lines(|| {
            tracing::info!(
                text = "plain",
                flag = true,
                count = 7u64,
                delta = -3i64,
                big = 1u128 << 70,
                ratio = 0.5,
                not_a_number = f64::NAN,
                shown = %"a\tb",
                debugged = ?vec!["x"],
                error = &error as &(dyn std::error::Error + 'static),
                "reviewed {}", 1
            );
        });
        let [line] = lines.as_slice() else {
            panic!("one line: {lines:?}")
        };
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "reviewed 1");
        assert_eq!(line["text"], "plain");
        assert_eq!(line["flag"], true);
        assert_eq!(line["count"], 7);
        assert_eq!(line["delta"], -3);
        assert_eq!(line["big"].as_f64(), Some(2f64.powi(70)));
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["not_a_number"], "NaN");
        assert_eq!(line["shown"], "a\tb");
        assert_eq!(line["debugged"], "[\"x\"]");
        assert_eq!(line["error"], "disk \"full\"");
        assert_eq!(line["target"], module_path!());
        let timestamp = line["timestamp"].as_str().expect("timestamp");
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "RFC 3339: {timestamp}"
        );
        assert!(line.get("spans").is_none(), "no spans outside a span");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut text = String::new();
        let at = time::Date::from_calendar_date(2026, time::Month::February, 3)
            .and_then(|date| date.with_hms_micro(4, 5, 6, 789))
            .expect("a valid date")
            .assume_utc();
        write_rfc3339_micros(&mut text, at).expect("written");
        assert_eq!(text, "2026-02-03T04:05:06.000789Z");
    }

    #[test]
    fn any_string_survives_the_round_trip() {
        let nasty: String = (0u8..0x80).map(char::from).collect::<String>() + "é€😀\u{2028}";
        let lines = json_lines(|| {
            tracing::warn!(value = nasty.as_str(), shown = %nasty, "{nasty}");
        });
        assert_eq!(lines[0]["value"], nasty.as_str());
        assert_eq!(lines[0]["shown"], nasty.as_str());
        assert_eq!(lines[0]["message"], nasty.as_str());
    }

    #[test]
    fn spans_are_named_outermost_first() {
        let lines = json_lines(|| {
            let outer = tracing::info_span!("connection");
            let _outer = outer.enter();
            let inner = tracing::debug_span!("request");
            let _inner = inner.enter();
            tracing::debug!("inside");
        });
        assert_eq!(
            lines[0]["spans"],
            serde_json::json!(["connection", "request"])
        );
    }
}
