//! The `meterdb` command line: `serve`, `import`, `query`, `check`, `stats`.

mod cli;

/// mimalloc rather than glibc's allocator: over a 10M-event load the server took about 12 %
/// more events per second and peaked about 50 MB lower (PERFORMANCE.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option numbers (`mi_option_e` in its `mimalloc.h`; the crate's constants do not
/// list these two). The exact version of `libmimalloc-sys` is pinned in Cargo.toml, and the
/// test below checks the defaults these numbers read.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's options before the first allocation, since the first allocation reserves
/// the arena that serves the whole load and reads the commit option then (set from `main`
/// they made no difference). Eagerly committed arenas and a purge delay of a second kept
/// freed buffers resident: the 10M-event load peaked at 671 MB with mimalloc's defaults and
/// 465-484 MB with both off. An operator's `MIMALLOC_*` variable still wins.
extern "C" fn tune_allocator() {
    // SAFETY: `getenv` reads the environment without allocating, and nothing else runs
    // during start-up; `mi_option_set` only stores the value.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
        if libc::getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

/// Runs [`tune_allocator`] with the process's constructors, before `main` and before the
/// runtime's first allocation. (Not in the unit tests, which check the defaults first.)
#[cfg(not(test))]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> (std::ffi::c_long, std::ffi::c_long) {
        // SAFETY: reading an option has no precondition.
        #[allow(unsafe_code)]
        unsafe {
            (
                libmimalloc_sys::mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
                libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            )
        }
    }

    /// The option numbers first read mimalloc's documented defaults for the two options
    /// (eager commit "2", purge delay 1,000 ms), so they name the options meant; then the
    /// tuning turns both off.
    #[test]
    fn the_tuning_turns_off_eager_commit_and_the_purge_delay() {
        assert_eq!(options(), (2, 1000));
        tune_allocator();
        assert_eq!(options(), (0, 0));
    }
}
