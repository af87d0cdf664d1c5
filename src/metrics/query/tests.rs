//! Tests of query rendering, escaping and reading the answers by version.
use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn arg(name: &str, default: Option<&str>) -> ArgSpec {
    ArgSpec {
        name: name.into(),
        default: default.map(Into::into),
        description: None,
        pattern: None,
        regex: None,
    }
}

#[test]
fn defaults_fill_in_and_all_missing_arguments_are_named() {
    let declared = [
        arg("service", None),
        arg("namespace", Some("default")),
        arg("route", None),
    ];
    let got = resolve_args(&declared, &[("service".into(), "web".into())]);
    assert_eq!(got, Err(QueryError::MissingArgs(vec!["route".into()])));
    let ok = resolve_args(
        &declared,
        &[
            ("service".into(), "web".into()),
            ("route".into(), "/".into()),
        ],
    )
    .unwrap();
    assert_eq!(ok["namespace"], "default");
    let unknown = resolve_args(&declared, &[("servce".into(), "web".into())]).unwrap_err();
    assert!(
        unknown.to_string().contains("\"servce\" is not declared"),
        "{unknown}"
    );
}

#[test]
fn placeholders_render_and_unknown_ones_are_named() {
    let b = Bindings {
        args: [("service".to_string(), "web".to_string())].into(),
        interval: "1m".into(),
        version_label: "version".into(),
        stable: "stable".into(),
        canary: "canary".into(),
        regex_args: Default::default(),
    };
    assert_eq!(
        b.render(
            "m",
            "errors",
            r#"sum by ({{versionLabel}}) (increase(x{service="{{ args.service }}"}[{{interval}}]))"#
        )
        .unwrap(),
        r#"sum by (version) (increase(x{service="web"}[1m]))"#
    );
    let err = b
        .render("m", "errors", "{{args.nope}}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown placeholder {{args.nope}}"), "{err}");
    assert!(b.render("m", "errors", "x{{interval").is_err());
}

#[test]
fn durations_render_as_promql() {
    assert_eq!(promql_duration(Duration::from_secs(60)), "1m");
    assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
    assert_eq!(promql_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(promql_duration(Duration::from_millis(1500)), "1500ms");
}

#[test]
fn bucket_increases_become_per_bucket_histograms_per_version() {
    let values = vec![
        (labels(&[("version", "canary"), ("le", "0.1")]), 8.0),
        (labels(&[("version", "canary"), ("le", "+Inf")]), 10.0),
        (labels(&[("version", "canary"), ("le", "0.5")]), 9.0),
        (labels(&[("version", "stable"), ("le", "0.1")]), 1.0),
    ];
    let h = histogram_for_version(&values, "version", "canary").unwrap();
    assert_eq!(h.bounds, vec![0.1, 0.5]);
    assert_eq!(h.counts, vec![8.0, 1.0, 1.0]);
    let err = histogram_for_version(&values, "version", "stable").unwrap_err();
    assert!(err.contains("+Inf"), "{err}");
}

#[test]
fn missing_error_series_count_as_zero_but_missing_requests_are_missing_data() {
    let b = Bindings {
        args: BTreeMap::new(),
        interval: "1m".into(),
        version_label: "version".into(),
        stable: "stable".into(),
        canary: "canary".into(),
        regex_args: Default::default(),
    };
    let method = Method::Compare {
        direction: crate::analysis::Direction::Increase,
        tolerance: 0.0,
        jitter: 0.1,
    };
    let requests = vec![
        (labels(&[("version", "stable"), ("pod", "a")]), 50.0),
        (labels(&[("version", "stable"), ("pod", "b")]), 50.0),
        (labels(&[("version", "canary")]), 10.0),
    ];
    let sample = sample_for_metric(
        MetricKind::ErrorRate,
        &method,
        &b,
        &[vec![], requests.clone()],
    );
    assert_eq!(
        sample,
        MetricSample::Counts {
            stable: Counts::new(0.0, 100.0),
            canary: Counts::new(0.0, 10.0)
        }
    );
    let sample = sample_for_metric(
        MetricKind::ErrorRate,
        &method,
        &b,
        &[vec![], requests[..2].to_vec()],
    );
    assert!(
        matches!(sample, MetricSample::Missing(ref why) if why.contains("version=\"canary\"")),
        "{sample:?}"
    );
}

fn bindings(value: &str) -> Bindings {
    Bindings {
        args: [("s".to_string(), value.to_string())].into(),
        interval: "1m".into(),
        version_label: "version".into(),
        stable: "stable".into(),
        canary: "canary".into(),
        regex_args: Default::default(),
    }
}

/// Decodes a PromQL string body (Go escapes as the PromQL lexer accepts them).
fn unquote(body: &str) -> String {
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next().unwrap() {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            other => out.push(other),
        }
    }
    out
}

