//! Expressions and `SELECT` fields: precedence climbing over InfluxQL's five binary levels
//! (`OR` < `AND` < comparisons < `+ -` < `* / %`, all left-associative), which builds the same
//! trees as InfluxDB's parser, including its unary-minus rules.

use super::{MAX_EXPR_DEPTH, ParseError, Parser};
use crate::influxql::ast::{BinaryOp, Expr, Field, Literal};
use crate::influxql::lexer::{Keyword, Pos, Tok, parse_duration};

/// An expression and the depth of its tree, so that depth is checked as the tree grows
/// instead of by a walk that could itself recurse too deep.
pub(super) struct Parsed {
    pub(super) expr: Expr,
    depth: u32,
}

impl Parsed {
    fn leaf(expr: Expr) -> Parsed {
        Parsed { expr, depth: 1 }
    }

    /// Wraps children into a node one level deeper.
    fn node(expr: Expr, child_depth: u32, pos: Pos) -> Result<Parsed, ParseError> {
        let depth = child_depth.saturating_add(1);
        if depth > MAX_EXPR_DEPTH {
            return Err(ParseError::new(
                format!("expression too deep (more than {MAX_EXPR_DEPTH} levels)"),
                pos,
            ));
        }
        Ok(Parsed { expr, depth })
    }
}

fn binary_op(tok: &Tok) -> Option<BinaryOp> {
    Some(match tok {
        Tok::Keyword(Keyword::Or) => BinaryOp::Or,
        Tok::Keyword(Keyword::And) => BinaryOp::And,
        Tok::Eq => BinaryOp::Eq,
        Tok::NotEq => BinaryOp::NotEq,
        Tok::Lt => BinaryOp::Lt,
        Tok::LtEq => BinaryOp::LtEq,
        Tok::Gt => BinaryOp::Gt,
        Tok::GtEq => BinaryOp::GtEq,
        Tok::EqRegex => BinaryOp::EqRegex,
        Tok::NotEqRegex => BinaryOp::NotEqRegex,
        Tok::Plus => BinaryOp::Add,
        Tok::Minus => BinaryOp::Sub,
        Tok::Star => BinaryOp::Mul,
        Tok::Slash => BinaryOp::Div,
        Tok::Percent => BinaryOp::Mod,
        _ => return None,
    })
}

/// Binding strength, 1 (loosest) to 5, as in InfluxDB.
pub(crate) fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And => 2,
        BinaryOp::Eq
        | BinaryOp::NotEq
        | BinaryOp::Lt
        | BinaryOp::LtEq
        | BinaryOp::Gt
        | BinaryOp::GtEq
        | BinaryOp::EqRegex
        | BinaryOp::NotEqRegex => 3,
        BinaryOp::Add | BinaryOp::Sub => 4,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
    }
}

/// The cast names InfluxQL accepts after `::`.
const CASTS: &[&str] = &[
    "float", "integer", "unsigned", "string", "boolean", "field", "tag",
];

