//! Properties: printing any tree the parser can build and parsing the text gives the same tree;
//! no input makes the parser panic, and whatever it accepts prints back to itself.

use proptest::prelude::*;

use super::super::expr::precedence;
use super::*;

// ---- generated syntax trees ---------------------------------------------------------------

/// Any name: plain, keyword-like, or full of characters that need quoting and escaping.
fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        Just("select".to_owned()),
        Just("time".to_owned()),
        Just("fill".to_owned()),
        "[a-z .\"'\\\\\n/é-]{0,6}",
    ]
}

fn non_empty_ident() -> impl Strategy<Value = String> {
    ident().prop_filter("qualifiers are never empty", |s| !s.is_empty())
}

/// Valid regexes, including slashes and backslashes, never ending in a backslash (which
/// InfluxQL's regex syntax cannot express before the closing slash).
fn regex() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("a"),
        Just("x"),
        Just("."),
        Just("/"),
        Just("\\d"),
        Just("\\/"),
        Just("\\\\"),
        Just("^"),
        Just("$"),
        Just("[a-z]"),
        Just("(a|b)"),
        Just("é"),
        Just(" "),
        Just("*"),
    ];
    prop::collection::vec(atom, 0..6)
        .prop_map(|atoms| atoms.concat())
        .prop_filter("valid, no trailing backslash", |p| {
            !p.ends_with('\\') && regex::Regex::new(p).is_ok()
        })
}

fn duration_ns() -> impl Strategy<Value = i64> {
    prop_oneof![
        (i64::MIN + 1)..=i64::MAX,
        (-1000i64..1000).prop_map(|n| n * 60_000_000_000),
        (1i64..100).prop_map(|n| n * 86_400_000_000_000),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<i64>().prop_map(Literal::Integer),
        ((i64::MAX.unsigned_abs() + 1)..=u64::MAX).prop_map(Literal::Unsigned),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(Literal::Float),
        (-1e6f64..1e6).prop_map(Literal::Float),
        "[a-z '\"\\\\\n/é]{0,8}".prop_map(Literal::String),
        any::<bool>().prop_map(Literal::Boolean),
        duration_ns().prop_map(Literal::Duration),
    ]
}

fn cast() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.3,
        prop::sample::select(vec![
            "float", "integer", "unsigned", "string", "boolean", "field", "tag",
        ])
        .prop_map(str::to_owned),
    )
}

fn arithmetic_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(vec![
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Mod,
    ])
}

fn any_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(vec![
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Eq,
        BinaryOp::NotEq,
        BinaryOp::Lt,
        BinaryOp::LtEq,
        BinaryOp::Gt,
        BinaryOp::GtEq,
        BinaryOp::EqRegex,
        BinaryOp::NotEqRegex,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Mod,
    ])
}

fn call_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,8}",
        Just("distinct".to_owned()),
        Just("in".to_owned()),
    ]
}

/// Wraps `child` in parentheses where the printed text would otherwise bind differently, as
/// the parser's own trees do.
fn operand(child: Expr, parent: BinaryOp, right: bool) -> Expr {
    match &child {
        Expr::Binary { op, .. }
            if precedence(*op) < precedence(parent)
                || (right && precedence(*op) == precedence(parent)) =>
        {
            Expr::Paren(Box::new(child))
        }
        _ => child,
    }
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    let rhs = match op {
        BinaryOp::EqRegex | BinaryOp::NotEqRegex => rhs,
        _ => operand(rhs, op, true),
    };
    Expr::Binary {
        op,
        lhs: Box::new(operand(lhs, op, false)),
        rhs: Box::new(rhs),
    }
}

