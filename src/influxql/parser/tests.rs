use super::*;
use crate::influxql::ast::{BinaryOp, Field, TagKeyFilter};

mod roundtrip;

// ---- helpers ------------------------------------------------------------------------------

fn parse_one(text: &str) -> Statement {
    match parse_query(text) {
        Ok(mut statements) if statements.len() == 1 => statements.remove(0),
        other => panic!("{text}: expected one statement, got {other:?}"),
    }
}

fn select(text: &str) -> SelectStatement {
    match parse_one(text) {
        Statement::Select(s) => *s,
        other => panic!("{text}: not a SELECT: {other:?}"),
    }
}

fn error(text: &str) -> String {
    match parse_query(text) {
        Ok(statements) => panic!("{text}: parsed as {statements:?}"),
        Err(e) => e.to_string(),
    }
}

fn var(name: &str) -> Expr {
    Expr::VarRef {
        name: name.to_owned(),
        cast: None,
    }
}

fn string(s: &str) -> Expr {
    Expr::Literal(Literal::String(s.to_owned()))
}

fn int(v: i64) -> Expr {
    Expr::Literal(Literal::Integer(v))
}

fn duration(ns: i64) -> Expr {
    Expr::Literal(Literal::Duration(ns))
}

fn bin(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    Expr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Call {
        name: name.to_owned(),
        args,
    }
}

fn paren(e: Expr) -> Expr {
    Expr::Paren(Box::new(e))
}

fn field(expr: Expr) -> Field {
    Field { expr, alias: None }
}

fn measurement(name: &str) -> Source {
    Source::Measurement(name_of(name))
}

fn name_of(name: &str) -> MeasurementName {
    MeasurementName::Name {
        database: None,
        retention_policy: None,
        name: name.to_owned(),
    }
}

fn select_of(fields: Vec<Field>, sources: Vec<Source>) -> SelectStatement {
    SelectStatement {
        fields,
        sources,
        condition: None,
        dimensions: Vec::new(),
        fill: Fill::Null,
        descending: false,
        limit: Page::default(),
        slimit: Page::default(),
        timezone: None,
    }
}

const HOUR: i64 = 3_600_000_000_000;
const MINUTE: i64 = 60_000_000_000;
const DAY: i64 = 24 * HOUR;

/// The bench's tenant, time window and queries (the InfluxQL side of the benchmark).
const S: &str = "'2026-10-25T00:00:00Z'";
const E: &str = "'2026-11-01T00:00:00Z'";

fn bench_queries() -> Vec<String> {
    let w = format!("tenant='t1' AND time >= {S} AND time < {E}");
    vec![
        format!("SELECT COUNT(response_time_ms) FROM api_calls WHERE {w} GROUP BY time(1h)"),
        format!("SELECT SUM(bytes) FROM api_calls WHERE {w} GROUP BY time(1h)"),
        format!(
            "SELECT TOP(c, endpoint, 10) FROM (SELECT COUNT(response_time_ms) AS c FROM \
             api_calls WHERE {w} GROUP BY endpoint) WHERE time >= {S} AND time < {E}"
        ),
        format!(
            "SELECT PERCENTILE(response_time_ms, 95) FROM api_calls WHERE {w} GROUP BY time(1d)"
        ),
        format!(
            "SELECT COUNT(c) FROM (SELECT COUNT(response_time_ms) AS c FROM api_calls WHERE {w} \
             GROUP BY time(1d), \"user\") WHERE time >= {S} AND time < {E} GROUP BY time(1d)"
        ),
        format!(
            "SELECT COUNT(response_time_ms) FROM api_calls WHERE time >= \
             '2026-10-31T00:00:00Z' AND time < {E}"
        ),
    ]
}

/// What Grafana's InfluxQL data source sends.
const GRAFANA: &[&str] = &[
    "SHOW DATABASES",
    "SHOW RETENTION POLICIES on \"mydb\"",
    "SHOW MEASUREMENTS LIMIT 100",
    "SHOW MEASUREMENTS WITH MEASUREMENT =~ /api/ LIMIT 100",
    "SHOW MEASUREMENTS WITH MEASUREMENT =~ /(?i)api/ WHERE \"tenant\" = 'acme' LIMIT 100",
    "SHOW TAG KEYS FROM \"api_calls\"",
    "SHOW TAG KEYS",
    "SHOW TAG VALUES FROM \"api_calls\" WITH KEY = \"endpoint\" WHERE \"tenant\" = 'acme'",
    "SHOW TAG VALUES WITH KEY = \"tenant\"",
    "SHOW FIELD KEYS FROM \"api_calls\"",
    "SHOW FIELD KEYS",
    "SELECT mean(\"response_time_ms\") FROM \"api_calls\" WHERE time >= 1700000000000ms and \
     time <= 1700003600000ms GROUP BY time(1m), \"endpoint\" fill(null)",
    "SELECT mean(\"response_time_ms\") FROM \"autogen\".\"api_calls\" WHERE (\"tenant\" =~ \
     /^(acme|globex)$/) AND time >= now() - 6h GROUP BY time(1m), \"tenant\"::tag fill(none)",
    "SELECT count(\"response_time_ms\") FROM \"api_calls\" WHERE time > now() - 7d GROUP BY \
     time(1d) fill(0) ORDER BY time DESC LIMIT 10",
];

