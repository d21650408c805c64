//! Collecting configuration problems: every check reports into a
//! [`Collector`] and carries on, so the user sees every problem at once,
//! each with its key and the fix.

use super::Problem;
use std::time::Duration;

/// Collects problems; every `push` returns `None` so it can end a match arm.
#[derive(Default)]
pub(super) struct Collector(pub(super) Vec<Problem>);

impl Collector {
    pub(super) fn push<T>(&mut self, key: &str, message: String) -> Option<T> {
        self.0.push(Problem {
            key: key.to_owned(),
            message,
        });
        None
    }

    /// A humantime duration, or `default` when unset.
    pub(super) fn duration(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> Option<Duration> {
        let text = value.unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => self.push(
                key,
                format!("{text:?} is not a duration ({e}); write e.g. \"90s\", \"15m\", \"6d\""),
            ),
        }
    }

    /// `d` (a duration read for `key`) if it is longer than zero; `example`
    /// names a good value in the message otherwise.
    pub(super) fn nonzero(
        &mut self,
        key: &str,
        d: Option<Duration>,
        example: &str,
    ) -> Option<Duration> {
        match d {
            Some(d) if d.is_zero() => {
                self.push(key, format!("must be longer than zero, e.g. \"{example}\""))
            }
            other => other,
        }
    }

    /// An integer within `[min, max]`, or `default` when unset (or, after a
    /// reported problem, so that later checks still have a value).
    pub(super) fn int_in(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            self.push::<()>(
                key,
                format!("{v} is out of range; use a value from {min} to {max}"),
            );
            default
        } else {
            v
        }
    }

    /// A size such as "64MiB", "512KiB", "1GiB" or a number of bytes, at
    /// least `min` bytes; `default` when unset.
    pub(super) fn byte_size(
        &mut self,
        key: &str,
        value: Option<&str>,
        (default, min): (&str, u64),
    ) -> Option<u64> {
        let text = value.unwrap_or(default).trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let factor: Option<u64> = match unit.trim() {
            "" | "B" => Some(1),
            "KiB" => Some(1 << 10),
            "MiB" => Some(1 << 20),
            "GiB" => Some(1 << 30),
            _ => None,
        };
        match (digits.parse::<u64>().ok(), factor) {
            (Some(n), Some(f)) if n.saturating_mul(f) >= min => Some(n.saturating_mul(f)),
            _ => self.push(
                key,
                format!(
                    "{text:?} is not a size of at least {}; write e.g. {default:?} (units: B, KiB, MiB, GiB)",
                    human_bytes(min)
                ),
            ),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `n` bytes in the largest binary unit that divides it.
fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}
