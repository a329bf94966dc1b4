//! What the usage tracker (`crate::tracker`) needs from the engine beyond its public API: the
//! file layer, so that the tracker's own files go through the same [`FileSystem`] (and the
//! same fault injection in tests) as the engine's.

use std::sync::Arc;

use super::Engine;
use crate::fs::FileSystem;

impl Engine {
    /// The file layer the engine was opened with ([`crate::Options::fs`]).
    pub fn file_system(&self) -> Arc<dyn FileSystem> {
        self.fs.clone()
    }
}
