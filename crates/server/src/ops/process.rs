//! The standard `process_*` metrics, read from /proc when scraped (Linux only; zeros elsewhere).

#[derive(Default)]
pub struct ProcessStats {
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub open_fds: f64,
    pub start_time_seconds: f64,
    pub cpu_seconds: f64,
}

/// Clock ticks per second for /proc's times; 100 on every Linux this runs on.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: f64 = 4096.0;

pub fn read() -> ProcessStats {
    let mut stats = ProcessStats::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        stats.cpu_seconds = (field(14) + field(15)) / TICKS_PER_SECOND;
        stats.virtual_bytes = field(23);
        stats.resident_bytes = field(24) * PAGE_SIZE;
        stats.start_time_seconds = boot_time() + field(22) / TICKS_PER_SECOND;
    }
    stats.open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).unwrap_or(0.0);
    stats
}

fn boot_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_memory_and_a_start_time() {
        let stats = super::read();
        assert!(stats.resident_bytes > 1e5, "{}", stats.resident_bytes);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(stats.start_time_seconds > now - 3600.0 && stats.start_time_seconds <= now + 1.0);
        assert!(stats.open_fds >= 3.0);
    }
}
