//! The process's memory allocator: mimalloc (v2) rather than glibc's malloc.
//!
//! A member frees the log entries a snapshot covers in bulk, and walking glibc's fragmented
//! free lists then took ~10% of the machine's CPU (the Raft drivers' `_int_malloc`) under
//! ZooKeeper writes on a large tree. mimalloc's own default, giving freed memory back to the
//! system 10 ms after it is freed, made much of it page faults again when it was reused (a
//! tenth of the machine's CPU zeroing pages): it waits a second here (bench/HISTORY.md).

use std::os::raw::c_long;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v2's `mi_option_purge_delay` (its index in `mi_option_e`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory is kept before it goes back to the system.
const PURGE_DELAY_MS: c_long = 1000;

/// Sets the allocator's options; call first thing in `main`.
pub fn configure() {
    // SAFETY: setting an option is allowed at any time; mimalloc reads it when it purges.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reading and setting an option is allowed at any time.
        let default = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(default, 10, "mimalloc v2 documents a 10 ms purge delay: is PURGE_DELAY still its index?");
        configure();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, PURGE_DELAY_MS);
    }
}
