//! The SHOW statements Grafana and InfluxDB clients send to discover databases,
//! measurements, tags and fields. `ON db` is accepted and dropped (MeterDB has one namespace)
//! except on `SHOW RETENTION POLICIES`, whose answer names it.

use super::{ParseError, Parser};
use crate::influxql::ast::{MeasurementName, Page, Source, Statement, TagKeyFilter};
use crate::influxql::lexer::{Keyword, Pos, Tok, Token};

impl Parser<'_> {
    /// After `SHOW` (at `pos`).
    pub(super) fn show(&mut self, pos: Pos) -> Result<Statement, ParseError> {
        let token = self.next()?;
        let keyword = match token.tok {
            Tok::Keyword(kw) => kw,
            _ => return Err(show_expected(&token)),
        };
        match keyword {
            Keyword::Databases => Ok(Statement::ShowDatabases),
            Keyword::Retention => {
                self.expect_keyword(Keyword::Policies)?;
                let database = if self.eat_keyword(Keyword::On)? {
                    Some(self.ident()?)
                } else {
                    None
                };
                Ok(Statement::ShowRetentionPolicies { database })
            }
            Keyword::Measurements => self.show_measurements(),
            Keyword::Tag => {
                let token = self.next()?;
                match token.tok {
                    Tok::Keyword(Keyword::Keys) => self.show_tag_keys(),
                    Tok::Keyword(Keyword::Values) => {
                        let next = &self.peek()?.tok;
                        if matches!(next, Tok::Keyword(Keyword::Cardinality | Keyword::Exact)) {
                            return Err(self.unsupported_statement(vec!["SHOW TAG VALUES"], pos));
                        }
                        self.show_tag_values()
                    }
                    Tok::Keyword(Keyword::Key) => {
                        Err(self.unsupported_statement(vec!["SHOW TAG KEY"], pos))
                    }
                    _ => Err(ParseError::expected(&token, &["KEY", "KEYS", "VALUES"])),
                }
            }
            Keyword::Field => {
                let token = self.next()?;
                match token.tok {
                    Tok::Keyword(Keyword::Keys) => self.show_field_keys(),
                    Tok::Keyword(Keyword::Key) => {
                        Err(self.unsupported_statement(vec!["SHOW FIELD KEY"], pos))
                    }
                    _ => Err(ParseError::expected(&token, &["KEY", "KEYS"])),
                }
            }
            Keyword::Continuous
            | Keyword::Diagnostics
            | Keyword::Grants
            | Keyword::Measurement
            | Keyword::Queries
            | Keyword::Series
            | Keyword::Shard
            | Keyword::Shards
            | Keyword::Stats
            | Keyword::Subscriptions
            | Keyword::Users => {
                Err(self.unsupported_statement(vec!["SHOW", keyword.as_str()], pos))
            }
            _ => Err(show_expected(&token)),
        }
    }

    /// `ON db`, accepted and dropped: MeterDB has one namespace.
    fn skip_on_database(&mut self) -> Result<(), ParseError> {
        if self.eat_keyword(Keyword::On)? {
            self.ident()?;
        }
        Ok(())
    }

    fn optional_from(&mut self) -> Result<Vec<MeasurementName>, ParseError> {
        if !self.eat_keyword(Keyword::From)? {
            return Ok(Vec::new());
        }
        let sources = self.sources(false)?;
        Ok(sources
            .into_iter()
            .filter_map(|s| match s {
                Source::Measurement(m) => Some(m),
                Source::Subquery(_) => None,
            })
            .collect())
    }

    /// The `ORDER BY` and series paging InfluxDB allows on SHOW statements; MeterDB does not.
    fn show_page(&mut self, statement: &str) -> Result<Page, ParseError> {
        self.reject_clause(Keyword::Order, &format!("ORDER BY in {statement}"))?;
        let page = self.page(Keyword::Limit, Keyword::Offset)?;
        self.reject_clause(Keyword::Slimit, &format!("SLIMIT in {statement}"))?;
        self.reject_clause(Keyword::Soffset, &format!("SOFFSET in {statement}"))?;
        Ok(page)
    }

    fn show_measurements(&mut self) -> Result<Statement, ParseError> {
        self.skip_on_database()?;
        let source = if self.eat_keyword(Keyword::With)? {
            self.expect_keyword(Keyword::Measurement)?;
            let token = self.next()?;
            if !matches!(token.tok, Tok::Eq | Tok::EqRegex) {
                return Err(ParseError::expected(&token, &["=", "=~"]));
            }
            match self.regex_ahead()? {
                Some((pattern, _)) => Some(MeasurementName::Regex(pattern)),
                None => Some(self.measurement_name()?),
            }
        } else {
            None
        };
        let condition = self.optional_condition()?;
        let page = self.show_page("SHOW MEASUREMENTS")?;
        Ok(Statement::ShowMeasurements {
            source,
            condition,
            page,
        })
    }

    fn show_tag_keys(&mut self) -> Result<Statement, ParseError> {
        self.skip_on_database()?;
        let sources = self.optional_from()?;
        let condition = self.optional_condition()?;
        let page = self.show_page("SHOW TAG KEYS")?;
        Ok(Statement::ShowTagKeys {
            sources,
            condition,
            page,
        })
    }

    fn show_tag_values(&mut self) -> Result<Statement, ParseError> {
        self.skip_on_database()?;
        let sources = self.optional_from()?;
        self.expect_keyword(Keyword::With)?;
        self.expect_keyword(Keyword::Key)?;
        let token = self.next()?;
        let keys = match token.tok {
            Tok::Eq => TagKeyFilter::Eq(self.ident()?),
            Tok::NotEq => TagKeyFilter::NotEq(self.ident()?),
            Tok::EqRegex => TagKeyFilter::Regex(self.regex_required()?),
            Tok::NotEqRegex => TagKeyFilter::NotRegex(self.regex_required()?),
            Tok::Keyword(Keyword::In) => {
                self.expect(&Tok::LParen)?;
                let keys = self.ident_list()?;
                self.expect(&Tok::RParen)?;
                TagKeyFilter::In(keys)
            }
            _ => return Err(ParseError::expected(&token, &["IN", "=", "=~"])),
        };
        let condition = self.optional_condition()?;
        let page = self.show_page("SHOW TAG VALUES")?;
        Ok(Statement::ShowTagValues {
            sources,
            keys,
            condition,
            page,
        })
    }

    fn show_field_keys(&mut self) -> Result<Statement, ParseError> {
        self.skip_on_database()?;
        let sources = self.optional_from()?;
        let page = self.show_page("SHOW FIELD KEYS")?;
        Ok(Statement::ShowFieldKeys { sources, page })
    }
}

fn show_expected(found: &Token) -> ParseError {
    ParseError::expected(
        found,
        &[
            "CONTINUOUS",
            "DATABASES",
            "DIAGNOSTICS",
            "FIELD",
            "GRANTS",
            "MEASUREMENT",
            "MEASUREMENTS",
            "QUERIES",
            "RETENTION",
            "SERIES",
            "SHARD",
            "SHARDS",
            "STATS",
            "SUBSCRIPTIONS",
            "TAG",
            "USERS",
        ],
    )
}
