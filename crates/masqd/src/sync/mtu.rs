//! The MTU of an interface, from which `--start-daemon` takes its default sync-maxlen.

use std::path::Path;

/// The MTU of interface `name` as the kernel reports it, or `None` when there is no such
/// interface (`--start-daemon` then fails with ENODEV, as on a kernel director).
pub fn interface_mtu(name: &str) -> Option<u32> {
    // An interface name is one path component; anything else names no interface.
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("mtu")).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_loopbacks_mtu_and_refuses_other_paths() {
        assert!(interface_mtu("lo").is_some_and(|mtu| mtu > 0));
        assert_eq!(interface_mtu("no-such-if0"), None);
        assert_eq!(interface_mtu("../lo"), None);
        assert_eq!(interface_mtu(".."), None);
    }
}
