//! Turning panics inside user or block code into errors, so one bad module cannot stop a run.

use crate::error::{Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, converting a panic into [`Error::Panicked`] with the panic message.
pub fn catch<T>(context: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        Error::Panicked { context: context.to_string(), message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_errors() {
        assert_eq!(catch("ok", || 3).unwrap(), 3);
        let err = catch("boom", || -> i32 { panic!("kaput {}", 1) }).unwrap_err();
        assert_eq!(err.to_string(), "boom: panicked: kaput 1");
    }
}
