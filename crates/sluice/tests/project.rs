//! The README's promises about setting up: its test command installs what the tests need
//! and is what CI runs; the Rust version it names is the one Cargo.toml enforces.

use std::path::Path;

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The commands of the README's quick start (the lines of its first sh block).
fn quick_start_commands() -> Vec<String> {
    let readme = repo_file("README.md");
    let start = readme.find("## Quick start").expect("a quick start");
    let block = readme[start..]
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an sh block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn the_readme_test_command_installs_what_the_tests_need_and_ci_runs_it() {
    let commands = quick_start_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let test_command = &commands[1];
    let script = repo_file(test_command);
    for needed in [
        "kcat",
        "build-essential",
        "pkg-config",
        "tests/python/requirements.txt",
        "cargo test",
    ] {
        assert!(
            script.contains(needed),
            "{test_command} does not set up {needed}"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join(test_command))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o111 != 0, "{test_command} is not executable");
    assert!(
        repo_file(".ci/run")
            .lines()
            .any(|l| l.trim() == test_command),
        ".ci/run does not run {test_command}"
    );
}

#[test]
fn the_rust_version_in_the_readme_is_the_one_cargo_enforces() {
    let manifest = repo_file("Cargo.toml");
    let declared = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version in the workspace Cargo.toml")
        .trim_matches('"')
        .to_string();
    assert!(
        repo_file("README.md").contains(&format!("Rust {declared} or later")),
        "README does not say Rust {declared} or later"
    );
}
