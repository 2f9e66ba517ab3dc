//! The unit files pass `systemd-analyze verify`.

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../systemd");
    // verify needs the ExecStart binaries to exist: point them at stand-ins in a copy.
    let tmp = std::env::temp_dir().join(format!("catalytic-units-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".target")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("/usr/local/bin/catalytic-", "/bin/true --catalytic-");
        let target = if name.ends_with("@.service") {
            name.replace("@.service", "@lattice.service")
        } else {
            name.clone()
        };
        std::fs::write(tmp.join(&target), text).unwrap();
        units.push(tmp.join(&target));
    }
    assert!(
        units.len() >= 4,
        "expected api, worker@, migrate and target units"
    );
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("systemd-analyze (installed by scripts/test)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Any complaint naming one of our units is a failure; the host's own units are not ours.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("catalytic")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}
