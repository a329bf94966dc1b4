//! InfluxQL, the query language of `/query`: [`ast`] is the syntax tree, `parser` reads text
//! into it, [`select`] and [`show`] execute statements against an [`Engine`], and [`response`]
//! is the answer in InfluxDB 1.x's JSON shape.

pub mod ast;
mod display;
mod lexer;
mod parser;
pub mod response;
pub mod select;
pub mod show;

use crate::Engine;
use crate::model::TenantId;
pub use display::{quote_ident, quote_string};
pub use parser::{MAX_EXPR_DEPTH, MAX_NESTING, ParseError, parse_query};
pub use response::{QueryResponse, Series, StatementResult, Value};

/// What a query runs with besides its text.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    /// `now()` in ns since the epoch (the server's clock, fixed for the whole query).
    pub now: i64,
    /// When set, every statement sees only this tenant's data (tenant-scoped access).
    pub tenant: Option<TenantId>,
    /// The `db` parameter; accepted and ignored (MeterDB has one namespace).
    pub database: Option<String>,
}

/// Why a statement could not be answered; its text goes into the statement's `"error"`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// Valid InfluxQL that MeterDB does not answer (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A statement that cannot be answered as written (wrong argument, mixed aggregates...).
    #[error("{0}")]
    Invalid(String),
    /// The engine failed.
    #[error("{0}")]
    Engine(String),
}

impl From<crate::Error> for QueryError {
    fn from(e: crate::Error) -> QueryError {
        QueryError::Engine(e.to_string())
    }
}

/// Executes one parsed statement.
pub fn execute(
    engine: &Engine,
    statement: &ast::Statement,
    options: &QueryOptions,
) -> Result<Vec<Series>, QueryError> {
    match statement {
        ast::Statement::Select(s) => select::execute(engine, s, options),
        ast::Statement::CreateDatabase { .. } => Ok(Vec::new()),
        other => show::execute(engine, other, options),
    }
}

/// Runs every statement of an already-parsed query, each into its own result.
pub fn execute_all(
    engine: &Engine,
    statements: &[ast::Statement],
    options: &QueryOptions,
) -> QueryResponse {
    let results = statements
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let timezone = match st {
                ast::Statement::Select(s) => s.timezone.as_deref().and_then(|z| z.parse().ok()),
                _ => None,
            };
            match execute(engine, st, options) {
                Ok(series) => StatementResult {
                    statement_id: i,
                    series,
                    error: None,
                    timezone,
                },
                Err(e) => StatementResult {
                    statement_id: i,
                    error: Some(e.to_string()),
                    ..StatementResult::default()
                },
            }
        })
        .collect();
    QueryResponse {
        results,
        error: None,
    }
}
