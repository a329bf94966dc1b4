//! Row-level operations on [`ColumnBatch`]: picking rows (to drop deleted or expired ones),
//! appending batches and ordering by time (to merge segments). Dictionaries are rebuilt so
//! that a value no remaining row uses is gone from the batch, not only unreferenced: a
//! compacted segment must not keep a deleted user's id in a tag dictionary.

use std::collections::HashMap;

use super::{ColumnBatch, FieldColumn, FieldValues, NO_TAG, PresenceColumn, StrColumn, TagColumn};

impl ColumnBatch {
    /// A batch of the rows `rows` (indices into this batch, in the order given), with tag
    /// dictionaries holding only the values those rows use.
    pub fn select_rows(&self, rows: &[u32]) -> ColumnBatch {
        let pick = |i: &u32| *i as usize;
        ColumnBatch {
            tenant: self.tenant.clone(),
            measurement: self.measurement.clone(),
            timestamps: rows.iter().map(|i| self.timestamps[pick(i)]).collect(),
            tags: self
                .tags
                .iter()
                .map(|t| {
                    let mut col = TagColumn {
                        key: t.key.clone(),
                        ..TagColumn::default()
                    };
                    let mut renumber: HashMap<u32, u32> = HashMap::new();
                    col.ids = rows
                        .iter()
                        .map(|i| match t.ids[pick(i)] {
                            NO_TAG => NO_TAG,
                            id => *renumber.entry(id).or_insert_with(|| {
                                col.dict.push(t.dict[id as usize].clone());
                                (col.dict.len() - 1) as u32
                            }),
                        })
                        .collect();
                    col
                })
                .filter(|t| t.ids.iter().any(|&id| id != NO_TAG))
                .collect(),
            fields: self
                .fields
                .iter()
                .map(|f| FieldColumn {
                    key: f.key.clone(),
                    values: match &f.values {
                        FieldValues::F64(v) => FieldValues::F64(take(v, rows)),
                        FieldValues::I64(v) => FieldValues::I64(take(v, rows)),
                        FieldValues::U64(v) => FieldValues::U64(take(v, rows)),
                        FieldValues::Bool(v) => FieldValues::Bool(take(v, rows)),
                        FieldValues::Str(v) => {
                            FieldValues::Str(rows.iter().map(|i| v.get(pick(i))).collect())
                        }
                    },
                })
                .filter(|f| f.values.has_value())
                .collect(),
            event_ids: self
                .event_ids
                .as_ref()
                .map(|ids| rows.iter().map(|i| ids.get(pick(i))).collect::<StrColumn>())
                .filter(|ids| ids.iter().any(|v| v.is_some())),
            presence: self
                .presence
                .iter()
                .map(|p| PresenceColumn {
                    key: p.key.clone(),
                    ty: p.ty,
                    present: rows.iter().map(|i| p.present[pick(i)]).collect(),
                })
                .filter(|p| p.present.contains(&true))
                .collect(),
        }
    }

    /// The rows for which `keep(row)` holds, as [`ColumnBatch::select_rows`] builds them.
    pub fn filter_rows(&self, keep: impl Fn(usize) -> bool) -> ColumnBatch {
        let rows: Vec<u32> = (0..self.len() as u32)
            .filter(|&i| keep(i as usize))
            .collect();
        self.select_rows(&rows)
    }

    /// This batch's rows in time order (stable: rows of equal timestamps keep their order).
    pub fn sorted_by_time(&self) -> ColumnBatch {
        let mut rows: Vec<u32> = (0..self.len() as u32).collect();
        rows.sort_by_key(|&i| self.timestamps[i as usize]);
        self.select_rows(&rows)
    }

