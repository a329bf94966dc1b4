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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    /// How much time and memory the query may spend.
    pub budget: QueryBudget,
}

/// How much one query may spend. Time: a deadline checked between units of work (before
/// each buffer or segment is scanned, between batches while aggregating, between series
/// while answering), so that a runaway query stops burning CPU instead of running on after
/// its client got an error. Memory: the rows a statement returns and the series × time
/// buckets an aggregate holds (one state per function each).
#[derive(Clone, Debug)]
pub struct QueryBudget {
    /// Stop at this instant; `None`: no deadline.
    pub deadline: Option<Instant>,
    /// The time budget the deadline was set from, named in the error.
    pub timeout: Duration,
    /// Set when the query's client went away: stop as at the deadline.
    pub cancelled: Option<Arc<AtomicBool>>,
    /// Most rows one statement may return. Default [`QueryBudget::DEFAULT_MAX_ROWS`].
    pub max_rows: usize,
    /// Most series × time buckets one aggregate statement may hold. Default
    /// [`QueryBudget::DEFAULT_MAX_CELLS`].
    pub max_cells: usize,
    /// Most stored rows one scan may read into memory (a scan holds what it reads until the
    /// statement is answered). Default [`QueryBudget::DEFAULT_MAX_SCAN_ROWS`].
    pub max_scan_rows: usize,
}

impl QueryBudget {
    /// Default of [`QueryBudget::max_rows`]: 2,000,000 rows.
    pub const DEFAULT_MAX_ROWS: usize = 2_000_000;
    /// Default of [`QueryBudget::max_cells`]: 5,000,000 cells.
    pub const DEFAULT_MAX_CELLS: usize = 5_000_000;
    /// Default of [`QueryBudget::max_scan_rows`]: 20,000,000 rows (about 1-2 GiB of columns).
    pub const DEFAULT_MAX_SCAN_ROWS: usize = 20_000_000;

    /// A budget of `timeout` from now, with the default memory budget.
    pub fn with_timeout(timeout: Duration) -> QueryBudget {
        QueryBudget {
            deadline: Instant::now().checked_add(timeout),
            timeout,
            ..QueryBudget::default()
        }
    }

    /// [`QueryBudget::check`], and `Err` once the batches a scan has read hold more than
    /// `max_scan_rows` rows.
    pub fn check_scan(&self, read: &[crate::ColumnBatch]) -> Result<(), QueryError> {
        self.check()?;
        let rows: usize = read.iter().map(crate::ColumnBatch::len).sum();
        if rows > self.max_scan_rows {
            return Err(QueryError::Invalid(format!(
                "the query reads more than {} stored rows (query_max_scan_rows): narrow the \
                 time range, filter on tags, or aggregate over a smaller set",
                self.max_scan_rows
            )));
        }
        Ok(())
    }

    /// `Err` once the deadline has passed or the client went away.
    pub fn check(&self) -> Result<(), QueryError> {
        if self
            .cancelled
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(QueryError::Cancelled);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(QueryError::Timeout(self.timeout)),
            _ => Ok(()),
        }
    }
}

impl Default for QueryBudget {
    /// No deadline, the default memory budget.
    fn default() -> QueryBudget {
        QueryBudget {
            deadline: None,
            timeout: Duration::MAX,
            cancelled: None,
            max_rows: QueryBudget::DEFAULT_MAX_ROWS,
            max_cells: QueryBudget::DEFAULT_MAX_CELLS,
            max_scan_rows: QueryBudget::DEFAULT_MAX_SCAN_ROWS,
        }
    }
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
    /// The query ran past its time budget ([`QueryBudget::timeout`]) and was stopped.
    #[error(
        "query timeout: stopped after its time budget of {0:?} (query_timeout_secs): narrow \
         the time range, filter on tags or use a larger GROUP BY time interval"
    )]
    Timeout(Duration),
    /// The query's client went away and the query was stopped.
    #[error("query cancelled: the client went away")]
    Cancelled,
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
