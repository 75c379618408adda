//! Long texts in windows: the model reads at most `size` tokens at a time, and each window
//! after the first re-reads `context` tokens before its own so that no reported token is read
//! with less than `context` tokens of left context (or all of them, near the start).
//!
//! Window `i` reports the positions `report_from..end` and runs `start..end`, where `start =
//! report_from − context` for every window but the first (which starts at 0 and reports from
//! 0). Every position is reported exactly once, in order. Only the first window begins with the
//! BOS; the others begin mid-text, as the packed windows that `collect` reads do.

use anyhow::{bail, Result};

/// One forward pass over `tokens[start..end]`, of which `report_from..end` are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub report_from: usize,
    pub end: usize,
}

/// The windows covering `len` tokens, each at most `size` long, with `context` tokens re-read.
pub fn plan_windows(len: usize, size: usize, context: usize) -> Result<Vec<Window>> {
    if size == 0 || context >= size {
        bail!("a window of {size} tokens cannot re-read {context} tokens of context");
    }
    let mut windows = Vec::new();
    let mut report_from = 0;
    while report_from < len {
        let start = report_from.saturating_sub(context);
        let end = (start + size).min(len);
        windows.push(Window {
            start,
            report_from,
            end,
        });
        report_from = end;
    }
    Ok(windows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_position_is_reported_once_with_its_context() {
        for (len, size, context) in [
            (0, 4, 1),
            (3, 4, 1),
            (4, 4, 1),
            (10, 4, 1),
            (100, 16, 4),
            (17, 5, 0),
        ] {
            let windows = plan_windows(len, size, context).unwrap();
            let reported: Vec<usize> = windows.iter().flat_map(|w| w.report_from..w.end).collect();
            assert_eq!(
                reported,
                (0..len).collect::<Vec<_>>(),
                "{len} {size} {context}"
            );
            for (i, w) in windows.iter().enumerate() {
                assert!(w.end - w.start <= size && w.report_from < w.end);
                let expected_context = if i == 0 {
                    0
                } else {
                    context.min(w.report_from)
                };
                assert_eq!(w.report_from - w.start, expected_context);
            }
        }
        assert_eq!(
            plan_windows(10, 4, 1).unwrap(),
            [
                Window {
                    start: 0,
                    report_from: 0,
                    end: 4
                },
                Window {
                    start: 3,
                    report_from: 4,
                    end: 7
                },
                Window {
                    start: 6,
                    report_from: 7,
                    end: 10
                },
            ]
        );
    }

    #[test]
    fn the_context_must_leave_room_for_new_tokens() {
        assert!(plan_windows(10, 4, 4).is_err());
        assert!(plan_windows(10, 0, 0).is_err());
    }
}