impl Parser<'_> {
    /// A full expression.
    pub(super) fn expr(&mut self) -> Result<Expr, ParseError> {
        Ok(self.binary(1, None)?.expr)
    }

    /// Operators binding at least as tight as `min_precedence`, starting from `first` when the
    /// left operand is already read.
    fn binary(&mut self, min_precedence: u8, first: Option<Parsed>) -> Result<Parsed, ParseError> {
        let mut lhs = match first {
            Some(parsed) => parsed,
            None => self.unary()?,
        };
        loop {
            let token = self.peek()?;
            if let Tok::Bitwise(c) = token.tok {
                return Err(ParseError::unsupported(
                    format!("bitwise operator {c}"),
                    token.pos,
                ));
            }
            let Some(op) = binary_op(&token.tok) else {
                return Ok(lhs);
            };
            let pos = token.pos;
            let prec = precedence(op);
            if prec < min_precedence {
                return Ok(lhs);
            }
            self.next()?;
            // InfluxQL's regex operators take a regex literal, never an expression; operators
            // binding tighter may still follow it.
            let rhs_first = match op {
                BinaryOp::EqRegex | BinaryOp::NotEqRegex => {
                    Some(Parsed::leaf(Expr::Regex(self.regex_required()?)))
                }
                _ => None,
            };
            let rhs = self.binary(prec + 1, rhs_first)?;
            let depth = lhs.depth.max(rhs.depth);
            let expr = Expr::Binary {
                op,
                lhs: Box::new(lhs.expr),
                rhs: Box::new(rhs.expr),
            };
            lhs = Parsed::node(expr, depth, pos)?;
        }
    }

    /// An operand: literal, variable, call, parenthesised expression, wildcard, or a signed
    /// number, duration or operand.
    pub(super) fn unary(&mut self) -> Result<Parsed, ParseError> {
        let token = self.next()?;
        let pos = token.pos;
        let leaf = |expr| Ok(Parsed::leaf(expr));
        match token.tok {
            Tok::LParen => {
                self.enter(pos)?;
                let inner = self.binary(1, None)?;
                self.expect(&Tok::RParen)?;
                self.leave();
                Parsed::node(Expr::Paren(Box::new(inner.expr)), inner.depth, pos)
            }
            Tok::Ident(name) | Tok::QuotedIdent(name) => {
                let next = self.peek()?;
                if next.tok == Tok::LParen && !next.spaced {
                    self.call(name, pos)
                } else {
                    self.var_ref(name, pos).map(Parsed::leaf)
                }
            }
            Tok::Keyword(Keyword::Distinct) => self.distinct(pos),
            Tok::Str(s) => leaf(Expr::Literal(Literal::String(s))),
            Tok::Keyword(Keyword::True) => leaf(Expr::Literal(Literal::Boolean(true))),
            Tok::Keyword(Keyword::False) => leaf(Expr::Literal(Literal::Boolean(false))),
            Tok::Number(text) => match text.parse::<f64>() {
                Ok(v) if v.is_finite() => leaf(Expr::Literal(Literal::Float(v))),
                _ => Err(ParseError::new("unable to parse number", pos)),
            },
            Tok::Integer(text) => match (text.parse::<i64>(), text.parse::<u64>()) {
                (Ok(v), _) => leaf(Expr::Literal(Literal::Integer(v))),
                (_, Ok(v)) => leaf(Expr::Literal(Literal::Unsigned(v))),
                _ => Err(ParseError::new("unable to parse integer", pos)),
            },
            Tok::Duration(text) => match parse_duration(&text) {
                Ok(ns) => leaf(Expr::Literal(Literal::Duration(ns))),
                Err(message) => Err(ParseError::new(message, pos)),
            },
            Tok::Star => {
                let cast = self.cast(true)?;
                leaf(Expr::Wildcard { cast })
            }
            Tok::Plus | Tok::Minus => self.signed(token.tok == Tok::Minus, pos),
            Tok::Illegal('$') => Err(ParseError::unsupported("bound parameters", pos)),
            _ => Err(ParseError::expected(
                &token,
                &["identifier", "string", "number", "bool"],
            )),
        }
    }

    /// After a leading `+` or `-`: a number or duration takes the sign, anything else is
    /// multiplied by ±1 (in parentheses), as InfluxDB does.
    fn signed(&mut self, negative: bool, pos: Pos) -> Result<Parsed, ParseError> {
        let next = self.peek()?;
        if !matches!(
            next.tok,
            Tok::Number(_)
                | Tok::Integer(_)
                | Tok::Duration(_)
                | Tok::LParen
                | Tok::Ident(_)
                | Tok::QuotedIdent(_)
        ) {
            return Err(ParseError::expected(
                next,
                &["identifier", "number", "duration", "("],
            ));
        }
        let operand = self.unary()?;
        let sign = if negative { -1 } else { 1 };
        let literal = match operand.expr {
            Expr::Literal(Literal::Float(v)) => Literal::Float(if negative { -v } else { v }),
            Expr::Literal(Literal::Integer(v)) => Literal::Integer(v.saturating_mul(sign)),
            Expr::Literal(Literal::Duration(v)) => Literal::Duration(v.saturating_mul(sign)),
            Expr::Literal(Literal::Unsigned(v)) if !negative => Literal::Unsigned(v),
            Expr::Literal(Literal::Unsigned(v)) => match 0i64.checked_sub_unsigned(v) {
                Some(v) => Literal::Integer(v),
                None => {
                    return Err(ParseError::new(
                        format!("constant -{v} underflows int64"),
                        pos,
                    ));
                }
            },
            other => {
                // InfluxDB builds `-1 * operand` here. Parenthesised, the product keeps its
                // meaning when printed after a `*`, `/` or `%` (`a * -b` is not `a * -1 * b`).
                let product = Expr::Binary {
                    op: BinaryOp::Mul,
                    lhs: Box::new(Expr::Literal(Literal::Integer(sign))),
                    rhs: Box::new(other),
                };
                let product = Parsed::node(product, operand.depth, pos)?;
                return Parsed::node(Expr::Paren(Box::new(product.expr)), product.depth, pos);
            }
        };
        Ok(Parsed::leaf(Expr::Literal(literal)))
    }

    /// `name(` has been seen; reads the arguments. A regex may open any argument.
    fn call(&mut self, name: String, pos: Pos) -> Result<Parsed, ParseError> {
        self.expect(&Tok::LParen)?;
        self.enter(pos)?;
        let mut args = Vec::new();
        let mut depth = 0;
        if !self.eat(&Tok::RParen)? {
            loop {
                let arg = match self.regex_ahead()? {
                    Some((pattern, _)) => Parsed::leaf(Expr::Regex(pattern)),
                    None => self.binary(1, None)?,
                };
                depth = depth.max(arg.depth);
                args.push(arg.expr);
                if !self.eat(&Tok::Comma)? {
                    break;
                }
            }
            self.expect(&Tok::RParen)?;
        }
        self.leave();
        let name = name.to_ascii_lowercase();
        Parsed::node(Expr::Call { name, args }, depth, pos)
    }

    /// `DISTINCT(x)` or `DISTINCT x`: both are the `distinct` call.
    fn distinct(&mut self, pos: Pos) -> Result<Parsed, ParseError> {
        let next = self.peek()?;
        if next.tok == Tok::LParen && !next.spaced {
            return self.call("distinct".to_owned(), pos);
        }
        if next.spaced
            && let Tok::Ident(_) | Tok::QuotedIdent(_) = next.tok
        {
            let name = self.ident()?;
            let arg = Expr::VarRef { name, cast: None };
            let call = Expr::Call {
                name: "distinct".to_owned(),
                args: vec![arg],
            };
            return Parsed::node(call, 1, pos);
        }
        Err(ParseError::expected(next, &["(", "identifier"]))
    }

    /// A variable after its first segment: more `.segment`s (joined with `.`, at most three,
    /// as InfluxDB does) and an optional `::cast`.
    fn var_ref(&mut self, first: String, pos: Pos) -> Result<Expr, ParseError> {
        let mut segments = vec![first];
        loop {
            if !self.eat_joined_dot()? {
                break;
            }
            if self.joined_dot_ahead()? {
                segments.push(String::new());
            } else {
                segments.push(self.ident()?);
            }
        }
        if segments.len() > 3 {
            return Err(super::too_many_segments(&segments, pos));
        }
        let cast = self.cast(false)?;
        Ok(Expr::VarRef {
            name: segments.join("."),
            cast,
        })
    }

    /// An optional `::type` right after a variable (or `::field`/`::tag` after `*`).
    fn cast(&mut self, wildcard: bool) -> Result<Option<String>, ParseError> {
        let token = self.peek()?;
        if token.tok != Tok::DoubleColon || token.spaced {
            return Ok(None);
        }
        self.next()?;
        let token = self.next()?;
        let name = match &token.tok {
            Tok::Keyword(Keyword::Field) => Some("field".to_owned()),
            Tok::Keyword(Keyword::Tag) => Some("tag".to_owned()),
            Tok::Ident(name) if !wildcard => Some(name.to_ascii_lowercase()),
            _ => None,
        };
        match name {
            Some(name) if !token.spaced && CASTS.contains(&name.as_str()) => Ok(Some(name)),
            _ if wildcard => Err(ParseError::expected(&token, &["field", "tag"])),
            _ => Err(ParseError::expected(&token, CASTS)),
        }
    }

    /// The comma-separated projections of a `SELECT`.
    pub(super) fn fields(&mut self) -> Result<Vec<Field>, ParseError> {
        let mut fields = Vec::new();
        loop {
            let pos = self.peek()?.pos;
            let expr = match self.regex_ahead()? {
                Some((pattern, _)) => Expr::Regex(pattern),
                None => {
                    let expr = self.expr()?;
                    if let Some(op) = comparison_in(&expr) {
                        return Err(ParseError::new(
                            format!(
                                "invalid operator {op} in SELECT clause; operator is intended \
                                 for WHERE clause"
                            ),
                            pos,
                        ));
                    }
                    expr
                }
            };
            let alias = if self.eat_keyword(Keyword::As)? {
                Some(self.ident()?)
            } else {
                None
            };
            fields.push(Field { expr, alias });
            if !self.eat(&Tok::Comma)? {
                return Ok(fields);
            }
        }
    }
}

/// The first comparison or logical operator in `expr`: InfluxQL refuses them in projections.
/// Recursion is bounded by [`MAX_EXPR_DEPTH`], which the parser has already enforced.
fn comparison_in(expr: &Expr) -> Option<BinaryOp> {
    match expr {
        Expr::Binary { op, lhs, rhs } => {
            if precedence(*op) <= 3 {
                Some(*op)
            } else {
                comparison_in(lhs).or_else(|| comparison_in(rhs))
            }
        }
        Expr::Call { args, .. } => args.iter().find_map(comparison_in),
        Expr::Paren(inner) => comparison_in(inner),
        Expr::VarRef { .. } | Expr::Wildcard { .. } | Expr::Literal(_) | Expr::Regex(_) => None,
    }
}