// ---- whole queries ------------------------------------------------------------------------

#[test]
fn bench_and_grafana_queries_parse_and_print_back() {
    let bench = bench_queries();
    let all = bench
        .iter()
        .map(String::as_str)
        .chain(GRAFANA.iter().copied());
    for text in all {
        let statement = parse_one(text);
        let printed = statement.to_string();
        assert_eq!(
            parse_query(&printed),
            Ok(vec![statement]),
            "{text}\n{printed}"
        );
    }
}

#[test]
fn bench_q3_subquery_tree() {
    let window = |with_tenant: bool| {
        let time = bin(
            BinaryOp::And,
            bin(BinaryOp::GtEq, var("time"), string("2026-10-25T00:00:00Z")),
            bin(BinaryOp::Lt, var("time"), string("2026-11-01T00:00:00Z")),
        );
        if !with_tenant {
            return time;
        }
        let Expr::Binary { lhs, rhs, .. } = time else {
            unreachable!()
        };
        bin(
            BinaryOp::And,
            bin(
                BinaryOp::And,
                bin(BinaryOp::Eq, var("tenant"), string("t1")),
                *lhs,
            ),
            *rhs,
        )
    };
    let inner = SelectStatement {
        condition: Some(window(true)),
        dimensions: vec![Dimension::Tag("endpoint".into())],
        ..select_of(
            vec![Field {
                expr: call("count", vec![var("response_time_ms")]),
                alias: Some("c".into()),
            }],
            vec![measurement("api_calls")],
        )
    };
    let expected = SelectStatement {
        condition: Some(window(false)),
        ..select_of(
            vec![field(call("top", vec![var("c"), var("endpoint"), int(10)]))],
            vec![Source::Subquery(Box::new(inner))],
        )
    };
    assert_eq!(select(&bench_queries()[2]), expected);
}

#[test]
fn grafana_time_series_query_tree() {
    let expected = SelectStatement {
        condition: Some(bin(
            BinaryOp::And,
            bin(
                BinaryOp::GtEq,
                var("time"),
                duration(1_700_000_000_000 * 1_000_000),
            ),
            bin(
                BinaryOp::LtEq,
                var("time"),
                duration(1_700_003_600_000 * 1_000_000),
            ),
        )),
        dimensions: vec![
            Dimension::Time {
                interval: MINUTE,
                offset: 0,
            },
            Dimension::Tag("endpoint".into()),
        ],
        ..select_of(
            vec![field(call("mean", vec![var("response_time_ms")]))],
            vec![measurement("api_calls")],
        )
    };
    assert_eq!(select(GRAFANA[11]), expected);
}

#[test]
fn every_select_clause_in_order() {
    let s = select(
        "select max(v) as top, v::float from \"db\".\"rp\".\"m\", \"db\"..m2, rp.m3, /^api_/ \
         where host = 'a' group by time(1d, 6h), host, \"Data Center\", /^x/, * fill(previous) \
         order by time desc limit 5 offset 2 slimit 3 soffset 1 tz('Europe/Paris')",
    );
    let expected = SelectStatement {
        fields: vec![
            Field {
                expr: call("max", vec![var("v")]),
                alias: Some("top".into()),
            },
            field(Expr::VarRef {
                name: "v".into(),
                cast: Some("float".into()),
            }),
        ],
        sources: vec![
            Source::Measurement(MeasurementName::Name {
                database: Some("db".into()),
                retention_policy: Some("rp".into()),
                name: "m".into(),
            }),
            Source::Measurement(MeasurementName::Name {
                database: Some("db".into()),
                retention_policy: None,
                name: "m2".into(),
            }),
            Source::Measurement(MeasurementName::Name {
                database: None,
                retention_policy: Some("rp".into()),
                name: "m3".into(),
            }),
            Source::Measurement(MeasurementName::Regex("^api_".into())),
        ],
        condition: Some(bin(BinaryOp::Eq, var("host"), string("a"))),
        dimensions: vec![
            Dimension::Time {
                interval: DAY,
                offset: 6 * HOUR,
            },
            Dimension::Tag("host".into()),
            Dimension::Tag("Data Center".into()),
            Dimension::Regex("^x".into()),
            Dimension::Wildcard,
        ],
        fill: Fill::Previous,
        descending: true,
        limit: Page {
            limit: 5,
            offset: 2,
        },
        slimit: Page {
            limit: 3,
            offset: 1,
        },
        timezone: Some("Europe/Paris".into()),
    };
    assert_eq!(s, expected);
}

