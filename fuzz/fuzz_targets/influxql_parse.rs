//! Feeds arbitrary bytes to `meterdb::influxql::parse_query`, the function `/query` runs on
//! every query from the network, and checks what it promises: no panic, no stack overflow, no
//! runaway time on any input, and every query it accepts prints (through the syntax tree's
//! `Display`) to text that parses back to the same statements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meterdb::influxql::parse_query;

#[global_allocator]
static ALLOCATOR: meterdb_fuzz::CappedAllocator = meterdb_fuzz::CappedAllocator;

fuzz_target!(|bytes: &[u8]| {
    // Queries arrive as UTF-8 text; lossy decoding still lets mutations reach every path.
    let text = String::from_utf8_lossy(bytes);
    let Ok(statements) = parse_query(&text) else {
        return;
    };
    let printed: Vec<String> = statements.iter().map(ToString::to_string).collect();
    let printed = printed.join(";\n");
    match parse_query(&printed) {
        Ok(reparsed) => assert_eq!(reparsed, statements, "printed as {printed}"),
        Err(e) => panic!("{printed:?} does not parse back: {e}"),
    }
});
