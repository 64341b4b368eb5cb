//! How an error is shown to a person: its own message, then each cause in
//! turn, `: `-separated. Error types keep their causes as `#[source]` and
//! leave them out of their own message, so each is printed once.

use std::error::Error;
use std::fmt;

/// Displays an error with all its causes.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn causes_follow_the_message_once_each() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = Outer("a.yaml", inner);
        assert_eq!(Chain(&error).to_string(), "reading a.yaml: no such file");
    }
}