#[test]
fn fields_wildcards_calls_and_distinct() {
    let s = select(
        "SELECT *, *::field, *::tag, count(distinct(\"user\")), DISTINCT endpoint, \
         percentile(f, 95), count(/^resp/), now(), \"Mean\"(x) FROM m",
    );
    let fields: Vec<Expr> = s.fields.into_iter().map(|f| f.expr).collect();
    assert_eq!(
        fields,
        vec![
            Expr::Wildcard { cast: None },
            Expr::Wildcard {
                cast: Some("field".into())
            },
            Expr::Wildcard {
                cast: Some("tag".into())
            },
            call("count", vec![call("distinct", vec![var("user")])]),
            call("distinct", vec![var("endpoint")]),
            call("percentile", vec![var("f"), int(95)]),
            call("count", vec![Expr::Regex("^resp".into())]),
            call("now", vec![]),
            call("mean", vec![var("x")]),
        ]
    );
    assert_eq!(
        select("SELECT /^resp/ FROM m").fields,
        vec![field(Expr::Regex("^resp".into()))]
    );
}

#[test]
fn group_by_accepts_dimensions_in_any_order() {
    let s = select("SELECT count(v) FROM m GROUP BY host, time(1h, -15m), *");
    assert_eq!(
        s.dimensions,
        vec![
            Dimension::Tag("host".into()),
            Dimension::Time {
                interval: HOUR,
                offset: -15 * MINUTE,
            },
            Dimension::Wildcard,
        ]
    );
}

#[test]
fn fill_options() {
    for (text, fill) in [
        ("fill(null)", Fill::Null),
        ("fill(none)", Fill::None),
        ("fill(previous)", Fill::Previous),
        ("fill(linear)", Fill::Linear),
        ("FILL(0)", Fill::Number(Literal::Integer(0))),
        ("fill(-1)", Fill::Number(Literal::Integer(-1))),
        ("fill(2.5)", Fill::Number(Literal::Float(2.5))),
        ("", Fill::Null),
    ] {
        let s = select(&format!("SELECT mean(v) FROM m GROUP BY time(1m) {text}"));
        assert_eq!(s.fill, fill, "{text}");
    }
}

#[test]
fn order_by_forms() {
    for (text, descending) in [
        ("ORDER BY time DESC", true),
        ("ORDER BY DESC", true),
        ("ORDER BY time", false),
        ("ORDER BY time ASC", false),
        ("ORDER BY ASC", false),
        ("", false),
    ] {
        let s = select(&format!("SELECT v FROM m {text}"));
        assert_eq!(s.descending, descending, "{text}");
    }
}

#[test]
fn limits_past_i64_saturate_as_in_influxdb() {
    let s = select("SELECT v FROM m LIMIT 99999999999999999999 OFFSET 007");
    assert_eq!(
        s.limit,
        Page {
            limit: i64::MAX.unsigned_abs(),
            offset: 7
        }
    );
}

// ---- expressions --------------------------------------------------------------------------

fn condition(where_clause: &str) -> Expr {
    select(&format!("SELECT v FROM m WHERE {where_clause}"))
        .condition
        .unwrap_or_else(|| panic!("{where_clause}: no condition"))
}

#[test]
fn operator_precedence_and_associativity() {
    let (a, b, c, d) = (var("a"), var("b"), var("c"), var("d"));
    assert_eq!(
        condition("a = 1 OR b = 2 AND c = 3"),
        bin(
            BinaryOp::Or,
            bin(BinaryOp::Eq, a.clone(), int(1)),
            bin(
                BinaryOp::And,
                bin(BinaryOp::Eq, b.clone(), int(2)),
                bin(BinaryOp::Eq, c.clone(), int(3)),
            ),
        )
    );
    assert_eq!(
        condition("a + b * c > d - 1 % 2"),
        bin(
            BinaryOp::Gt,
            bin(
                BinaryOp::Add,
                a.clone(),
                bin(BinaryOp::Mul, b.clone(), c.clone())
            ),
            bin(BinaryOp::Sub, d.clone(), bin(BinaryOp::Mod, int(1), int(2))),
        )
    );
    assert_eq!(
        condition("a - b - c / d / 2 < 1"),
        bin(
            BinaryOp::Lt,
            bin(
                BinaryOp::Sub,
                bin(BinaryOp::Sub, a.clone(), b.clone()),
                bin(
                    BinaryOp::Div,
                    bin(BinaryOp::Div, c.clone(), d.clone()),
                    int(2)
                ),
            ),
            int(1),
        )
    );
    assert_eq!(
        condition("(a OR b) AND c"),
        bin(
            BinaryOp::And,
            paren(bin(BinaryOp::Or, a.clone(), b.clone())),
            c.clone()
        )
    );
    assert_eq!(
        condition("a =~ /x/ AND b !~ /y\\/z/ OR c <> 1 AND d != 2"),
        bin(
            BinaryOp::Or,
            bin(
                BinaryOp::And,
                bin(BinaryOp::EqRegex, a, Expr::Regex("x".into())),
                bin(BinaryOp::NotEqRegex, b, Expr::Regex("y/z".into())),
            ),
            bin(
                BinaryOp::And,
                bin(BinaryOp::NotEq, c, int(1)),
                bin(BinaryOp::NotEq, d, int(2)),
            ),
        )
    );
}

