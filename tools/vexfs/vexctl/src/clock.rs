// SPDX-License-Identifier: GPL-2.0

//! The clock `vexctl` times with, as the kernel reports it.
//!
//! `std::time::Instant` reads `CLOCK_MONOTONIC`, which is only as fine as
//! the kernel's clocksource. On a machine (or VM) whose TSC could not be
//! calibrated and which has no HPET or ACPI PM timer, the kernel falls back
//! to `jiffies` or `refined-jiffies`: every time is then a multiple of the
//! timer tick (4 ms at `HZ=250`), and a search latency reads as 0 or 4 ms.

use std::path::Path;

/// Where sysfs names the clocksource the kernel times with.
pub const CURRENT_CLOCKSOURCE: &str =
    "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// The kernel's current clocksource (`tsc`, `hpet`, `acpi_pm`, `jiffies`,
/// ...), or `None` if sysfs does not say (not Linux, sysfs not mounted).
pub fn clocksource() -> Option<String> {
    clocksource_at(Path::new(CURRENT_CLOCKSOURCE))
}

fn clocksource_at(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

/// Whether a clocksource advances only with the timer tick, so that times
/// read through it are multiples of the tick.
pub fn is_coarse(name: &str) -> bool {
    name.contains("jiffies")
}

/// A note for text output when the clock is coarse, empty otherwise.
pub fn coarse_note(clocksource: Option<&str>) -> String {
    match clocksource {
        Some(c) if is_coarse(c) => format!(
            "clock: {} (coarse: times are multiples of the timer tick)",
            c
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clocks() {
        assert!(is_coarse("jiffies"));
        assert!(is_coarse("refined-jiffies"));
        assert!(!is_coarse("tsc"));
        assert!(!is_coarse("hpet"));
        assert!(!is_coarse("acpi_pm"));
        assert!(!is_coarse("timer"));
        assert!(coarse_note(Some("refined-jiffies")).starts_with("clock: refined-jiffies"));
        assert!(coarse_note(Some("tsc")).is_empty());
        assert!(coarse_note(None).is_empty());
    }

    #[test]
    fn reads_sysfs_format() {
        let dir = std::env::temp_dir().join(format!("vexctl-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("current_clocksource");
        std::fs::write(&f, "tsc\n").unwrap();
        assert_eq!(clocksource_at(&f).as_deref(), Some("tsc"));
        std::fs::write(&f, "\n").unwrap();
        assert_eq!(clocksource_at(&f), None);
        assert_eq!(clocksource_at(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
