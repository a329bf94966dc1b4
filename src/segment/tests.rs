//! Segment tests: round trips against the input, scans against a brute-force filter of the
//! input rows, counts, and corruption (bit flips, truncation) that must be reported with the
//! file and offset, never panic, and leave other tenants readable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use regex::Regex;

use super::footer::PACK_LIMIT;
use super::*;
use crate::fs::{FileBytes, StdFs};
use crate::model::FieldType;
use crate::scan::{FieldColumn, FieldValues, NO_TAG, StrColumn, TagColumn, TagOp, TagPredicate};

const DAY: Day = Day(20_000);

fn info() -> SegmentInfo {
    SegmentInfo {
        id: SegmentId(7),
        shard: 3,
        day: DAY,
        seq_min: SeqNo(10),
        seq_max: SeqNo(99),
        commit: 5,
        commit_parts: 2,
        replaces: vec![SegmentId(1), SegmentId(4)],
    }
}

/// A field value compared by bits, so that NaN payloads and -0.0 count.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    F(u64),
    I(i64),
    U(u64),
    B(bool),
    S(String),
}

/// One row of a table, as the tests compare it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    ts: i64,
    tags: Vec<(String, Option<String>)>,
    fields: Vec<(String, Option<Val>)>,
    event_id: Option<Option<String>>,
}

fn field_at(values: &FieldValues, i: usize) -> Option<Val> {
    match values {
        FieldValues::F64(v) => v.get(i).copied().flatten().map(|x| Val::F(x.to_bits())),
        FieldValues::I64(v) => v.get(i).copied().flatten().map(Val::I),
        FieldValues::U64(v) => v.get(i).copied().flatten().map(Val::U),
        FieldValues::Bool(v) => v.get(i).copied().flatten().map(Val::B),
        FieldValues::Str(v) => v.get(i).map(|s| Val::S(s.to_owned())),
    }
}

/// A batch as (tenant, measurement, rows).
fn rows(b: &ColumnBatch) -> (String, String, Vec<Row>) {
    let rows = (0..b.len())
        .map(|i| Row {
            ts: b.timestamps[i],
            tags: b
                .tags
                .iter()
                .map(|t| (t.key.clone(), t.value(i).map(str::to_owned)))
                .collect(),
            fields: b
                .fields
                .iter()
                .map(|f| (f.key.clone(), field_at(&f.values, i)))
                .collect(),
            event_id: b.event_ids.as_ref().map(|e| e.get(i).map(str::to_owned)),
        })
        .collect();
    (b.tenant.to_string(), b.measurement.clone(), rows)
}

/// What a scan must return: the input rows filtered one by one, projected.
fn brute_force(input: &[ColumnBatch], req: &ScanRequest) -> Vec<(String, String, Vec<Row>)> {
    let mut out = Vec::new();
    for b in input {
        if req.tenant.as_ref().is_some_and(|t| *t != b.tenant)
            || req
                .measurement
                .as_ref()
                .is_some_and(|m| *m != b.measurement)
        {
            continue;
        }
        let (tenant, measurement, all) = rows(b);
        let kept: Vec<Row> = all
            .into_iter()
            .filter(|r| req.time_contains(r.ts))
            .filter(|r| {
                req.predicates.iter().all(|p| {
                    let v = r
                        .tags
                        .iter()
                        .find(|(k, _)| *k == p.key)
                        .and_then(|(_, v)| v.clone());
                    p.matches(v.as_deref().unwrap_or(""))
                })
            })
            .map(|r| Row {
                ts: r.ts,
                tags: r.tags.into_iter().filter(|(k, _)| req.wants(k)).collect(),
                fields: r.fields.into_iter().filter(|(k, _)| req.wants(k)).collect(),
                event_id: r.event_id.filter(|_| req.wants("event_id")),
            })
            .collect();
        if !kept.is_empty() {
            out.push((tenant, measurement, kept));
        }
    }
    out
}

fn write(tables: &[ColumnBatch]) -> Vec<u8> {
    let mut w = SegmentWriter::new(info());
    for t in tables {
        w.add_table(t).expect("valid table");
    }
    w.into_bytes().expect("encodes")
}

fn open_bytes(bytes: Vec<u8>) -> Result<Arc<Segment>> {
    Segment::from_bytes(FileBytes::Owned(bytes), PathBuf::from("mem.seg"))
}

// ---- generators ----

