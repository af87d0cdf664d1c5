//! Every shipped template against a real Prometheus holding an hour of data shaped like its
//! target's metrics (names, labels, units): `template test` sees both versions, and `analyze`
//! passes the clean half-hour and rolls back the half-hour where the canary serves 5 % errors.

mod support;

use std::fmt::Write as _;
use std::process::Command;

use support::PrometheusServer;
use support::history::{GENERIC_HTTP, Plan, Shape, openmetrics};

const BIN: &str = env!("CARGO_BIN_EXE_canary-gate");
/// 2025-11-23T00:00:00Z.
const T0: u64 = 1_763_856_000;
const STEP: u64 = 15;
const BREAK: u64 = T0 + 30 * 60;

const SHAPES: &[Shape] = &[
    GENERIC_HTTP,
    Shape {
        template: "istio",
        args: &["service=reviews"],
        counter: "istio_requests_total",
        labels: |v| {
            format!(
                "reporter=\"destination\",destination_service_name=\"reviews\",destination_workload_namespace=\"default\",destination_version=\"{v}\""
            )
        },
        status: ("response_code", "503", "200"),
        histogram: "istio_request_duration_milliseconds",
        unit: 1000.0,
    },
    Shape {
        template: "linkerd",
        args: &["deployment=books", "namespace=shop"],
        counter: "response_total",
        labels: |v| {
            let d = if v == "stable" {
                "books-stable"
            } else {
                "books-canary"
            };
            format!("direction=\"inbound\",namespace=\"shop\",deployment=\"{d}\"")
        },
        status: ("classification", "failure", "success"),
        histogram: "response_latency_ms",
        unit: 1000.0,
    },
    Shape {
        template: "nginx-ingress",
        args: &["service=shop"],
        counter: "nginx_ingress_controller_requests",
        labels: |v| {
            let s = if v == "stable" { "shop" } else { "shop-canary" };
            format!("namespace=\"default\",ingress=\"shop\",service=\"{s}\"")
        },
        status: ("status", "502", "200"),
        histogram: "nginx_ingress_controller_request_duration_seconds",
        unit: 1.0,
    },
    Shape {
        template: "envoy-gateway",
        args: &[
            "stable_cluster=httproute/default/app/rule/0/backend/0",
            "canary_cluster=httproute/default/app/rule/0/backend/1",
        ],
        counter: "envoy_cluster_upstream_rq_xx",
        labels: |v| {
            let b = if v == "stable" { 0 } else { 1 };
            format!("envoy_cluster_name=\"httproute/default/app/rule/0/backend/{b}\"")
        },
        status: ("envoy_response_code_class", "5", "2"),
        histogram: "envoy_cluster_upstream_rq_time",
        unit: 1000.0,
    },
    Shape {
        template: "grpc",
        args: &["service=helloworld.Greeter"],
        counter: "grpc_server_handled_total",
        labels: |v| {
            format!("grpc_service=\"helloworld.Greeter\",grpc_method=\"SayHello\",version=\"{v}\"")
        },
        status: ("grpc_code", "Unavailable", "OK"),
        histogram: "grpc_server_handling_seconds",
        unit: 1.0,
    },
];

/// OpenMetrics for all shapes (the canary's error rate goes from 0.1 % to 5.1 % at BREAK), plus
/// resident memory for slo-absolute's value limit.
fn history() -> String {
    let plan = Plan {
        t0: T0,
        end: T0 + 3600,
        step: STEP,
        break_at: BREAK,
        rps: 50.0,
        weight: 20.0,
        error_add: 0.05,
    };
    let mut out = String::new();
    for (n, shape) in SHAPES.iter().enumerate() {
        out.push_str(&openmetrics(shape, &plan, 10 * n as u64 + 10));
    }
    // Resident memory for slo-absolute's value limit: 300 MB stable, 400 MB canary.
    let mut gauge = Vec::new();
    for (version, bytes) in [("canary", 4.0e8), ("stable", 3.0e8)] {
        let mut t = T0;
        while t <= T0 + 3600 {
            gauge.push(format!(
                "process_resident_memory_bytes{{service=\"web\",version=\"{version}\"}} {bytes} {t}"
            ));
            t += STEP;
        }
    }
    writeln!(
        out,
        "# TYPE process_resident_memory_bytes gauge\n{}",
        gauge.join("\n")
    )
    .unwrap();
    out.push_str("# EOF\n");
    out
}