/// Splits rendered PromQL into the text outside strings and the decoded strings.
fn structure(promql: &str) -> (String, Vec<String>) {
    let (mut code, mut strings) = (String::new(), Vec::new());
    let mut current: Option<(char, String)> = None;
    let mut escaped = false;
    for c in promql.chars() {
        match &mut current {
            Some((q, body)) => {
                if escaped {
                    escaped = false;
                    body.push(c);
                } else if c == '\\' && *q != '`' {
                    escaped = true;
                    body.push(c);
                } else if c == *q {
                    let raw = std::mem::take(body);
                    strings.push(if *q == '`' { raw } else { unquote(&raw) });
                    current = None;
                    code.push('S');
                } else {
                    body.push(c);
                }
            }
            None if matches!(c, '"' | '\'' | '`') => current = Some((c, String::new())),
            None => code.push(c),
        }
    }
    assert!(current.is_none(), "unterminated string in {promql}");
    (code, strings)
}

const INJECTIONS: &[&str] = &[
    r#"web",code!~"5.."#,
    r#"web"} or vector(0) or x{a=""#,
    "web'",
    r#"web\"#,
    "web\\\",code=\"",
    "web\n\"",
    ".*",
    "web|.*",
    "web`",
    "\u{7}\u{0}\u{85}",
    "}}{{",
];