const TAG_KEYS: [&str; 3] = ["endpoint", "method", "user"];
const TAG_VALUES: [&str; 6] = ["", "GET", "POST", "/api/a", "u1", "ü"];
const FIELDS: [(&str, FieldType); 5] = [
    ("bytes", FieldType::Integer),
    ("n", FieldType::Unsigned),
    ("ok", FieldType::Boolean),
    ("rt", FieldType::Float),
    ("s", FieldType::String),
];

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0i64..100_000).prop_map(|k| k as f64 / 100.0),
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn any_event_id() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        any::<u128>().prop_map(|v| Some(format!("{v:032x}"))),
        any::<u128>().prop_map(|v| {
            let h = format!("{v:032x}");
            Some(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }),
        any::<u128>().prop_map(|v| Some(format!("{v:032X}"))),
        "[a-z0-9-]{0,12}".prop_map(Some),
    ]
}

/// A column of `n` values of a field type, some missing.
fn field_values(ty: FieldType, n: usize) -> BoxedStrategy<FieldValues> {
    let opt = |w: u32| prop::bool::weighted(f64::from(w) / 10.0);
    match ty {
        FieldType::Float => prop::collection::vec(prop::option::weighted(0.8, any_f64()), n)
            .prop_map(FieldValues::F64)
            .boxed(),
        FieldType::Integer => prop::collection::vec(prop::option::weighted(0.8, any::<i64>()), n)
            .prop_map(FieldValues::I64)
            .boxed(),
        FieldType::Unsigned => prop::collection::vec(prop::option::weighted(0.9, 0u64..5_000), n)
            .prop_map(FieldValues::U64)
            .boxed(),
        FieldType::Boolean => prop::collection::vec(prop::option::of(any::<bool>()), n)
            .prop_map(FieldValues::Bool)
            .boxed(),
        FieldType::String => prop::collection::vec((opt(8), "[a-c]{0,5}"), n)
            .prop_map(|v| {
                FieldValues::Str(v.iter().map(|(p, s)| p.then_some(s.as_str())).collect())
            })
            .boxed(),
    }
}

fn table(tenant: String, measurement: String) -> impl Strategy<Value = ColumnBatch> {
    (1usize..30, prop::bool::weighted(0.1)).prop_flat_map(move |(small, big)| {
        let n = if big { small * 40 } else { small };
        let (tenant, measurement) = (tenant.clone(), measurement.clone());
        (
            prop::collection::vec(0i64..1_000_000_000, n),
            prop::sample::subsequence(TAG_KEYS.to_vec(), 0..=3),
            prop::collection::vec(
                prop::option::weighted(0.8, prop::sample::select(&TAG_VALUES[..])),
                n * 3,
            ),
            prop::sample::subsequence(FIELDS.to_vec(), 0..=5).prop_flat_map(move |fs| {
                fs.into_iter()
                    .map(|(k, ty)| field_values(ty, n).prop_map(move |v| (k, v)))
                    .collect::<Vec<_>>()
            }),
            prop::option::weighted(0.7, prop::collection::vec(any_event_id(), n)),
        )
            .prop_map(move |(mut ts, keys, tag_values, fields, event_ids)| {
                ts.sort_unstable();
                let tags = keys
                    .iter()
                    .enumerate()
                    .map(|(k, key)| {
                        // Dictionaries as a caller might build them: unsorted, first seen first.
                        let mut dict: Vec<String> = Vec::new();
                        let ids = (0..ts.len())
                            .map(|row| match tag_values[k * ts.len() + row] {
                                None => NO_TAG,
                                Some(v) => match dict.iter().position(|d| d == v) {
                                    Some(i) => i as u32,
                                    None => {
                                        dict.push(v.to_owned());
                                        (dict.len() - 1) as u32
                                    }
                                },
                            })
                            .collect();
                        TagColumn {
                            key: (*key).to_owned(),
                            dict,
                            ids,
                        }
                    })
                    .collect();
                ColumnBatch {
                    presence: Vec::new(),
                    tenant: TenantId::new(&tenant),
                    measurement: measurement.clone(),
                    timestamps: ts.into_iter().map(|t| DAY.start() + t * 50_000).collect(),
                    tags,
                    fields: fields
                        .into_iter()
                        .map(|(k, values)| FieldColumn {
                            key: k.to_owned(),
                            values,
                        })
                        .collect(),
                    event_ids: event_ids.map(|v| v.iter().map(|e| e.as_deref()).collect()),
                }
            })
    })
}

