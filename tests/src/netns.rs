//! Running one test inside namespaces of its own: a network namespace
//! (only loopback, plus whatever `setup` adds) and a mount namespace in
//! which `/etc/resolv.conf` can be replaced, all as an unprivileged user
//! namespace (`unshare -rmn`). The test binary runs again inside with the
//! test's exact name; its output is passed on.

use std::process::Command;

/// Set in the environment of the run inside.
const INSIDE: &str = "SIGNALING_TEST_NETNS";

/// Whether this is the run inside.
pub fn inside() -> bool {
    std::env::var(INSIDE).is_ok()
}

/// Outside: runs test `name` inside after `setup` (shell commands) and
/// asserts that it passed; returns false. Inside: returns true, and the
/// test goes on. `resolv_conf`, if given, replaces `/etc/resolv.conf`
/// inside.
pub fn run_inside(name: &str, setup: &str, resolv_conf: Option<&str>) -> bool {
    if inside() {
        return true;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut script = String::from("set -e; ip link set lo up; ");
    if let Some(text) = resolv_conf {
        let file = dir.path().join("resolv.conf");
        std::fs::write(&file, text).expect("write resolv.conf");
        script.push_str(&format!(
            "mount --bind '{}' /etc/resolv.conf; ",
            file.display()
        ));
    }
    if !setup.trim().is_empty() {
        script.push_str(setup);
        script.push_str("; ");
    }
    script.push_str("exec \"$@\"");
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args(["-rmn", "sh", "-c", &script, "sh"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .expect("run unshare (util-linux) and ip (iproute2)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} in its namespace failed:\n{text}"
    );
    for line in text.lines().filter(|l| l.starts_with("REPORT ")) {
        println!("{line}");
    }
    false
}