/// Expressions; `comparisons` allows comparison and logical operators (not in projections).
fn expr(comparisons: bool) -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (ident(), cast()).prop_map(|(name, cast)| Expr::VarRef { name, cast }),
        literal().prop_map(Expr::Literal),
        prop::option::of(prop::sample::select(vec!["field", "tag"])).prop_map(|cast| {
            Expr::Wildcard {
                cast: cast.map(str::to_owned),
            }
        }),
        Just(Expr::Call {
            name: "now".into(),
            args: vec![]
        }),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        let op = if comparisons {
            any_op().boxed()
        } else {
            arithmetic_op().boxed()
        };
        let arg = prop_oneof![4 => inner.clone(), 1 => regex().prop_map(Expr::Regex)];
        prop_oneof![
            (op, inner.clone(), inner.clone(), regex()).prop_map(|(op, lhs, rhs, re)| {
                match op {
                    BinaryOp::EqRegex | BinaryOp::NotEqRegex => binary(op, lhs, Expr::Regex(re)),
                    _ => binary(op, lhs, rhs),
                }
            }),
            (call_name(), prop::collection::vec(arg, 0..3))
                .prop_map(|(name, args)| Expr::Call { name, args }),
            inner.prop_map(|e| Expr::Paren(Box::new(e))),
        ]
    })
}

fn measurement_name() -> impl Strategy<Value = MeasurementName> {
    prop_oneof![
        (
            prop::option::of(non_empty_ident()),
            prop::option::of(non_empty_ident()),
            ident()
        )
            .prop_map(|(database, retention_policy, name)| MeasurementName::Name {
                database,
                retention_policy,
                name,
            }),
        regex().prop_map(MeasurementName::Regex),
    ]
}

fn page() -> impl Strategy<Value = Page> {
    let count = prop_oneof![Just(0u64), 1u64..1000, 0..=i64::MAX.unsigned_abs()];
    (count.clone(), count).prop_map(|(limit, offset)| Page { limit, offset })
}

fn dimensions() -> impl Strategy<Value = Vec<Dimension>> {
    let other = prop_oneof![
        ident().prop_map(Dimension::Tag),
        regex().prop_map(Dimension::Regex),
        Just(Dimension::Wildcard),
    ];
    let time = (1..=i64::MAX, duration_ns())
        .prop_map(|(interval, offset)| Dimension::Time { interval, offset });
    (
        prop::collection::vec(other, 0..3),
        prop::option::of(time),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut dims, time, at)| {
            if let Some(time) = time {
                let at = at.index(dims.len() + 1);
                dims.insert(at, time);
            }
            dims
        })
}

fn fill() -> impl Strategy<Value = Fill> {
    prop_oneof![
        Just(Fill::Null),
        Just(Fill::None),
        Just(Fill::Previous),
        Just(Fill::Linear),
        any::<i64>().prop_map(|v| Fill::Number(Literal::Integer(v))),
        (-1e9f64..1e9).prop_map(|v| Fill::Number(Literal::Float(v))),
    ]
}

fn field() -> impl Strategy<Value = Field> {
    let expr = prop_oneof![4 => expr(false), 1 => regex().prop_map(Expr::Regex)];
    (expr, prop::option::of(ident())).prop_map(|(expr, alias)| Field { expr, alias })
}

fn select_statement() -> impl Strategy<Value = SelectStatement> {
    let measurement = measurement_name().prop_map(Source::Measurement).boxed();
    let leaf = select_with(prop::collection::vec(measurement.clone(), 1..3).boxed());
    leaf.prop_recursive(2, 4, 2, move |inner| {
        let source = prop_oneof![
            measurement.clone(),
            inner.prop_map(|s| Source::Subquery(Box::new(s))),
        ];
        select_with(prop::collection::vec(source, 1..3).boxed())
    })
}

fn select_with(sources: BoxedStrategy<Vec<Source>>) -> BoxedStrategy<SelectStatement> {
    let timezone = prop::option::of(
        prop::sample::select(vec!["UTC", "Europe/Paris", "America/New_York"])
            .prop_map(str::to_owned),
    );
    (
        (prop::collection::vec(field(), 1..4), sources),
        (prop::option::of(expr(true)), dimensions(), fill()),
        (any::<bool>(), page(), page(), timezone),
    )
        .prop_map(
            |(
                (fields, sources),
                (condition, dimensions, fill),
                (descending, limit, slimit, timezone),
            )| SelectStatement {
                fields,
                sources,
                condition,
                dimensions,
                fill,
                descending,
                limit,
                slimit,
                timezone,
            },
        )
        .boxed()
}