/// Several tenants with one to three measurements each, in the writer's order.
fn tables() -> impl Strategy<Value = Vec<ColumnBatch>> {
    let tenants = prop::sample::subsequence(vec!["a", "acme", "b", "t0001"], 1..=4);
    let measurements = prop::sample::subsequence(vec!["api_calls", "db_queries", "storage"], 1..=3);
    tenants
        .prop_flat_map(move |ts| {
            ts.into_iter()
                .map(|t| {
                    measurements.clone().prop_flat_map(move |ms| {
                        ms.into_iter()
                            .map(|m| table(t.to_owned(), m.to_owned()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect::<Vec<_>>()
        })
        .prop_map(|v| v.into_iter().flatten().collect())
}

fn predicate() -> impl Strategy<Value = TagPredicate> {
    let key = prop::sample::select(vec!["endpoint", "method", "user", "absent"]);
    let value = prop::sample::select(TAG_VALUES.to_vec());
    let pattern = prop::sample::select(vec!["^/api", "GET|u1", "^$", "."]);
    (
        key,
        0..5u8,
        value,
        pattern,
        prop::collection::vec(prop::sample::select(TAG_VALUES.to_vec()), 0..3),
    )
        .prop_map(|(key, op, value, pattern, set)| {
            let re = Regex::new(pattern).expect("valid pattern");
            let op = match op {
                0 => TagOp::Eq(value.to_owned()),
                1 => TagOp::NotEq(value.to_owned()),
                2 => TagOp::Regex(re),
                3 => TagOp::NotRegex(re),
                _ => TagOp::In(set.into_iter().map(str::to_owned).collect()),
            };
            TagPredicate {
                key: key.to_owned(),
                op,
            }
        })
}

fn request() -> impl Strategy<Value = ScanRequest> {
    let names = vec![
        "endpoint", "method", "user", "bytes", "n", "ok", "rt", "s", "event_id", "zz",
    ];
    (
        prop::option::weighted(
            0.5,
            prop::sample::select(vec!["a", "acme", "b", "t0001", "nobody"]),
        ),
        prop::option::weighted(
            0.4,
            prop::sample::select(vec!["api_calls", "db_queries", "storage"]),
        ),
        prop::option::weighted(0.6, (0i64..1_100_000_000, 0i64..600_000_000)),
        prop::collection::vec(predicate(), 0..3),
        prop::option::weighted(0.5, prop::sample::subsequence(names, 0..=10)),
    )
        .prop_map(
            |(tenant, measurement, time, predicates, columns)| ScanRequest {
                presence_only: Vec::new(),
                tenant: tenant.map(TenantId::new),
                measurement: measurement.map(str::to_owned),
                time: time.map(|(s, len)| {
                    let start = DAY.start() + s * 50_000;
                    start..start + len * 50_000
                }),
                predicates,
                columns: columns.map(|c| c.into_iter().map(str::to_owned).collect()),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn segments_round_trip_every_table(input in tables()) {
        let seg = open_bytes(write(&input)).expect("open");
        let got: Vec<_> = seg.scan(&ScanRequest::default()).expect("scan").iter().map(rows).collect();
        let want: Vec<_> = input.iter().map(rows).collect();
        prop_assert_eq!(got, want);
        prop_assert!(seg.verify().is_empty());
        prop_assert_eq!(seg.info(), &info());
        prop_assert_eq!(seg.tables().len(), input.len());
        let n: usize = input.iter().map(ColumnBatch::len).sum();
        prop_assert_eq!(seg.count(&ScanRequest::default()).expect("count"), n as u64);
    }

    #[test]
    fn scans_equal_a_brute_force_filter(input in tables(), reqs in prop::collection::vec(request(), 1..8)) {
        let seg = open_bytes(write(&input)).expect("open");
        for req in reqs {
            let got: Vec<_> = seg.scan(&req).expect("scan").iter().map(rows).collect();
            let want = brute_force(&input, &req);
            let n_want: usize = want.iter().map(|t| t.2.len()).sum();
            prop_assert_eq!(&got, &want, "{:?}", req);
            prop_assert_eq!(seg.count(&req).expect("count"), n_want as u64, "{:?}", req);
        }
    }

    #[test]
    fn damaged_files_never_panic(
        input in tables(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        cut in prop::option::weighted(0.3, any::<prop::sample::Index>()),
        reseal in any::<bool>(),
    ) {
        let mut bytes = write(&input);
        for (at, bit) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        // Resealed, the damage gets past the checksums into the footer and column decoders.
        if reseal {
            bytes = reseal_for_fuzzing(&bytes);
        }
        if let Ok(seg) = open_bytes(bytes) {
            let _ = seg.verify();
            let _ = seg.scan(&ScanRequest::default());
            let _ = seg.count(&ScanRequest { predicates: vec![TagPredicate::eq("user", "u1")], ..ScanRequest::default() });
        }
    }
}

// ---- fixed examples ----

fn api_table(tenant: &str, n: usize) -> ColumnBatch {
    ColumnBatch {
        presence: Vec::new(),
        tenant: TenantId::new(tenant),
        measurement: "api_calls".into(),
        timestamps: (0..n as i64)
            .map(|i| DAY.start() + i * 1_000_003_917)
            .collect(),
        tags: vec![TagColumn {
            key: "user".into(),
            dict: vec!["u2".into(), "u1".into()],
            ids: (0..n)
                .map(|i| if i % 7 == 0 { NO_TAG } else { (i % 2) as u32 })
                .collect(),
        }],
        fields: vec![FieldColumn {
            key: "rt".into(),
            values: FieldValues::F64((0..n).map(|i| Some((i % 1000) as f64 / 100.0)).collect()),
        }],
        event_ids: Some(
            (0..n)
                .map(|i| format!("{:032x}", i * 7_919))
                .map(Some)
                .collect::<Vec<_>>()
                .iter()
                .map(|s| s.as_deref())
                .collect::<StrColumn>(),
        ),
    }
}

fn two_tenants() -> Vec<ColumnBatch> {
    vec![api_table("big", 20_000), api_table("small", 5)]
}

fn corruption_of(err: Error) -> Corruption {
    match err {
        Error::Corruption(c) => c,
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn large_tables_split_into_row_groups_and_blocks() {
    let seg = open_bytes(write(&two_tenants())).expect("open");
    let big = &seg.footer.tables[0];
    assert_eq!(big.row_groups.len(), 3);
    assert_eq!(
        big.blocks.len(),
        1 + 3 * 3,
        "tag chunk + 3 x (ts, rt, event ids)"
    );
    assert_eq!(
        seg.footer.tables[1].blocks.len(),
        1,
        "a small table is one block"
    );
    let total: u64 = big.blocks.iter().map(|b| u64::from(b.len)).sum();
    assert!(total > PACK_LIMIT);
    let req = ScanRequest {
        tenant: Some(TenantId::new("big")),
        time: Some(DAY.start() + 9_000 * 1_000_003_917..DAY.start() + 9_010 * 1_000_003_917),
        predicates: vec![TagPredicate::eq("user", "u1")],
        ..ScanRequest::default()
    };
    let got = seg.scan(&req).expect("scan");
    assert_eq!(got.len(), 1);
    // Odd rows are u1, except multiples of 7 (9009), which lack the tag.
    assert_eq!(got[0].len(), 4);
    assert_eq!(
        got[0].tag("user").map(|t| t.dict.clone()),
        Some(vec!["u1".into(), "u2".into()])
    );
    assert_eq!(seg.count(&req).expect("count"), 4);
    let range = seg
        .tenant_range(&TenantId::new("small"))
        .expect("small has data");
    assert!(range.start >= seg.tenant_range(&TenantId::new("big")).expect("big").end);
    assert_eq!(seg.tenant_range(&TenantId::new("nobody")), None);
}

#[test]
fn flipped_block_bit_is_reported_with_its_offset_and_spares_other_tenants() {
    let mut bytes = write(&two_tenants());
    let seg = open_bytes(bytes.clone()).expect("open");
    let block = seg.footer.tables[0].blocks[4];
    bytes[block.offset as usize + 1] ^= 0x10;
    let seg = open_bytes(bytes).expect("the footer is intact");

    let big = ScanRequest {
        tenant: Some(TenantId::new("big")),
        ..ScanRequest::default()
    };
    let c = corruption_of(seg.scan(&big).expect_err("damaged block"));
    assert_eq!(
        (c.path.as_path(), c.offset),
        (Path::new("mem.seg"), block.offset)
    );
    assert!(
        matches!(c.kind, CorruptionKind::ChecksumMismatch { .. }),
        "{c}"
    );

    let small = ScanRequest {
        tenant: Some(TenantId::new("small")),
        ..ScanRequest::default()
    };
    assert_eq!(seg.scan(&small).expect("other tenant").len(), 1);
    let reports = seg.verify();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].offset, block.offset);
}

#[test]
fn damaged_footer_or_truncation_fails_open() {
    let bytes = write(&two_tenants());
    let trailer = header::Trailer::decode(&bytes).expect("trailer");
    let mut footer_flip = bytes.clone();
    footer_flip[trailer.footer_offset as usize + 3] ^= 1;
    let c = corruption_of(open_bytes(footer_flip).expect_err("footer"));
    assert_eq!(c.offset, trailer.footer_offset);
    assert!(matches!(c.kind, CorruptionKind::ChecksumMismatch { .. }));

    for len in [0, 5, header::HEADER_LEN, bytes.len() / 2, bytes.len() - 1] {
        let c = corruption_of(open_bytes(bytes[..len].to_vec()).expect_err("truncated"));
        assert_eq!(c.path, PathBuf::from("mem.seg"), "{len}");
    }
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert_eq!(
        corruption_of(open_bytes(magic).expect_err("magic")).kind,
        CorruptionKind::BadMagic
    );
}

#[test]
fn writer_refuses_out_of_order_input() {
    let mut w = SegmentWriter::new(info());
    w.add_table(&api_table("b", 3)).expect("first");
    assert!(
        w.add_table(&api_table("a", 3)).is_err(),
        "tenants must ascend"
    );
    let mut unsorted = api_table("c", 3);
    unsorted.timestamps.reverse();
    assert!(
        w.add_table(&unsorted).is_err(),
        "rows must be sorted by time"
    );
    let mut bad_id = api_table("d", 3);
    bad_id.tags[0].ids[0] = 9;
    assert!(
        w.add_table(&bad_id).is_err(),
        "tag ids must index the dictionary"
    );
}

#[test]
fn finish_writes_through_a_temp_file_and_open_maps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = path_in(dir.path(), SegmentId(7));
    let mut w = SegmentWriter::new(info());
    for t in two_tenants() {
        w.add_table(&t).expect("add");
    }
    let len = w.finish(&StdFs, &path).expect("finish");
    assert!(!crate::fs::temp_path(&path).exists());
    let seg = Segment::open(&StdFs, &path).expect("open");
    assert_eq!((seg.file_len(), seg.path()), (len, path.as_path()));
    assert_eq!(seg.count(&ScanRequest::default()).expect("count"), 20_005);
    assert!(seg.verify().is_empty());
}

#[test]
fn seed_corpus_files_open_and_scan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/segment_decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read seed");
        let seg = open_bytes(bytes).expect("seed opens");
        assert!(seg.verify().is_empty());
        assert!(!seg.scan(&ScanRequest::default()).expect("scan").is_empty());
        n += 1;
    }
    assert!(n >= 2, "the fuzz target needs seeds");
}

/// Writes the fuzz seed corpus (run with `METERDB_WRITE_SEEDS=1`); otherwise only checks that
/// the seeds would be built from valid segments.
#[test]
fn seed_segments_are_valid() {
    let mut uuid_ids = api_table("u", 3);
    uuid_ids.event_ids = Some(
        [
            "123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-426614174001",
            "X",
        ]
        .into_iter()
        .map(Some)
        .collect(),
    );
    let seeds = [
        write(&[api_table("a", 4), api_table("b", 2)]),
        write(&[uuid_ids]),
        write(&[api_table("big", 1_500)]),
    ];
    for (i, seed) in seeds.iter().enumerate() {
        assert!(open_bytes(seed.clone()).expect("seed").verify().is_empty());
        if std::env::var_os("METERDB_WRITE_SEEDS").is_some() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/segment_decode");
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join(format!("seed-{i}.seg")), seed).expect("write seed");
        }
    }
}

#[test]
fn resealed_damage_reaches_the_decoders_and_is_reported() {
    let mut bytes = write(&two_tenants());
    let seg = open_bytes(bytes.clone()).expect("open");
    let tag_chunk = seg.footer.tables[0].tags.expect("tag chunk");
    // The first section length now claims far more bytes than the chunk has.
    bytes[tag_chunk.offset as usize] = 0xff;
    let seg = open_bytes(reseal_for_fuzzing(&bytes)).expect("checksums are valid again");
    assert!(seg.verify().is_empty());
    let pred = ScanRequest {
        predicates: vec![TagPredicate::eq("user", "u1")],
        ..ScanRequest::default()
    };
    let c = corruption_of(seg.scan(&pred).expect_err("damaged tag chunk"));
    assert_eq!(c.offset, tag_chunk.offset);
    assert!(
        !matches!(c.kind, CorruptionKind::ChecksumMismatch { .. }),
        "{c}"
    );
    assert!(seg.count(&pred).is_err());
}
