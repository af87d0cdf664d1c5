//! The `replay`, `simulate` and `template lint` commands, run as a user runs them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/analysis-templates/generic-http.yaml"
);

fn stream(name: &str) -> String {
    format!(
        "{}/examples/streams/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn replay(input: &str) -> Vec<serde_json::Value> {
    let out = Command::new(BIN)
        .args(["replay", "--template", TEMPLATE, "--input", input])
        .output()
        .expect("run canary-gate replay");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

#[test]
fn the_shipped_streams_give_the_expected_verdicts() {
    for (name, expected) in [
        ("good-canary", "promote"),
        ("error-regression", "rollback"),
        ("latency-regression", "rollback"),
    ] {
        let input = stream(name);
        let lines = std::fs::read_to_string(&input).unwrap().lines().count();
        let decisions = replay(&input);
        assert_eq!(
            decisions.len(),
            lines,
            "{name}: one decision per input line"
        );
        let last = decisions.last().unwrap();
        assert_eq!(last["decision"], expected, "{name}: {last}");
        assert!(last["reason"].as_str().unwrap().len() > 10);
        // Nothing but the last line is terminal.
        assert!(
            decisions[..decisions.len() - 1]
                .iter()
                .all(|d| d["decision"] == "continue" || d["decision"] == "hold"),
            "{name}"
        );
    }
}

#[test]
fn the_latency_regression_fails_on_latency_and_the_error_regression_on_errors() {
    let latency = replay(&stream("latency-regression"));
    let metrics = latency.last().unwrap()["metrics"]
        .as_array()
        .unwrap()
        .clone();
    let verdict =
        |name: &str| metrics.iter().find(|m| m["name"] == name).unwrap()["verdict"].clone();
    assert_eq!(verdict("latency"), "fail");
    assert_ne!(verdict("error-rate"), "fail");
    let errors = replay(&stream("error-regression"));
    let m = &errors.last().unwrap()["metrics"][0];
    assert_eq!(m["name"], "error-rate");
    assert_eq!(m["verdict"], "fail");
    assert!(m["estimate"]["value"].as_f64().unwrap() > 2.0);
    assert!(m["evidence"]["canary"]["total"].as_f64().unwrap() > 100.0);
}

#[test]
fn replay_answers_each_line_as_soon_as_it_is_read() {
    let mut child = Command::new(BIN)
        .args(["replay", "--template", TEMPLATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let first_two: Vec<String> = std::fs::read_to_string(stream("good-canary"))
        .unwrap()
        .lines()
        .take(2)
        .map(str::to_string)
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for line in &first_two {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        // The answer arrives while stdin is still open.
        let mut answer = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut answer).unwrap();
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(v["decision"].is_string());
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_shipped_streams_are_what_simulate_generates() {
    for (scenario, name) in [
        ("aa-100", "good-canary"),
        ("errors-1pt-100", "error-regression"),
        ("p99-1.5x-100", "latency-regression"),
    ] {
        let out = Command::new(BIN)
            .args([
                "simulate",
                "--scenario",
                scenario,
                "--template",
                TEMPLATE,
                "--seed",
                "1",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let shipped = std::fs::read_to_string(stream(name)).unwrap();
        assert!(
            String::from_utf8(out.stdout).unwrap() == shipped,
            "examples/streams/{name}.jsonl drifted from `canary-gate simulate --scenario {scenario} --seed 1`; regenerate it with --record"
        );
    }
}

#[test]
fn a_broken_stream_line_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let good = std::fs::read_to_string(stream("good-canary")).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(&path, format!("{first}\n{{\"t\": 1}}\n")).unwrap();
    let out = Command::new(BIN)
        .args([
            "replay",
            "--template",
            TEMPLATE,
            "--input",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 2:"), "{err}");
}

#[test]
fn template_lint_passes_shipped_templates_and_names_the_broken_field() {
    let templates: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("analysis-templates"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    let out = Command::new(BIN)
        .arg("template")
        .arg("lint")
        .args(&templates)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(TEMPLATE)
        .unwrap()
        .replace("tolerance: 0.05", "tolerance: -0.05");
    std::fs::write(&broken, text).unwrap();
    let out = Command::new(BIN)
        .args(["template", "lint"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("broken.yaml: spec.metrics[1].compare.tolerance"),
        "{err}"
    );
}
