//! `SELECT`: raw rows, aggregates, `GROUP BY time` and tags, fill, subqueries, top/bottom.

use super::ast::SelectStatement;
use super::{QueryError, QueryOptions, Series};
use crate::Engine;

/// Runs a `SELECT`.
pub fn execute(
    _engine: &Engine,
    _statement: &SelectStatement,
    _options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    Err(QueryError::Unsupported("SELECT (being written)".into()))
}