#[test]
fn hostile_values_stay_inside_their_string_in_every_quoting() {
    for (template, regex) in [
        (
            r#"sum by (version) (increase(x{service="{{args.s}}", code=~"5.."}[1m]))"#,
            false,
        ),
        (
            r#"sum by (version) (increase(x{service='{{args.s}}'}[1m]))"#,
            false,
        ),
        (r#"x{service=~"{{args.s}}|{{args.s}}-canary"}"#, true),
        (r#"x{service!~'^{{args.s}}$'}"#, true),
    ] {
        let benign = structure(&bindings("web").render("m", "errors", template).unwrap());
        for value in INJECTIONS {
            let rendered = bindings(value).render("m", "errors", template).unwrap();
            let (code, strings) = structure(&rendered);
            assert_eq!(code, benign.0, "{value:?} changed the query: {rendered}");
            let expected = benign.1.iter().map(|s| {
                if regex && s.contains("web") {
                    s.replace("web", &regex_escape(value))
                } else {
                    s.replace("web", value)
                }
            });
            let expected: Vec<String> = expected.collect();
            assert_eq!(strings, expected, "{value:?} in {template}: {rendered}");
            if regex {
                // The regex matches the value literally, and nothing it would have matched
                // as a regex (".*" does not match "anything").
                let re = regex::Regex::new(&format!("^(?:{})$", strings[0])).unwrap();
                assert!(re.is_match(value), "{rendered}");
                assert!(!re.is_match("anything"), "{rendered}");
            }
        }
    }
}

#[test]
fn backticks_refuse_what_they_cannot_escape_and_bare_values_must_be_plain_tokens() {
    let raw = "x{service=`{{args.s}}`}";
    assert_eq!(
        bindings("a\"b").render("m", "errors", raw).unwrap(),
        "x{service=`a\"b`}"
    );
    let err = bindings("a`b")
        .render("m", "errors", raw)
        .unwrap_err()
        .to_string();
    assert!(err.contains("backtick"), "{err}");
    let bare = "sum(increase({{args.s}}_total[1m]))";
    assert_eq!(
        bindings("http_requests")
            .render("m", "errors", bare)
            .unwrap(),
        "sum(increase(http_requests_total[1m]))"
    );
    for value in ["a{b=\"c\"}", "a or b", "x-y", "", "or", "x)", "a/b"] {
        let err = bindings(value)
            .render("error-rate", "errors", bare)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("metric \"error-rate\", query.errors: the value of {{args.s}}")
                && (err.contains("outside a quoted string") || value.is_empty()),
            "{value:?}: {err}"
        );
    }
    let err = bindings("x")
        .render("m", "errors", r#"x{a="\{{args.s}}"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("follows a backslash"), "{err}");
}

#[test]
fn a_regex_argument_is_a_regex_but_cannot_leave_its_string() {
    let mut b = bindings("api|web.*");
    b.regex_args.insert("s".into());
    assert_eq!(
        b.render("m", "errors", r#"x{route=~"{{args.s}}"}"#)
            .unwrap(),
        r#"x{route=~"api|web.*"}"#
    );
    let mut b = bindings(r#"a"} or x{b=""#);
    b.regex_args.insert("s".into());
    let rendered = b
        .render("m", "errors", r#"x{route=~"{{args.s}}"}"#)
        .unwrap();
    assert_eq!(structure(&rendered).0, "x{route=~S}");
}

#[test]
fn versions_that_render_equal_from_the_arguments_are_refused() {
    let text = r#"
apiVersion: canarygate.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  args: [{name: a}, {name: b}]
  versions: {stable: "{{args.a}}", canary: "{{args.b}}"}
  metrics:
    - {name: errors, kind: errorRate}
"#;
    let t = crate::template::parse(text, "t.yaml").unwrap();
    let args = |a: &str, b: &str| -> BTreeMap<String, String> {
        [
            ("a".to_string(), a.to_string()),
            ("b".to_string(), b.to_string()),
        ]
        .into()
    };
    let err = Bindings::new(&t, args("web", "web")).unwrap_err();
    assert_eq!(
        err,
        QueryError::SameVersions {
            value: "\"web\"".into()
        }
    );
    // Version values are data: kept as given, escaped only where a query places them.
    let b = Bindings::new(&t, args("web\"", "web-canary")).unwrap();
    assert_eq!(b.stable, "web\"");
    assert_eq!(
        b.render("m", "errors", r#"x{v="{{stable}}"}"#).unwrap(),
        r#"x{v="web\""}"#
    );
}

#[test]
fn declared_patterns_and_empty_values_are_checked_before_rendering() {
    let mut declared = [arg("service", None)];
    declared[0].pattern = Some("[a-z-]+".into());
    let err = resolve_args(&declared, &[("service".into(), "web\"".into())]).unwrap_err();
    assert!(matches!(err, QueryError::Pattern { .. }), "{err}");
    assert!(resolve_args(&declared, &[("service".into(), "web-api".into())]).is_ok());
    let err = resolve_args(
        &[arg("service", None)],
        &[("service".into(), String::new())],
    )
    .unwrap_err();
    assert_eq!(
        err,
        QueryError::EmptyArg {
            name: "service".into()
        }
    );
}

/// Pieces random templates are made of: (template text, where its placeholder lands, if it
/// has one).
const PIECES: &[(&str, Option<Context>)] = &[
    ("sum by (version) (increase(x", None),
    ("{a=", None),
    (", b!=", None),
    ("}[1m])) or ", None),
    (r#""lit""#, None),
    (
        r#""{{args.s}}""#,
        Some(Context::Quoted {
            quote: '"',
            regex: false,
            after_backslash: false,
        }),
    ),
    (
        r#""pre-{{args.s}}-post""#,
        Some(Context::Quoted {
            quote: '"',
            regex: false,
            after_backslash: false,
        }),
    ),
    (
        "'{{args.s}}'",
        Some(Context::Quoted {
            quote: '\'',
            regex: false,
            after_backslash: false,
        }),
    ),
    (
        r#"=~"{{args.s}}|x""#,
        Some(Context::Quoted {
            quote: '"',
            regex: true,
            after_backslash: false,
        }),
    ),
    (
        "!~ '^{{args.s}}'",
        Some(Context::Quoted {
            quote: '\'',
            regex: true,
            after_backslash: false,
        }),
    ),
    (r#""a\"b""#, None),
    (
        "`{{args.s}}`",
        Some(Context::Quoted {
            quote: '`',
            regex: false,
            after_backslash: false,
        }),
    ),
    (" {{args.s}} ", Some(Context::Bare)),
    ("# note {{args.s}}\n", Some(Context::Bare)),
];

proptest::proptest! {
    /// A template assembled from random pieces, rendered with any value: either the value
    /// is refused (only where it lands bare or in a raw string), or every string of the
    /// query decodes to what the template says with the value in it — nothing outside the
    /// strings changes, whatever the value holds.
    #[test]
    fn random_templates_keep_their_structure_for_any_value(
        picks in proptest::collection::vec(0usize..PIECES.len(), 1..8),
        value in proptest::prelude::any::<String>(),
    ) {
        let template: String = picks.iter().map(|&i| PIECES[i].0).collect();
        let contexts: Vec<Context> = picks.iter().filter_map(|&i| PIECES[i].1).collect();
        let plain = |v: &str| !v.is_empty()
            && v.chars().all(|c| c.is_ascii_alphanumeric() || "_:.".contains(c))
            && !KEYWORDS.contains(&v.to_ascii_lowercase().as_str());
        let marker = "Zq9";
        let benign = bindings(marker).render("m", "errors", &template).unwrap();
        match bindings(&value).render("m", "errors", &template) {
            Ok(rendered) => {
                for c in &contexts {
                    match c {
                        Context::Bare => proptest::prop_assert!(plain(&value), "{:?} placed bare", value),
                        Context::Quoted { quote: '`', .. } => proptest::prop_assert!(!value.contains('`')),
                        Context::Quoted { .. } => {}
                    }
                }
                let (code, strings) = structure(&rendered);
                let (benign_code, benign_strings) = structure(&benign);
                // Outside strings only bare placeholders differ, by the plain value.
                proptest::prop_assert_eq!(code, benign_code.replace(marker, &value));
                proptest::prop_assert_eq!(strings.len(), benign_strings.len());
                for (got, want) in strings.iter().zip(&benign_strings) {
                    let regex_escaped = want.replace(marker, &regex_escape(&value));
                    let literal = want.replace(marker, &value);
                    proptest::prop_assert!(
                        *got == literal || *got == regex_escaped,
                        "{:?} in {}: {} (wanted {:?})", value, template, rendered, literal
                    );
                }
            }
            Err(e) => {
                let refusable = contexts.iter().any(|c| match c {
                    Context::Bare => !plain(&value),
                    Context::Quoted { quote: '`', .. } => value.contains('`'),
                    Context::Quoted { .. } => false,
                });
                proptest::prop_assert!(refusable, "refused {:?} in {}: {}", value, template, e);
            }
        }
    }

    /// Any value — any characters, any length — placed in a double-quoted, a single-quoted
    /// or a regex-matcher string leaves the query's structure as it was and decodes back
    /// to itself; in a bare position it is a plain token or refused.
    #[test]
    fn no_value_changes_the_structure_of_a_query(value in ".{0,40}", pick in 0usize..5) {
        let templates = [
            r#"sum by (version) (increase(x{service="{{args.s}}"}[1m]))"#,
            r#"x{service='{{args.s}}', code=~"5.."}"#,
            r#"x{service=~"{{args.s}}|{{args.s}}-canary"}"#,
            r#"x{a=`{{args.s}}`}"#,
            r#"sum(increase({{args.s}}[1m]))"#,
        ];
        let template = templates[pick];
        let benign = structure(&bindings("v").render("m", "errors", template).unwrap());
        match bindings(&value).render("m", "errors", template) {
            Ok(rendered) => {
                let (code, strings) = structure(&rendered);
                if pick == 4 {
                    proptest::prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || "_:.".contains(c)));
                    proptest::prop_assert_eq!(rendered, template.replace("{{args.s}}", &value));
                } else {
                    proptest::prop_assert_eq!(&code, &benign.0);
                    let want: Vec<String> = if pick == 2 {
                        vec![format!("{0}|{0}-canary", regex_escape(&value))]
                    } else {
                        benign.1.iter().map(|s| if s == "v" { value.clone() } else { s.clone() }).collect()
                    };
                    proptest::prop_assert_eq!(strings, want);
                }
            }
            Err(e) => {
                proptest::prop_assert!(pick >= 3, "refused {:?} in a quoted string: {}", value, e);
                proptest::prop_assert!(e.to_string().contains("{{args.s}}"), "{}", e);
            }
        }
    }
}