#[test]
fn time_conditions() {
    assert_eq!(
        condition("time > now() - 7d"),
        bin(
            BinaryOp::Gt,
            var("time"),
            bin(BinaryOp::Sub, call("now", vec![]), duration(7 * DAY)),
        )
    );
    assert_eq!(
        condition("time >= 1700000000000ms"),
        bin(
            BinaryOp::GtEq,
            var("time"),
            duration(1_700_000_000_000_000_000)
        )
    );
    assert_eq!(
        condition("time >= '2026-10-25T00:00:00Z'"),
        bin(BinaryOp::GtEq, var("time"), string("2026-10-25T00:00:00Z"))
    );
    assert_eq!(
        condition("time < now() + 1h30m"),
        bin(
            BinaryOp::Lt,
            var("time"),
            bin(BinaryOp::Add, call("now", vec![]), duration(90 * MINUTE)),
        )
    );
}

#[test]
fn literals() {
    for (text, expected) in [
        ("42", int(42)),
        ("-42", int(-42)),
        ("1.5", Expr::Literal(Literal::Float(1.5))),
        (".5", Expr::Literal(Literal::Float(0.5))),
        ("-0.25", Expr::Literal(Literal::Float(-0.25))),
        ("5.", Expr::Literal(Literal::Float(5.0))),
        (
            "18446744073709551615",
            Expr::Literal(Literal::Unsigned(u64::MAX)),
        ),
        ("-9223372036854775808", int(i64::MIN)),
        ("true", Expr::Literal(Literal::Boolean(true))),
        ("FALSE", Expr::Literal(Literal::Boolean(false))),
        ("'it\\'s \\\\ \\n'", string("it's \\ \n")),
        ("10u", duration(10_000)),
        ("10µ", duration(10_000)),
        ("10ns", duration(10)),
        ("1500ms", duration(1_500_000_000)),
        ("2w", duration(14 * DAY)),
        ("-15m", duration(-15 * MINUTE)),
    ] {
        let s = select(&format!("SELECT v FROM m WHERE x = {text}"));
        assert_eq!(
            s.condition,
            Some(bin(BinaryOp::Eq, var("x"), expected)),
            "{text}"
        );
    }
}

#[test]
fn unary_signs_follow_influxdb() {
    let s = select("SELECT -v, +v, -(v + 1), -count(v), a * -b FROM m");
    let fields: Vec<Expr> = s.fields.into_iter().map(|f| f.expr).collect();
    let negated = |e| paren(bin(BinaryOp::Mul, int(-1), e));
    assert_eq!(
        fields,
        vec![
            negated(var("v")),
            paren(bin(BinaryOp::Mul, int(1), var("v"))),
            negated(paren(bin(BinaryOp::Add, var("v"), int(1)))),
            negated(call("count", vec![var("v")])),
            bin(BinaryOp::Mul, var("a"), negated(var("b"))),
        ]
    );
    // Printed, the sign stays bound to its operand.
    let printed = parse_one("SELECT a % -b FROM m").to_string();
    assert_eq!(printed, "SELECT a % (-1 * b) FROM m");
}

#[test]
fn identifiers_quoting_and_casts() {
    assert_eq!(
        condition("\"tenant\" = 'acme' AND \"a \\\"b\\\"\"::tag = 'x' AND v::INTEGER > 1"),
        bin(
            BinaryOp::And,
            bin(
                BinaryOp::And,
                bin(BinaryOp::Eq, var("tenant"), string("acme")),
                bin(
                    BinaryOp::Eq,
                    Expr::VarRef {
                        name: "a \"b\"".into(),
                        cast: Some("tag".into())
                    },
                    string("x")
                ),
            ),
            bin(
                BinaryOp::Gt,
                Expr::VarRef {
                    name: "v".into(),
                    cast: Some("integer".into())
                },
                int(1)
            ),
        )
    );
    // A keyword must be quoted to name a field, as in InfluxDB.
    assert_eq!(
        select("SELECT \"select\" FROM \"from\"").fields,
        vec![field(var("select"))]
    );
    // Segments of a variable are joined, as InfluxDB does.
    assert_eq!(select("SELECT m.v FROM m").fields, vec![field(var("m.v"))]);
}

#[test]
fn comments_whitespace_and_statement_separators() {
    let statements = parse_query(
        ";; -- leading comment\n SELECT /* inline */ v\n\tFROM m -- trailing\n;\n\
         SHOW DATABASES;;",
    );
    assert_eq!(
        statements,
        Ok(vec![
            Statement::Select(Box::new(select_of(
                vec![field(var("v"))],
                vec![measurement("m")]
            ))),
            Statement::ShowDatabases,
        ])
    );
    assert_eq!(parse_query(""), Ok(vec![]));
    assert_eq!(parse_query(" ; -- nothing"), Ok(vec![]));
}

#[test]
fn regex_is_division_outside_regex_positions() {
    assert_eq!(
        select("SELECT a / b / 2 FROM m").fields,
        vec![field(bin(
            BinaryOp::Div,
            bin(BinaryOp::Div, var("a"), var("b")),
            int(2)
        ))]
    );
    assert_eq!(
        select("SELECT v FROM m WHERE a =~ /x/ / 2").condition,
        Some(bin(
            BinaryOp::EqRegex,
            var("a"),
            bin(BinaryOp::Div, Expr::Regex("x".into()), int(2)),
        ))
    );
    assert_eq!(
        select("SELECT v FROM db.rp./^cpu/").sources,
        vec![Source::Measurement(MeasurementName::Regex("^cpu".into()))]
    );
}

