//! Shared by the fuzz targets: [`CappedAllocator`], a global allocator that aborts on any one
//! allocation larger than [`MAX_ALLOCATION`].
//!
//! The targets run without a sanitizer (`cargo fuzz run -s none`, on the stable toolchain),
//! and then libFuzzer's `-malloc_limit_mb` has no malloc hook to act on, and `-rss_limit_mb`
//! only sees pages that are touched: a `Vec::with_capacity` sized by a damaged length field
//! would pass unnoticed. The fuzz inputs are a few KiB, so no decoder has a reason to ask for
//! this much at once; libFuzzer reports the abort as a crash and keeps the input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The largest single allocation a target may make, in bytes.
pub const MAX_ALLOCATION: usize = 256 << 20;

/// [`System`], aborting on an allocation over [`MAX_ALLOCATION`].
pub struct CappedAllocator;

fn check(size: usize) {
    if size > MAX_ALLOCATION {
        // An allocator must not unwind, and formatting would allocate: a fixed message, then
        // abort, which libFuzzer reports as a crash.
        let _ = std::io::stderr().write_all(b"allocation over MAX_ALLOCATION (256 MiB)\n");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the size check only reads the layout.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: as for `dealloc`; the caller's guarantees for `new_size` are passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
