//! Heap settings of the agent process. glibc's malloc gives each thread that allocates its own
//! arena and raises its mmap threshold after every large free, so buffers of many busy files
//! freed on one thread and reused on another, and 256 KiB chunk buffers that stop being mapped,
//! leave the resident size far above the live heap (measured at 1,000 busy files: 89 MiB RSS at
//! defaults, 61 MiB with these settings; BENCHMARKS.md). Two arenas and a fixed 128 KiB mmap
//! threshold (large buffers are mapped and given back when freed) bound that drift.
//!
//! Operators' own `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` or `GLIBC_TUNABLES` win: then
//! nothing is changed.

/// Arenas malloc may use.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENA_MAX: libc::c_int = 2;

/// Allocations at least this large are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// Environment variables through which an operator tunes glibc's malloc.
const OPERATOR_SETTINGS: [&str; 3] = [
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "GLIBC_TUNABLES",
];

/// Applies the settings; call first in `main`, before any other thread exists. Returns whether
/// they were applied.
pub fn tune() -> bool {
    if OPERATOR_SETTINGS
        .iter()
        .any(|name| std::env::var_os(name).is_some())
    {
        return false;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn apply() -> bool {
    // SAFETY: mallopt only changes parameters of glibc's allocator; it is called before the
    // runtime starts other threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_apply_unless_an_operator_set_malloc_variables() {
        let operator_set = OPERATOR_SETTINGS
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        let on_glibc = cfg!(all(target_os = "linux", target_env = "gnu"));
        assert_eq!(tune(), on_glibc && !operator_set);
    }
}