// ---- SHOW ---------------------------------------------------------------------------------

#[test]
fn show_statements() {
    let page = |limit, offset| Page { limit, offset };
    let cases: Vec<(&str, Statement)> = vec![
        ("SHOW DATABASES", Statement::ShowDatabases),
        (
            "CREATE DATABASE \"telegraf\"",
            Statement::CreateDatabase {
                name: "telegraf".into(),
            },
        ),
        (
            "SHOW RETENTION POLICIES",
            Statement::ShowRetentionPolicies { database: None },
        ),
        (
            "show retention policies on \"mydb\"",
            Statement::ShowRetentionPolicies {
                database: Some("mydb".into()),
            },
        ),
        (
            "SHOW MEASUREMENTS ON db WITH MEASUREMENT =~ /api/ WHERE tenant = 'a' LIMIT 100 \
             OFFSET 5",
            Statement::ShowMeasurements {
                source: Some(MeasurementName::Regex("api".into())),
                condition: Some(bin(BinaryOp::Eq, var("tenant"), string("a"))),
                page: page(100, 5),
            },
        ),
        (
            "SHOW MEASUREMENTS WITH MEASUREMENT = api_calls",
            Statement::ShowMeasurements {
                source: Some(name_of("api_calls")),
                condition: None,
                page: page(0, 0),
            },
        ),
        (
            "SHOW TAG KEYS ON db FROM \"api_calls\", storage WHERE tenant = 'a' LIMIT 2 OFFSET 1",
            Statement::ShowTagKeys {
                sources: vec![name_of("api_calls"), name_of("storage")],
                condition: Some(bin(BinaryOp::Eq, var("tenant"), string("a"))),
                page: page(2, 1),
            },
        ),
        (
            "SHOW TAG VALUES FROM \"api_calls\" WITH KEY = \"endpoint\" WHERE \"tenant\" = 'acme'",
            Statement::ShowTagValues {
                sources: vec![name_of("api_calls")],
                keys: TagKeyFilter::Eq("endpoint".into()),
                condition: Some(bin(BinaryOp::Eq, var("tenant"), string("acme"))),
                page: page(0, 0),
            },
        ),
        (
            "SHOW TAG VALUES WITH KEY != host LIMIT 3",
            Statement::ShowTagValues {
                sources: vec![],
                keys: TagKeyFilter::NotEq("host".into()),
                condition: None,
                page: page(3, 0),
            },
        ),
        (
            "SHOW TAG VALUES WITH KEY IN (\"a\", b)",
            Statement::ShowTagValues {
                sources: vec![],
                keys: TagKeyFilter::In(vec!["a".into(), "b".into()]),
                condition: None,
                page: page(0, 0),
            },
        ),
        (
            "SHOW TAG VALUES WITH KEY =~ /^e/",
            Statement::ShowTagValues {
                sources: vec![],
                keys: TagKeyFilter::Regex("^e".into()),
                condition: None,
                page: page(0, 0),
            },
        ),
        (
            "SHOW TAG VALUES WITH KEY !~ /^e/ OFFSET 4",
            Statement::ShowTagValues {
                sources: vec![],
                keys: TagKeyFilter::NotRegex("^e".into()),
                condition: None,
                page: page(0, 4),
            },
        ),
        (
            "SHOW FIELD KEYS ON db FROM /^api/ LIMIT 1 OFFSET 1",
            Statement::ShowFieldKeys {
                sources: vec![MeasurementName::Regex("^api".into())],
                page: page(1, 1),
            },
        ),
    ];
    for (text, expected) in cases {
        let statement = parse_one(text);
        assert_eq!(statement, expected, "{text}");
        assert_eq!(parse_one(&statement.to_string()), expected, "{text}");
    }
}

// ---- errors -------------------------------------------------------------------------------

