//! Ingest formats: turning bytes a client sent into events of a [`crate::WriteBatch`].
//!
//! This module owns the wire formats only. It knows nothing of storage: it produces batches
//! (or borrowed parsed lines) and leaves validation against stored data, routing and
//! durability to the engine. Bytes from the network never panic here; every rejected line
//! gets its own error naming the line.

pub mod lineproto;
