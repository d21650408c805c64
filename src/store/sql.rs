//! Small helpers for writing SQL text: quoting literals and identifiers,
//! moving instants in and out of DuckDB without its ICU extension, and
//! counting rows.

use super::error::{QueryContext, StoreError};
use chrono::{DateTime, Utc};
use duckdb::Connection;

/// The one number a `SELECT count(*) …` answers.
pub(super) fn count_rows(conn: &Connection, sql: &str) -> Result<i64, StoreError> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .doing("counting rows")
}

/// Quotes a string as an SQL literal.
pub(super) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes a string as an SQL identifier.
pub(super) fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Formats an instant for a `CAST(? AS TIMESTAMPTZ)` that reads the same
/// with or without DuckDB's ICU extension.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

/// An instant from `epoch_us(…)`.
pub(super) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).expect("DuckDB timestamps are in chrono's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(lit("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn instants_round_trip_through_micros() {
        let t = from_micros(1_735_787_045_678_123);
        assert_eq!(ts(t), "2025-01-02 03:04:05.678123+00");
    }
}