    /// Appends `other`'s rows (same tenant and measurement): columns are matched by key, a
    /// column one side lacks is absent (`None`, [`NO_TAG`]) in that side's rows. A field
    /// whose type differs is refused, since a segment column has one type.
    pub fn append(&mut self, other: &ColumnBatch) -> Result<(), String> {
        let (n, m) = (self.len(), other.len());
        self.timestamps.extend_from_slice(&other.timestamps);
        for t in &other.tags {
            let pos = match self.tags.iter().position(|c| c.key == t.key) {
                Some(p) => p,
                None => {
                    self.tags.push(TagColumn {
                        key: t.key.clone(),
                        dict: Vec::new(),
                        ids: vec![NO_TAG; n],
                    });
                    self.tags.len() - 1
                }
            };
            let col = &mut self.tags[pos];
            let mut index: HashMap<&str, u32> = col
                .dict
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_str(), i as u32))
                .collect();
            let mut added: Vec<String> = Vec::new();
            let base = col.dict.len() as u32;
            let map: Vec<u32> = t
                .dict
                .iter()
                .map(|v| {
                    *index.entry(v.as_str()).or_insert_with(|| {
                        added.push(v.clone());
                        base + added.len() as u32 - 1
                    })
                })
                .collect();
            col.ids.extend(t.ids.iter().map(|&id| match id {
                NO_TAG => NO_TAG,
                id => map[id as usize],
            }));
            col.dict.extend(added);
        }
        for col in &mut self.tags {
            col.ids.resize(n + m, NO_TAG);
        }
        for f in &other.fields {
            match self.fields.iter_mut().find(|c| c.key == f.key) {
                Some(col) => col
                    .values
                    .append_at(&f.values, n)
                    .map_err(|()| format!("field {:?} has two types in the merged rows", f.key))?,
                None => {
                    let mut values = FieldValues::new(f.values.field_type());
                    values
                        .append_at(&f.values, n)
                        .map_err(|()| format!("field {:?} cannot be merged", f.key))?;
                    self.fields.push(FieldColumn {
                        key: f.key.clone(),
                        values,
                    });
                }
            }
        }
        for col in &mut self.fields {
            col.values.pad_to(n + m);
        }
        for p in &other.presence {
            match self.presence.iter_mut().find(|c| c.key == p.key) {
                Some(col) => col.present.resize(n, false),
                None => self.presence.push(PresenceColumn {
                    key: p.key.clone(),
                    ty: p.ty,
                    present: vec![false; n],
                }),
            }
            if let Some(col) = self.presence.iter_mut().find(|c| c.key == p.key) {
                col.present.extend_from_slice(&p.present);
            }
        }
        for col in &mut self.presence {
            col.present.resize(n + m, false);
        }
        match (&mut self.event_ids, &other.event_ids) {
            (Some(ids), Some(more)) => more.iter().for_each(|v| ids.push(v)),
            (Some(ids), None) => (0..m).for_each(|_| ids.push(None)),
            (None, Some(more)) => {
                let mut ids: StrColumn = (0..n).map(|_| None).collect();
                more.iter().for_each(|v| ids.push(v));
                self.event_ids = Some(ids);
            }
            (None, None) => {}
        }
        Ok(())
    }
}

fn take<T: Copy>(v: &[Option<T>], rows: &[u32]) -> Vec<Option<T>> {
    rows.iter().map(|&i| v[i as usize]).collect()
}

impl FieldValues {
    /// True when some row has a value.
    pub fn has_value(&self) -> bool {
        match self {
            FieldValues::F64(v) => v.iter().any(Option::is_some),
            FieldValues::I64(v) => v.iter().any(Option::is_some),
            FieldValues::U64(v) => v.iter().any(Option::is_some),
            FieldValues::Bool(v) => v.iter().any(Option::is_some),
            FieldValues::Str(v) => v.iter().any(|s| s.is_some()),
        }
    }

    /// Pads the column with absent values up to `len` rows.
    pub(crate) fn pad_to(&mut self, len: usize) {
        match self {
            FieldValues::F64(v) => v.resize(len, None),
            FieldValues::I64(v) => v.resize(len, None),
            FieldValues::U64(v) => v.resize(len, None),
            FieldValues::Bool(v) => v.resize(len, None),
            FieldValues::Str(v) => (v.len()..len).for_each(|_| v.push(None)),
        }
    }