fn tag_key_filter() -> impl Strategy<Value = TagKeyFilter> {
    prop_oneof![
        ident().prop_map(TagKeyFilter::Eq),
        ident().prop_map(TagKeyFilter::NotEq),
        prop::collection::vec(ident(), 1..4).prop_map(TagKeyFilter::In),
        regex().prop_map(TagKeyFilter::Regex),
        regex().prop_map(TagKeyFilter::NotRegex),
    ]
}

fn statement() -> impl Strategy<Value = Statement> {
    let sources = || prop::collection::vec(measurement_name(), 0..3);
    let condition = || prop::option::of(expr(true));
    prop_oneof![
        4 => select_statement().prop_map(|s| Statement::Select(Box::new(s))),
        1 => Just(Statement::ShowDatabases),
        1 => prop::option::of(ident())
            .prop_map(|database| Statement::ShowRetentionPolicies { database }),
        1 => (prop::option::of(measurement_name()), condition(), page()).prop_map(
            |(source, condition, page)| Statement::ShowMeasurements {
                source,
                condition,
                page
            }
        ),
        1 => (sources(), condition(), page()).prop_map(|(sources, condition, page)| {
            Statement::ShowTagKeys {
                sources,
                condition,
                page,
            }
        }),
        1 => (sources(), tag_key_filter(), condition(), page()).prop_map(
            |(sources, keys, condition, page)| Statement::ShowTagValues {
                sources,
                keys,
                condition,
                page,
            }
        ),
        1 => (sources(), page()).prop_map(|(sources, page)| Statement::ShowFieldKeys { sources, page }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn printed_statements_parse_back_to_the_same_tree(
        statements in prop::collection::vec(statement(), 1..3),
    ) {
        let text = statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";\n");
        prop_assert_eq!(parse_query(&text), Ok(statements), "{}", text);
    }
}

// ---- arbitrary input ----------------------------------------------------------------------

/// Pieces of InfluxQL, so that random sequences reach deep into the grammar.
const FRAGMENTS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "OFFSET",
    "SLIMIT",
    "SOFFSET",
    "SHOW",
    "TAG",
    "KEYS",
    "VALUES",
    "FIELD",
    "MEASUREMENTS",
    "MEASUREMENT",
    "WITH",
    "KEY",
    "RETENTION POLICIES",
    "DATABASES",
    "ON",
    "IN",
    "AS",
    "AND",
    "OR",
    "DISTINCT",
    "INTO",
    "time",
    "time(",
    "fill(",
    "tz(",
    "now()",
    "count(",
    "x",
    "\"q\"",
    "'s'",
    "'2026-01-01'",
    "1",
    "-",
    "+",
    "*",
    "/",
    "%",
    "1.5",
    ".5",
    "10m",
    "1h30m",
    "99999999999999999999",
    "(",
    ")",
    ",",
    ";",
    ".",
    "::",
    "::field",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "!~",
    "/re/",
    "/a\\/b/",
    "--c\n",
    "/*c*/",
    "DESC",
    "ASC",
    "null",
    "none",
    "previous",
    "'",
    "\"",
    "\\",
    "µ",
    "é",
    "\n",
    " ",
];

fn check_no_panic_and_reprint(text: &str) -> Result<(), TestCaseError> {
    if let Ok(statements) = parse_query(text) {
        let printed: Vec<String> = statements.iter().map(ToString::to_string).collect();
        let reparsed = parse_query(&printed.join(";"));
        prop_assert_eq!(reparsed, Ok(statements), "{} → {:?}", text, printed);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_no_panic_and_reprint(&text)?;
    }

    #[test]
    fn arbitrary_fragment_sequences_never_panic(
        pieces in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40),
        joiners in prop::collection::vec(prop::sample::select(&[" ", "", "\t"][..]), 40),
    ) {
        let mut text = String::new();
        for (piece, joiner) in pieces.iter().zip(&joiners) {
            text.push_str(piece);
            text.push_str(joiner);
        }
        check_no_panic_and_reprint(&text)?;
    }
}
