//! `SHOW DATABASES | RETENTION POLICIES | MEASUREMENTS | TAG KEYS | TAG VALUES | FIELD KEYS`:
//! what Grafana's query editor asks.

use super::ast::Statement;
use super::{QueryError, QueryOptions, Series};
use crate::Engine;

/// Runs a `SHOW` statement.
pub fn execute(
    _engine: &Engine,
    _statement: &Statement,
    _options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    Err(QueryError::Unsupported("SHOW (being written)".into()))
}