#[test]
fn syntax_errors_read_like_influxdb() {
    for (text, message) in [
        (
            "SELECT",
            "found EOF, expected identifier, string, number, bool at line 1, char 7",
        ),
        ("SELECT x", "found EOF, expected FROM at line 1, char 9"),
        (
            "SELECT x FROM",
            "found EOF, expected identifier at line 1, char 14",
        ),
        (
            "SELECT x FROM m LIMIT",
            "found EOF, expected integer at line 1, char 22",
        ),
        (
            "SELECT x FROM m LIMIT -1",
            "found -, expected integer at line 1, char 23",
        ),
        (
            "SELECT x FROM m LIMIT 1 foo",
            "found foo, expected ; at line 1, char 25",
        ),
        (
            "FOO",
            "found FOO, expected SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, \
             ALTER, SET, KILL at line 1, char 1",
        ),
        (
            "SHOW TAG",
            "found EOF, expected KEY, KEYS, VALUES at line 1, char 9",
        ),
        (
            "SHOW TAG VALUES FROM m",
            "found EOF, expected WITH at line 1, char 23",
        ),
        (
            "SHOW TAG VALUES WITH KEY",
            "found EOF, expected IN, =, =~ at line 1, char 25",
        ),
        (
            "SHOW RETENTION",
            "found EOF, expected POLICIES at line 1, char 15",
        ),
        (
            "SHOW foo",
            "found foo, expected CONTINUOUS, DATABASES, DIAGNOSTICS, FIELD, GRANTS, \
             MEASUREMENT, MEASUREMENTS, QUERIES, RETENTION, SERIES, SHARD, SHARDS, STATS, \
             SUBSCRIPTIONS, TAG, USERS at line 1, char 6",
        ),
        (
            "SELECT x FROM m ORDER BY 5",
            "found 5, expected identifier, ASC, DESC at line 1, char 26",
        ),
        (
            "SELECT x FROM m ORDER BY foo",
            "only ORDER BY time supported at this time at line 1, char 26",
        ),
        (
            "SELECT x FROM m ORDER BY time, x",
            "only ORDER BY time supported at this time at line 1, char 26",
        ),
        (
            "SELECT x::foo FROM m",
            "found foo, expected float, integer, unsigned, string, boolean, field, tag at line \
             1, char 11",
        ),
        (
            "SELECT *::float FROM m",
            "found float, expected field, tag at line 1, char 11",
        ),
        (
            "SELECT distinct FROM m",
            "found FROM, expected (, identifier at line 1, char 17",
        ),
        (
            "SELECT x FROM field",
            "found FIELD, expected identifier at line 1, char 15",
        ),
        (
            "SELECT count(distinct(user)) FROM m",
            "found USER, expected identifier, string, number, bool at line 1, char 23",
        ),
        (
            "SELECT count (x) FROM m",
            "found (, expected FROM at line 1, char 14",
        ),
        (
            "SELECT x AS FROM m",
            "found FROM, expected identifier at line 1, char 13",
        ),
        (
            "SELECT x FROM m WHERE (a = 1",
            "found EOF, expected ) at line 1, char 29",
        ),
        (
            "SELECT x FROM m WHERE a = -'s'",
            "found s, expected identifier, number, duration, ( at line 1, char 28",
        ),
        (
            "SELECT - -5 FROM m",
            "found -, expected identifier, number, duration, ( at line 1, char 10",
        ),
        (
            "SELECT x FROM m WHERE t =~ 'a'",
            "found a, expected regex at line 1, char 28",
        ),
        (
            "SELECT x FROM m WHERE t = /a/",
            "found /, expected identifier, string, number, bool at line 1, char 27",
        ),
        (
            "SELECT x FROM (SHOW DATABASES)",
            "found SHOW, expected SELECT at line 1, char 16",
        ),
        (
            "SELECT x FROM m WHERE a = 1.5.5",
            "found .5, expected ; at line 1, char 30",
        ),
        (
            "SELECT x FROM m\nWHERE a = 1\n  AND",
            "found EOF, expected identifier, string, number, bool at line 3, char 6",
        ),
        (
            "SELECT x FROM m WHERE a.b.c.d = 1",
            "too many segments in a.b.c.d at line 1, char 23",
        ),
        (
            "SELECT x FROM a.b.c.d",
            "too many segments in a.b.c.d at line 1, char 15",
        ),
        (
            "SELECT a = 1 FROM m",
            "invalid operator = in SELECT clause; operator is intended for WHERE clause at \
             line 1, char 8",
        ),
        (
            "SELECT count(a AND b) FROM m",
            "invalid operator AND in SELECT clause; operator is intended for WHERE clause at \
             line 1, char 8",
        ),
        (
            "SELECT -9223372036854775809 FROM m",
            "constant -9223372036854775809 underflows int64 at line 1, char 8",
        ),
        (
            "SELECT 99999999999999999999 FROM m",
            "unable to parse integer at line 1, char 8",
        ),
        (
            "SELECT x FROM m tz('Europe/Foo')",
            "unable to find time zone Europe/Foo at line 1, char 17",
        ),
        (
            "SELECT x FROM m tz(5)",
            "expected string argument in tz() at line 1, char 17",
        ),
        (
            "SELECT x FROM m tz ('UTC')",
            "tz must be a function call at line 1, char 17",
        ),
        (
            "SELECT x FROM m tz('UTC', 'UTC')",
            "tz requires exactly one argument at line 1, char 17",
        ),
        (
            "SELECT x FROM m fill(LINEAR)",
            "expected number argument in fill() at line 1, char 17",
        ),
        (
            "SELECT x FROM m WHERE x = $foo",
            "unsupported: bound parameters at line 1, char 27",
        ),
        (
            "SELECT x FROM m fill()",
            "fill requires an argument, e.g.: 0, null, none, previous, linear at line 1, char 17",
        ),
        (
            "SELECT x FROM m fill(1, 2)",
            "fill requires an argument, e.g.: 0, null, none, previous, linear at line 1, char 17",
        ),
        (
            "SELECT x FROM m fill",
            "fill must be a function call at line 1, char 17",
        ),
        (
            "SELECT x FROM m fill(foo)",
            "expected number argument in fill() at line 1, char 17",
        ),
        (
            "SELECT x FROM m fill('a')",
            "expected number argument in fill() at line 1, char 17",
        ),
    ] {
        assert_eq!(error(text), message, "{text}");
    }
}

