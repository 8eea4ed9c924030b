//! README.md and docs/ against the code: the option tables, the layout, the
//! sample sandbox report, the default resolver, the licenses, and no claim
//! that libvirt uses the helper. Cheap checks that keep the docs current.

mod common;

use clap::CommandFactory;
use common::*;
use std::path::Path;
use virtfs_proxy_helper::cli::Cli;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// A file of the source tree, or None (and a SKIPPED line) where this user
/// may not read it (the unprivileged pass; the root pass checks it).
fn doc(test: &str, rel: &str) -> Option<String> {
    match std::fs::read_to_string(Path::new(MANIFEST).join(rel)) {
        Ok(text) => Some(text),
        Err(e) => {
            skip(test, &format!("{rel} is not readable here ({e})"));
            None
        }
    }
}

/// The text of a `## Heading` section.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading}"));
    let rest = &text[start + heading.len() + 5..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

fn long_options() -> Vec<String> {
    let mut cmd = Cli::command();
    cmd.build();
    cmd.get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

#[test]
fn option_tables_name_every_option() {
    let Some(readme) = doc("option_tables_name_every_option", "README.md") else {
        return;
    };
    let Some(compat) = doc("option_tables_name_every_option", "docs/compatibility.md") else {
        return;
    };
    let table = section(&readme, "Options");
    let new_options = compat
        .lines()
        .find(|l| l.starts_with("| new options |"))
        .expect("compatibility.md has a 'new options' row");
    let original = [
        "--path",
        "--fd",
        "--socket",
        "--uid",
        "--gid",
        "--nodaemon",
        "--help",
    ];
    for long in long_options() {
        assert!(
            table.contains(&format!("`{long}")) || table.contains(&format!(", {long}")),
            "README's option table names {long}"
        );
        if !original.contains(&long.as_str()) {
            assert!(
                new_options.contains(&format!("`{long}`")),
                "compatibility.md's new options name {long}"
            );
        }
    }
}

#[test]
fn the_layout_names_every_source_and_test_file() {
    let Some(readme) = doc("the_layout_names_every_source_and_test_file", "README.md") else {
        return;
    };
    let layout = section(&readme, "Layout");
    let mut missing = Vec::new();
    for (dir, ext) in [("src", "rs"), ("tests", "rs"), ("benches", "rs")] {
        for entry in std::fs::read_dir(Path::new(MANIFEST).join(dir))
            .unwrap()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let shown = if entry.path().is_dir() {
                format!("`{name}/`")
            } else if name.ends_with(ext) {
                format!("`{name}`")
            } else {
                continue;
            };
            let shown = if dir == "benches" {
                format!("`benches/{name}`")
            } else {
                shown
            };
            if !layout.contains(&shown) {
                missing.push(format!("{dir}/{name}"));
            }
        }
    }
    for other in ["`fuzz/`", "`ci/`", "`.ci/run`", "`docs/`"] {
        if !layout.contains(other) {
            missing.push(other.into());
        }
    }
    assert!(missing.is_empty(), "README's Layout leaves out {missing:?}");
}

#[test]
fn the_sample_report_has_the_real_reports_lines() {
    let Some(security) = doc(
        "the_sample_report_has_the_real_reports_lines",
        "docs/security.md",
    ) else {
        return;
    };
    let s = Scratch::new();
    let out = std::process::Command::new(our_binary())
        .args(["--sandbox-report", "--no-chroot", "-p"])
        .arg(&s.export)
        .output()
        .unwrap();
    let real = String::from_utf8_lossy(&out.stdout);
    let labels = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim().split_once(": "))
            .map(|(label, _)| label.to_string())
            .filter(|l| {
                !l.contains(' ')
                    || [
                        "nofile limit",
                        "user ns",
                        "id maps",
                        "export mount",
                        "process server",
                        "process waiter",
                        "process janitor",
                        "executable",
                    ]
                    .contains(&l.as_str())
            })
            .collect()
    };
    let start = security.find("## Checking it").unwrap();
    let sample = &security[start..];
    let sample = &sample[sample.find("```\n").unwrap() + 4..];
    let sample = &sample[..sample.find("```").unwrap()];
    let mut real_labels = labels(&real);
    // "missing:" appears only where capabilities are missing.
    real_labels.retain(|l| l != "missing");
    assert_eq!(
        labels(sample),
        real_labels,
        "sample:\n{sample}\nreal:\n{real}"
    );
}

#[test]
fn the_default_resolver_is_named_as_it_is() {
    let cmd = Cli::command();
    let resolver = cmd
        .get_arguments()
        .find(|a| a.get_id() == "resolver")
        .unwrap();
    let default = resolver.get_default_values()[0]
        .to_string_lossy()
        .into_owned();
    assert_eq!(default, "auto");
    let Some(security) = doc("the_default_resolver_is_named_as_it_is", "docs/security.md") else {
        return;
    };
    assert!(security.contains(&format!("The default, `--resolver {default}`")));
    assert!(!security.contains("the default where available"));
    let Some(readme) = doc("the_default_resolver_is_named_as_it_is", "README.md") else {
        return;
    };
    assert!(section(&readme, "Options").contains(&format!("`{default}` (default)")));
}

#[test]
fn no_claim_that_libvirt_uses_the_helper() {
    let mut cmd = Cli::command();
    let help = cmd.render_long_help().to_string();
    let mut texts = vec![("--help".to_string(), help)];
    for rel in [
        "README.md",
        "Cargo.toml",
        "docs/virtfs-proxy-helper.1",
        "docs/compatibility.md",
        "docs/security.md",
        "docs/protocol.md",
    ] {
        let Some(text) = doc("no_claim_that_libvirt_uses_the_helper", rel) else {
            return;
        };
        texts.push((rel.to_string(), text));
    }
    for (name, text) in texts {
        for (at, _) in text.match_indices("libvirt") {
            assert!(
                text[at..].starts_with("libvirt never supported"),
                "{name}: {}",
                &text[at.saturating_sub(80)..(at + 60).min(text.len())]
            );
        }
    }
}

#[test]
fn every_declared_license_has_its_file() {
    let Some(manifest) = doc("every_declared_license_has_its_file", "Cargo.toml") else {
        return;
    };
    assert!(manifest.contains("license = \"MIT OR Apache-2.0\""));
    for file in ["LICENSE-MIT", "LICENSE-APACHE"] {
        let Some(text) = doc("every_declared_license_has_its_file", file) else {
            return;
        };
        assert!(text.len() > 1000, "{file} holds the license text");
    }
}
