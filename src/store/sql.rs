//! Small helpers for writing SQL text: quoting literals and identifiers,
//! moving instants in and out of DuckDB without its ICU extension,
//! staging rows and counting rows.

use super::error::{QueryContext, StoreError};
use chrono::{DateTime, Utc};
use duckdb::Connection;

/// Appends rows to a staging table with the Appender: `append` is given
/// it and appends each row. A `VALUES` list would cost DuckDB about 15 µs a
/// value to parse and bind (issue 23); the Appender costs about the rows.
pub(super) fn stage_rows(
    conn: &Connection,
    table: &str,
    doing: &'static str,
    append: impl FnOnce(&mut duckdb::Appender<'_>) -> Result<(), duckdb::Error>,
) -> Result<(), StoreError> {
    let mut rows = conn.appender(table).doing(doing)?;
    append(&mut rows).doing(doing)?;
    rows.flush().doing(doing)
}

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

/// Formats an instant as text that reads the same with or without DuckDB's
/// ICU extension. Bind it as `CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)`:
/// given a bare `CAST(? AS TIMESTAMPTZ)`, DuckDB types the parameter
/// TIMESTAMPTZ, and a prepared statement handed text for it is bound again
/// on every execution, doubling its cost (issue 23; a test keeps the bare
/// form out of `store/`).
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

    /// Issue 23: no statement binds text straight to a TIMESTAMPTZ
    /// parameter (see `ts`).
    #[test]
    fn issue_23_no_statement_casts_a_bare_parameter_to_timestamptz() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let bare = bare_timestamptz_parameter;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            // This file states the rule, and tests it below.
            if path.ends_with("sql.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                bare(&text).is_none(),
                "{}: {:?}",
                path.display(),
                bare(&text)
            );
        }
        assert!(bare("x CAST(?3 AS TIMESTAMPTZ)").is_some());
        assert!(bare("CAST(CAST(? AS VARCHAR) AS TIMESTAMPTZ)").is_none());
    }

    /// The first `CAST(<parameter> AS TIMESTAMPTZ)` in `text`, if any.
    fn bare_timestamptz_parameter(text: &str) -> Option<&str> {
        text.match_indices("CAST(").find_map(|(i, _)| {
            let rest = &text[i + 5..];
            let param = rest.split(' ').next()?;
            let is_param = param.starts_with('?') || param.starts_with('$');
            (is_param && rest[param.len()..].starts_with(" AS TIMESTAMPTZ)"))
                .then(|| &text[i..i + 5 + param.len() + 16])
        })
    }

    #[test]
    fn instants_round_trip_through_micros() {
        let t = from_micros(1_735_787_045_678_123);
        assert_eq!(ts(t), "2025-01-02 03:04:05.678123+00");
    }
}