#[test]
fn lexical_errors() {
    for (text, message) in [
        (
            "SELECT 'abc FROM m",
            "unterminated string at line 1, char 8",
        ),
        (
            "SELECT \"abc FROM m",
            "unterminated quoted identifier at line 1, char 8",
        ),
        (
            "SELECT x FROM m WHERE x = 'a\nb'",
            "unterminated string at line 1, char 27",
        ),
        (
            "SELECT x FROM m WHERE a = 'a\\q'",
            "bad escape: \\q at line 1, char 29",
        ),
        (
            "SELECT x FROM /abc",
            "unterminated regex at line 1, char 15",
        ),
        (
            "SELECT x FROM m /* never closed",
            "unterminated comment at line 1, char 17",
        ),
        (
            "SELECT x FROM m WHERE a > 1e3",
            "invalid duration at line 1, char 27",
        ),
        (
            "SELECT x FROM m WHERE time > now() - 10m30",
            "invalid duration at line 1, char 38",
        ),
        (
            "SELECT x FROM m WHERE time > now() - 99999999999w",
            "overflowed duration 99999999999w: choose a smaller duration at line 1, char 38",
        ),
        (
            "SELECT x FROM m WHERE a > 1.5e3",
            "found e3, expected ; at line 1, char 30",
        ),
        (
            "SELECT # FROM m",
            "found #, expected identifier, string, number, bool at line 1, char 8",
        ),
        (
            "SELECT é FROM m",
            "found é, expected identifier, string, number, bool at line 1, char 8",
        ),
    ] {
        assert_eq!(error(text), message, "{text}");
    }
    assert_eq!(
        error("SELECT x FROM m WHERE t =~ /a(/"),
        "bad regex /a(/: unclosed group at line 1, char 28"
    );
    let huge = error(&format!(
        "SELECT x FROM m WHERE t =~ /{}/",
        "\\w{100}".repeat(1 << 10)
    ));
    assert!(huge.contains("size limit"), "{huge}");
}

#[test]
fn group_by_errors() {
    for (text, message) in [
        ("time(x)", "time dimension must have duration argument"),
        (
            "time(1h, 1h, 1h)",
            "time dimension expected 1 or 2 arguments",
        ),
        ("time()", "time dimension expected 1 or 2 arguments"),
        ("time(0s)", "time dimension must have a positive duration"),
        ("time(-1h)", "time dimension must have a positive duration"),
        (
            "time(1h, 'a')",
            "time dimension offset must be duration or now()",
        ),
        (
            "time(1h, now())",
            "unsupported: time dimension offset now()",
        ),
        ("x + 1", "only time and tag dimensions allowed"),
        ("(x)", "only time and tag dimensions allowed"),
        ("'x'", "only time and tag dimensions allowed"),
        (
            "time(1h), host, time(2h)",
            "multiple time dimensions not allowed",
        ),
    ] {
        let e = error(&format!("SELECT mean(v) FROM m GROUP BY {text}"));
        assert!(e.starts_with(message), "{text}: {e}");
    }
}

