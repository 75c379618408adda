//! A third-party decoder's panic on a damaged file, turned into an error.
//!
//! Some decoders assert on what they read instead of returning an error (the parquet crate's
//! `assert!(size <= src.len())` on a dictionary page shorter than it says). saectl promises
//! one readable line and a non-zero exit for bad input, never a panic, so such calls run
//! inside [`catch`]: the panic is caught, its message becomes the error, and the default hook
//! is kept from printing it (for the calling thread only, and only during the call; any other
//! panic still prints and unwinds as usual).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set on a thread while it runs a [`catch`]: its panics are not printed.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f`; a panic inside it becomes `Err(its message)`. `f` must leave nothing half-done
/// that is used afterwards (callers drop the reader that panicked).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = CATCHING.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(catch(|| 7), Ok(7));
        let size = 9;
        let err = catch(|| -> u32 { panic!("size {size} > 4") }).unwrap_err();
        assert_eq!(err, "size 9 > 4");
        assert_eq!(catch(|| -> u32 { panic!("plain") }).unwrap_err(), "plain");
        // The flag is restored: a later panic outside `catch` still unwinds to its caller.
        assert!(std::panic::catch_unwind(|| panic!("outside")).is_err());
    }
}
