//! A write buffer's event ids, held in the form segments store them: an id spelled as 32
//! lowercase hex digits or as a canonical UUID (what clients send nearly always) as its 16
//! bytes, any other spelling as its text. As text, an id took 37 bytes a row (the digits, an
//! offset, a presence flag), the largest single item of the buffers' memory; now 17.

use crate::segment::IdKey;

/// What every row takes: its form and 16 bytes.
const ROW_BYTES: usize = 17;

/// How a row holds its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Form {
    None,
    Hex,
    Uuid,
    /// The row's 16 bytes start with the index of its text in [`IdColumn::ends`].
    Text,
}

/// The event ids of a table's rows, in row order.
#[derive(Debug, Default)]
pub(super) struct IdColumn {
    forms: Vec<Form>,
    /// Per row, the id's value (big-endian) or its text's index.
    values: Vec<[u8; 16]>,
    /// The ids that have no binary form, one after the other.
    text: String,
    ends: Vec<u32>,
}

impl IdColumn {
    /// Appends a row's id; returns the bytes it took.
    pub(super) fn push(&mut self, id: Option<IdKey<'_>>) -> usize {
        let mut bytes = ROW_BYTES;
        let (form, value) = match id {
            None => (Form::None, 0),
            Some(IdKey::Hex(v)) => (Form::Hex, v),
            Some(IdKey::Uuid(v)) => (Form::Uuid, v),
            Some(IdKey::Text(s)) => {
                let index = self.ends.len() as u128;
                self.text.push_str(s);
                self.ends
                    .push(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
                bytes += s.len() + 4;
                (Form::Text, index)
            }
        };
        self.forms.push(form);
        self.values.push(value.to_be_bytes());
        bytes
    }

    /// The id of row `row`.
    pub(super) fn get(&self, row: usize) -> Option<IdKey<'_>> {
        let value = u128::from_be_bytes(*self.values.get(row)?);
        match self.forms.get(row)? {
            Form::None => None,
            Form::Hex => Some(IdKey::Hex(value)),
            Form::Uuid => Some(IdKey::Uuid(value)),
            Form::Text => {
                let i = usize::try_from(value).ok()?;
                let start = match i.checked_sub(1) {
                    Some(prev) => *self.ends.get(prev)? as usize,
                    None => 0,
                };
                let end = *self.ends.get(i)? as usize;
                self.text.get(start..end).map(IdKey::Text)
            }
        }
    }

    /// Every row's id, in row order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Option<IdKey<'_>>> + '_ {
        (0..self.forms.len()).map(|row| self.get(row))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_comes_back_as_it_went_in() {
        let ids = [
            Some("0123456789abcdef0123456789abcdef"),
            None,
            Some("0123456789ABCDEF0123456789ABCDEF"),
            Some("01234567-89ab-cdef-0123-456789abcdef"),
            Some("order-17"),
            Some(""),
            Some("01234567-89AB-cdef-0123-456789abcdef"),
            Some("ffffffffffffffffffffffffffffffff"),
        ];
        let mut column = IdColumn::default();
        for id in ids {
            column.push(id.map(IdKey::of));
        }
        let mut buf = [0; crate::segment::ID_TEXT_MAX];
        let back: Vec<Option<String>> = column
            .iter()
            .map(|k| k.map(|k| k.text(&mut buf).to_owned()))
            .collect();
        let expected: Vec<Option<String>> = ids.iter().map(|i| i.map(str::to_owned)).collect();
        assert_eq!(back, expected);
        assert!(matches!(column.get(0), Some(IdKey::Hex(_))));
        assert!(matches!(column.get(2), Some(IdKey::Text(_))));
        assert!(matches!(column.get(3), Some(IdKey::Uuid(_))));
        assert_eq!(column.get(ids.len()), None);
    }
}