#[test]
fn unsupported_statements_and_clauses_are_named() {
    for (text, message) in [
        (
            "SELECT x INTO y FROM m",
            "unsupported: SELECT ... INTO at line 1, char 10",
        ),
        (
            "CREATE DATABASE db WITH DURATION 1d",
            "unsupported: CREATE DATABASE ... WITH at line 1, char 1",
        ),
        (
            "CREATE RETENTION POLICY rp ON db DURATION 1d REPLICATION 1",
            "unsupported: CREATE RETENTION POLICY at line 1, char 1",
        ),
        (
            "CREATE CONTINUOUS QUERY cq ON db BEGIN SELECT 1 END",
            "unsupported: CREATE CONTINUOUS QUERY at line 1, char 1",
        ),
        (
            "DROP MEASUREMENT m",
            "unsupported: DROP MEASUREMENT at line 1, char 1",
        ),
        (
            "DROP SERIES FROM m",
            "unsupported: DROP SERIES at line 1, char 1",
        ),
        ("DELETE FROM m", "unsupported: DELETE at line 1, char 1"),
        (
            "ALTER RETENTION POLICY rp ON db",
            "unsupported: ALTER RETENTION POLICY at line 1, char 1",
        ),
        (
            "GRANT ALL TO bob",
            "unsupported: GRANT ALL at line 1, char 1",
        ),
        (
            "REVOKE ALL FROM bob",
            "unsupported: REVOKE ALL at line 1, char 1",
        ),
        (
            "SET PASSWORD FOR bob = 'x'",
            "unsupported: SET at line 1, char 1",
        ),
        ("KILL QUERY 1", "unsupported: KILL QUERY at line 1, char 1"),
        (
            "EXPLAIN SELECT x FROM m",
            "unsupported: EXPLAIN at line 1, char 1",
        ),
        (
            "EXPLAIN ANALYZE SELECT x FROM m",
            "unsupported: EXPLAIN ANALYZE at line 1, char 1",
        ),
        ("SHOW SERIES", "unsupported: SHOW SERIES at line 1, char 1"),
        (
            "SHOW SERIES CARDINALITY",
            "unsupported: SHOW SERIES CARDINALITY at line 1, char 1",
        ),
        (
            "SHOW QUERIES",
            "unsupported: SHOW QUERIES at line 1, char 1",
        ),
        ("SHOW USERS", "unsupported: SHOW USERS at line 1, char 1"),
        (
            "SHOW GRANTS FOR bob",
            "unsupported: SHOW GRANTS at line 1, char 1",
        ),
        ("SHOW STATS", "unsupported: SHOW STATS at line 1, char 1"),
        (
            "SHOW DIAGNOSTICS",
            "unsupported: SHOW DIAGNOSTICS at line 1, char 1",
        ),
        ("SHOW SHARDS", "unsupported: SHOW SHARDS at line 1, char 1"),
        (
            "SHOW SHARD GROUPS",
            "unsupported: SHOW SHARD GROUPS at line 1, char 1",
        ),
        (
            "SHOW SUBSCRIPTIONS",
            "unsupported: SHOW SUBSCRIPTIONS at line 1, char 1",
        ),
        (
            "SHOW CONTINUOUS QUERIES",
            "unsupported: SHOW CONTINUOUS QUERIES at line 1, char 1",
        ),
        (
            "SHOW MEASUREMENT EXACT CARDINALITY",
            "unsupported: SHOW MEASUREMENT EXACT CARDINALITY at line 1, char 1",
        ),
        (
            "SHOW TAG KEY CARDINALITY",
            "unsupported: SHOW TAG KEY CARDINALITY at line 1, char 1",
        ),
        (
            "SHOW TAG VALUES CARDINALITY WITH KEY = host",
            "unsupported: SHOW TAG VALUES CARDINALITY at line 1, char 1",
        ),
        (
            "SHOW FIELD KEY CARDINALITY",
            "unsupported: SHOW FIELD KEY CARDINALITY at line 1, char 1",
        ),
        (
            "SHOW MEASUREMENTS ORDER BY time",
            "unsupported: ORDER BY in SHOW MEASUREMENTS at line 1, char 19",
        ),
        (
            "SHOW TAG KEYS SLIMIT 1",
            "unsupported: SLIMIT in SHOW TAG KEYS at line 1, char 15",
        ),
        (
            "SELECT x FROM m WHERE a = 1 & 2",
            "unsupported: bitwise operator & at line 1, char 29",
        ),
    ] {
        assert_eq!(error(text), message, "{text}");
    }
}

// ---- hostile input ------------------------------------------------------------------------

#[test]
fn nesting_is_capped() {
    let depth = MAX_NESTING as usize;
    let ok = format!("SELECT {}v{} FROM m", "(".repeat(depth), ")".repeat(depth));
    assert!(parse_query(&ok).is_ok());
    let too_deep = format!(
        "SELECT {}v{} FROM m",
        "(".repeat(depth + 1),
        ")".repeat(depth + 1)
    );
    assert!(error(&too_deep).starts_with("query nested too deeply"));

    let calls = format!(
        "SELECT {}v{} FROM m",
        "f(".repeat(depth + 1),
        ")".repeat(depth + 1)
    );
    assert!(error(&calls).starts_with("query nested too deeply"));

    let mut subquery = "SELECT v FROM m".to_owned();
    for _ in 0..depth {
        subquery = format!("SELECT v FROM ({subquery})");
    }
    assert!(parse_query(&subquery).is_ok());
    let subquery = format!("SELECT v FROM ({subquery})");
    assert!(error(&subquery).starts_with("query nested too deeply"));

    // A megabyte of open parentheses fails fast instead of overflowing the stack.
    assert!(error(&format!("SELECT {}", "(".repeat(1 << 20))).starts_with("query nested"));
}

#[test]
fn operator_chains_are_capped() {
    let chain = |n: usize| {
        let terms: Vec<String> = (0..n).map(|i| format!("host = 'h{i}'")).collect();
        format!("SELECT v FROM m WHERE {}", terms.join(" OR "))
    };
    // Each OR adds a level above the comparisons.
    assert!(parse_query(&chain(MAX_EXPR_DEPTH as usize - 1)).is_ok());
    assert!(error(&chain(MAX_EXPR_DEPTH as usize + 1)).starts_with("expression too deep"));
}

#[test]
fn errors_quote_at_most_a_clipped_token() {
    let long = "x".repeat(1 << 20);
    let e = error(&format!("SELECT {long} {long} FROM m"));
    let expected_char = (1 << 20) + 9;
    assert_eq!(
        e,
        format!(
            "found {}..., expected FROM at line 1, char {expected_char}",
            &long[..64]
        )
    );
    let e = error(&format!("SELECT x FROM m WHERE t =~ /({long}/"));
    assert!(e.len() < 200, "{}", e.len());
}

#[test]
fn large_flat_queries_parse() {
    let fields: Vec<String> = (0..20_000).map(|i| format!("mean(f{i})")).collect();
    let text = format!("SELECT {} FROM m", fields.join(", "));
    assert_eq!(select(&text).fields.len(), 20_000);
    let statements = "SHOW DATABASES;".repeat(20_000);
    assert_eq!(parse_query(&statements).map(|s| s.len()), Ok(20_000));
}
