//! `rust-version` tells the truth: every crate of the workspace declares
//! the highest `rust-version` that any locked dependency declares, read from
//! `cargo metadata` (all targets and kinds: normal, dev and build). A
//! dependency update that raises it fails here, naming the dependency.

use std::process::Command;

/// `1.85` and `1.85.0` alike, as (major, minor, patch).
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|e| panic!("rust-version {text:?}: {e}"))
    });
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    (major, minor, patch)
}

#[test]
fn rust_version_is_the_highest_any_locked_dependency_declares() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let packages = meta["packages"].as_array().unwrap();
    let declared = |p: &serde_json::Value| p["rust_version"].as_str().map(version);

    let (highest, by) = packages
        .iter()
        .filter(|p| !members.contains(&p["id"].as_str().unwrap()))
        .filter_map(|p| {
            let name = format!("{} {}", p["name"].as_str()?, p["version"].as_str()?);
            Some((declared(p)?, name))
        })
        .max()
        .expect("some dependency declares a rust-version");
    assert!(highest >= (1, 80, 0), "implausible: {highest:?} from {by}");

    let mut checked = 0;
    for p in packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap()))
    {
        let name = p["name"].as_str().unwrap();
        let ours = declared(p).unwrap_or_else(|| panic!("{name} declares no rust-version"));
        assert_eq!(
            ours, highest,
            "{name} declares rust-version {ours:?}, but {by} needs {highest:?}: \
             set [workspace.package] rust-version in Cargo.toml"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} workspace members found");
}