fn run(args: &[String]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run canary-gate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with_args(mut base: Vec<String>, shape: &Shape) -> Vec<String> {
    for a in shape.args {
        base.push("--arg".into());
        base.push((*a).into());
    }
    base
}

#[tokio::test]
async fn every_shipped_template_reads_its_targets_metrics_and_catches_the_regression() {
    support::init_crypto();
    let server = PrometheusServer::builder()
        .backfill(history())
        .start()
        .await;
    let url = server.url();
    let dir = env!("CARGO_MANIFEST_DIR");
    let mut templates: Vec<(String, Option<&Shape>)> =
        std::fs::read_dir(format!("{dir}/analysis-templates"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                let shape = SHAPES.iter().find(|s| s.template == name);
                (name, shape)
            })
            .collect();
    templates.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, shape) in &templates {
        if name == "flagger" {
            // Its metric names are generic-http's; it has a Prometheus of its own (below).
            continue;
        }
        // slo-absolute reads the generic HTTP metrics.
        let shape = shape.unwrap_or_else(|| {
            assert_eq!(
                name, "slo-absolute",
                "no test data shaped for template {name}"
            );
            &SHAPES[0]
        });
        let file = format!("{dir}/analysis-templates/{name}.yaml");
        let (code, out, err) = run(&with_args(
            vec![
                "template".into(),
                "test".into(),
                file.clone(),
                "--prometheus".into(),
                url.clone(),
                "--time".into(),
                (T0 + 900).to_string(),
            ],
            shape,
        ));
        assert_eq!(code, Some(0), "{name}: template test\n{out}\n{err}");
        assert!(
            !out.contains("MISSING") && !out.contains("ERROR"),
            "{name}: {out}"
        );

        let analyze = |from: u64, to: u64| {
            run(&with_args(
                vec![
                    "analyze".into(),
                    "--template".into(),
                    file.clone(),
                    "--prometheus".into(),
                    url.clone(),
                    "--from".into(),
                    from.to_string(),
                    "--to".into(),
                    to.to_string(),
                ],
                shape,
            ))
        };
        let (code, out, err) = analyze(T0, BREAK - 60);
        assert_eq!(
            code,
            Some(0),
            "{name}: the clean window must pass\n{out}\n{err}"
        );
        assert!(out.contains("decision: PROMOTE"), "{name}: {out}");
        let (code, out, err) = analyze(BREAK - 300, T0 + 3600);
        assert_eq!(
            code,
            Some(10),
            "{name}: the regression must roll back\n{out}\n{err}"
        );
        assert!(out.contains("decision: ROLLBACK"), "{name}: {out}");
    }
    let names: Vec<&String> = templates.iter().map(|t| &t.0).collect();
    assert_eq!(templates.len(), 8, "{names:?}");
}

/// Flagger's naming: the stable version is the Deployment `podinfo-primary`, the canary
/// `podinfo`; the series carry Prometheus' pod-discovery labels, plus a pod of an unrelated
/// Deployment whose name starts the same (`podinfo-api`), which must count for neither.
const FLAGGER: Shape = Shape {
    template: "flagger",
    args: &["namespace=test", "app=podinfo"],
    counter: "http_requests_total",
    labels: |v| {
        let pod = if v == "stable" {
            "podinfo-primary-5d4f8c9b7-x2k4z"
        } else {
            "podinfo-7c9d8f6b5-q8w2n"
        };
        format!("kubernetes_namespace=\"test\",kubernetes_pod_name=\"{pod}\"")
    },
    status: ("status", "500", "200"),
    histogram: "http_request_duration_seconds",
    unit: 1.0,
};

#[tokio::test]
async fn the_flagger_template_reads_flaggers_naming_and_catches_the_regression() {
    support::init_crypto();
    let plan = Plan {
        t0: T0,
        end: T0 + 3600,
        step: STEP,
        break_at: BREAK,
        rps: 50.0,
        weight: 20.0,
        error_add: 0.05,
    };
    let mut data = openmetrics(&FLAGGER, &plan, 90);
    // An unrelated Deployment `podinfo-api` failing every request: not the canary.
    let mut t = T0;
    let mut bad = Vec::new();
    while t <= T0 + 3600 {
        let n = (t - T0) as f64;
        bad.push(format!(
            "http_requests_total{{kubernetes_namespace=\"test\",kubernetes_pod_name=\"podinfo-api-6f7d8c9b5-abcde\",status=\"500\"}} {n} {t}"
        ));
        t += STEP;
    }
    data = data.replacen(
        "# TYPE http_requests counter\n",
        &format!("# TYPE http_requests counter\n{}\n", bad.join("\n")),
        1,
    );
    assert!(
        data.contains("podinfo-api-"),
        "the unrelated pod is in the data"
    );
    data.push_str("# EOF\n");
    let server = PrometheusServer::builder().backfill(data).start().await;
    let url = server.url();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/analysis-templates/flagger.yaml"
    );
    let (code, out, err) = run(&with_args(
        vec![
            "template".into(),
            "test".into(),
            file.into(),
            "--prometheus".into(),
            url.clone(),
            "--time".into(),
            (T0 + 900).to_string(),
        ],
        &FLAGGER,
    ));
    assert_eq!(code, Some(0), "template test\n{out}\n{err}");
    assert!(!out.contains("MISSING") && !out.contains("ERROR"), "{out}");
    let analyze = |from: u64, to: u64| {
        run(&with_args(
            vec![
                "analyze".into(),
                "--template".into(),
                file.into(),
                "--prometheus".into(),
                url.clone(),
                "--from".into(),
                from.to_string(),
                "--to".into(),
                to.to_string(),
            ],
            &FLAGGER,
        ))
    };
    let (code, out, err) = analyze(T0, BREAK - 60);
    assert_eq!(
        code,
        Some(0),
        "the clean window passes (podinfo-api's errors are not the canary's)\n{out}\n{err}"
    );
    let (code, out, err) = analyze(BREAK - 300, T0 + 3600);
    assert_eq!(code, Some(10), "the regression rolls back\n{out}\n{err}");
}
