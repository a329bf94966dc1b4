//! Feeds arbitrary bytes to the line-protocol parser, as `/write` and `/api/v2/write` do with
//! every request body, at every precision, and checks what it promises: no panic; one result
//! per non-blank, non-comment line, numbered in order; a line's tags and fields do not depend
//! on the precision, and its timestamp scales with it; `append_numbered` turns exactly the
//! accepted lines into events that pass validation and refuses the rest; and every accepted
//! line that a client could write unambiguously prints (as a client library would) to a line
//! that parses back to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterdb::ingest::lineproto::{
    LineOptions, LineValue, ParsedLine, Precision, append_numbered, parse_lines,
};
use meterdb::{Timestamp, WriteBatch};

#[global_allocator]
static ALLOCATOR: meterdb_fuzz::CappedAllocator = meterdb_fuzz::CappedAllocator;

const PRECISIONS: [Precision; 4] = [
    Precision::Nanoseconds,
    Precision::Microseconds,
    Precision::Milliseconds,
    Precision::Seconds,
];

fuzz_target!(|body: &[u8]| {
    let n_lines = body.split(|&c| c == b'\n').count();
    let by_ns: Vec<_> = parse_lines(body, Precision::Nanoseconds).collect();
    let mut previous = 0;
    for (no, result) in &by_ns {
        assert!(
            *no > previous && *no <= n_lines,
            "line {no} after {previous} of {n_lines}"
        );
        previous = *no;
        if let Err(e) = result {
            assert_eq!(e.line, *no);
        }
    }

    for precision in PRECISIONS {
        let parsed: Vec<_> = parse_lines(body, precision).collect();
        assert_eq!(parsed.len(), by_ns.len());
        for ((no, result), (no_ns, result_ns)) in parsed.iter().zip(&by_ns) {
            assert_eq!(no, no_ns);
            let (Ok(line), Ok(line_ns)) = (result, result_ns) else {
                // Only the timestamp's range depends on the precision.
                if let (Ok(line), Err(_)) | (Err(_), Ok(line)) = (result, result_ns) {
                    assert!(
                        line.timestamp.is_some(),
                        "line {no} differs without a timestamp"
                    );
                }
                continue;
            };
            assert_eq!(line.measurement, line_ns.measurement);
            assert_eq!(line.tags, line_ns.tags);
            assert_eq!(line.fields, line_ns.fields);
            let scaled = line_ns.timestamp.map(|t| t.checked_mul(precision.nanos()));
            assert_eq!(line.timestamp.map(Some), scaled);
        }

        let opts = LineOptions {
            precision,
            default_tenant: Some("fuzz"),
            now: Timestamp(1_793_491_200_123_456_789),
        };
        let mut batch = WriteBatch::new();
        let mut numbers = Vec::new();
        let errors = append_numbered(body, &opts, &mut batch, &mut numbers);
        assert_eq!(batch.len(), numbers.len());
        assert_eq!(batch.len() + errors.len(), parsed.len());
        assert!(
            batch.validate().is_ok(),
            "an accepted line breaks the engine's rules"
        );
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        assert!(errors.windows(2).all(|w| w[0].line < w[1].line));
        for no in &numbers {
            let parse = parsed.iter().find(|(n, _)| n == no).map(|(_, r)| r);
            assert!(
                matches!(parse, Some(Ok(_))),
                "event from line {no}, which did not parse"
            );
        }
    }

    for (_, result) in &by_ns {
        if let Ok(line) = result
            && writable(line)
        {
            let printed = line.to_string();
            let again: Vec<_> = parse_lines(printed.as_bytes(), Precision::Nanoseconds).collect();
            match again.as_slice() {
                [(1, Ok(reparsed))] => assert_eq!(reparsed, line, "printed as {printed:?}"),
                other => panic!("{printed:?} parses back as {other:?}"),
            }
        }
    }
});

/// Whether a client can write the line's names unambiguously: line protocol cannot express a
/// backslash right before an escapable character or at the end of a token (InfluxDB has the
/// same gap), nor a newline or carriage return, nor a measurement starting with `#` or a
/// space (a comment, or indentation).
fn writable(line: &ParsedLine<'_>) -> bool {
    let name_ok = |s: &str| {
        let b = s.as_bytes();
        b.last() != Some(&b'\\')
            && !b.contains(&b'\n')
            && !b.contains(&b'\r')
            && !b
                .windows(2)
                .any(|w| w[0] == b'\\' && matches!(w[1], b',' | b'=' | b' ' | b'\\' | b'"'))
    };
    let string_ok = |s: &str| !s.contains('\n') && !s.contains('\r');
    name_ok(&line.measurement)
        && !line.measurement.starts_with(['#', ' ', '\t'])
        && line.tags.iter().all(|(k, v)| name_ok(k) && name_ok(v))
        && line.fields.iter().all(|(k, v)| {
            name_ok(k)
                && match v {
                    LineValue::Str(s) => string_ok(s),
                    _ => true,
                }
        })
}