    /// Appends `more` after padding the column to `at` rows; `Err` on a type mismatch (then
    /// only the padding is done).
    pub(crate) fn append_at(&mut self, more: &FieldValues, at: usize) -> Result<(), ()> {
        self.pad_to(at);
        match (self, more) {
            (FieldValues::F64(a), FieldValues::F64(b)) => a.extend_from_slice(b),
            (FieldValues::I64(a), FieldValues::I64(b)) => a.extend_from_slice(b),
            (FieldValues::U64(a), FieldValues::U64(b)) => a.extend_from_slice(b),
            (FieldValues::Bool(a), FieldValues::Bool(b)) => a.extend_from_slice(b),
            (FieldValues::Str(a), FieldValues::Str(b)) => b.iter().for_each(|v| a.push(v)),
            _ => return Err(()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantId;

    fn batch(ts: &[i64], users: &[&str], ms: &[f64]) -> ColumnBatch {
        let mut dict: Vec<String> = Vec::new();
        let ids = users
            .iter()
            .map(|u| match dict.iter().position(|d| d == u) {
                Some(p) => p as u32,
                None => {
                    dict.push((*u).to_owned());
                    (dict.len() - 1) as u32
                }
            })
            .collect();
        ColumnBatch {
            presence: Vec::new(),
            tenant: TenantId::new("t"),
            measurement: "api_calls".into(),
            timestamps: ts.to_vec(),
            tags: vec![TagColumn {
                key: "user".into(),
                dict,
                ids,
            }],
            fields: vec![FieldColumn {
                key: "ms".into(),
                values: FieldValues::F64(ms.iter().map(|&v| Some(v)).collect()),
            }],
            event_ids: Some({
                let ids: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
                ids.iter().map(|t| Some(t.as_str())).collect()
            }),
        }
    }

    #[test]
    fn filtering_removes_the_value_from_the_dictionary() {
        let b = batch(&[1, 2, 3], &["alice", "bob", "alice"], &[1.0, 2.0, 3.0]);
        let kept = b.filter_rows(|i| b.tags[0].value(i) != Some("alice"));
        assert_eq!(kept.tags[0].dict, vec!["bob".to_owned()]);
        assert_eq!(kept.timestamps, vec![2]);
        assert_eq!(kept.event_ids.unwrap().get(0), Some("2"));
    }

    #[test]
    fn appended_batches_sort_by_time_with_columns_matched_by_key() {
        let mut a = batch(&[5, 1], &["x", "y"], &[5.0, 1.0]);
        let mut b = batch(&[3], &["y"], &[3.0]);
        b.tags[0].key = "endpoint".into();
        b.event_ids = None;
        a.append(&b).unwrap();
        let s = a.sorted_by_time();
        assert_eq!(s.timestamps, vec![1, 3, 5]);
        let user = s.tag("user").unwrap();
        assert_eq!(
            (0..3).map(|i| user.value(i)).collect::<Vec<_>>(),
            vec![Some("y"), None, Some("x")]
        );
        assert_eq!(s.tag("endpoint").unwrap().value(1), Some("y"));
        let ids = s.event_ids.as_ref().unwrap();
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            vec![Some("1"), None, Some("5")]
        );
        assert_eq!(
            s.field("ms").unwrap().values,
            FieldValues::F64(vec![Some(1.0), Some(3.0), Some(5.0)])
        );
    }

    #[test]
    fn a_field_of_two_types_is_refused() {
        let mut a = batch(&[1], &["x"], &[1.0]);
        let mut b = batch(&[2], &["x"], &[2.0]);
        b.fields[0].values = FieldValues::I64(vec![Some(2)]);
        assert!(a.append(&b).unwrap_err().contains("ms"));
    }
}
