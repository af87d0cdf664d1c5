//! Parsing exposition text: strict line checks, then `prometheus-parse` on a normalised copy.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::error::{ScrapeError, quote};
use super::exposition::{Exposition, ExpositionSample, SampleKind};
use super::tokenize::{parse_float, tokenize_sample};
use crate::metrics::counters::{format_le, parse_le};

/// Parses exposition text (Prometheus text format 0.0.4 or OpenMetrics text).
///
/// # Errors
/// [`ScrapeError::Parse`] for the first malformed line: a bad metric or label name, unbalanced
/// braces or quotes, an invalid escape, a value or timestamp that is not a number, a repeated
/// label or series, or a histogram bucket / summary quantile without a valid `le` / `quantile`.
pub fn parse_exposition(text: &str) -> Result<Exposition, ScrapeError> {
    const ORIGIN: &str = "exposition text";
    let parse_error = |line: usize, message: String| ScrapeError::Parse {
        origin: ORIGIN.to_string(),
        line,
        message,
    };

    let mut types: HashMap<String, SampleKind> = HashMap::new();
    let mut histograms: HashSet<String> = HashSet::new();
    let mut summaries: HashSet<String> = HashSet::new();
    let mut seen: HashSet<(String, Vec<(String, String)>)> = HashSet::new();
    let mut normalised = String::with_capacity(text.len());
    let mut direct: Vec<ExpositionSample> = Vec::new();

    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    return Err(parse_error(
                        number,
                        format!("incomplete TYPE line {}", quote(line)),
                    ));
                };
                match kind {
                    "counter" => {
                        types.insert(name.to_string(), SampleKind::Counter);
                    }
                    "gauge" => {
                        types.insert(name.to_string(), SampleKind::Gauge);
                    }
                    "histogram" => {
                        histograms.insert(name.to_string());
                    }
                    "summary" => {
                        summaries.insert(name.to_string());
                    }
                    _ => {}
                }
                normalised.push_str(line);
                normalised.push('\n');
            }
            continue;
        }

        let sample = tokenize_sample(line)
            .map_err(|m| parse_error(number, format!("{m} in {}", quote(line))))?;
        let mut key_labels: Vec<(String, String)> = sample.labels.clone();
        key_labels.sort();
        if !seen.insert((sample.name.to_string(), key_labels)) {
            return Err(parse_error(
                number,
                format!("duplicate series {}", quote(line)),
            ));
        }
        let label = |name: &str| {
            sample
                .labels
                .iter()
                .find(|l| l.0 == name)
                .map(|l| l.1.as_str())
        };
        let bucket_family = sample
            .name
            .strip_suffix("_bucket")
            .filter(|family| histograms.contains(*family));
        if bucket_family.is_some() {
            match label("le") {
                Some(le) if parse_le(le).is_ok() => {}
                Some(le) => {
                    return Err(parse_error(
                        number,
                        format!("histogram bucket bound le={le:?} is not a number"),
                    ));
                }
                None => {
                    return Err(parse_error(
                        number,
                        format!("histogram bucket without an le label: {}", quote(line)),
                    ));
                }
            }
        }
        if summaries.contains(sample.name) {
            match label("quantile").map(parse_float) {
                Some(Ok(_)) => {}
                _ => {
                    return Err(parse_error(
                        number,
                        format!("summary sample without a numeric quantile: {}", quote(line)),
                    ));
                }
            }
        }

        if sample.name.contains(':') {
            // prometheus-parse cannot read these names; keep the tokenizer's reading.
            let kind = if bucket_family.is_some() {
                SampleKind::HistogramBucket
            } else if summaries.contains(sample.name) {
                SampleKind::SummaryQuantile
            } else {
                types
                    .get(sample.name)
                    .copied()
                    .unwrap_or(SampleKind::Untyped)
            };
            direct.push(ExpositionSample {
                name: sample.name.to_string(),
                labels: sample.labels.into_iter().collect(),
                value: sample.value,
                kind,
            });
            continue;
        }
        normalised.push_str(sample.name);
        if !sample.labels.is_empty() {
            normalised.push('{');
            for (i, (name, value)) in sample.labels.iter().enumerate() {
                if i > 0 {
                    normalised.push(',');
                }
                normalised.push_str(name);
                normalised.push_str("=\"");
                percent_encode(&mut normalised, value);
                normalised.push('"');
            }
            normalised.push('}');
        }
        normalised.push(' ');
        normalised.push_str(&format!("{}", sample.value));
        normalised.push('\n');
    }

    let scrape = prometheus_parse::Scrape::parse(normalised.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| parse_error(0, e.to_string()))?;
    let mut samples = Vec::with_capacity(scrape.samples.len() + direct.len());
    for s in scrape.samples {
        let labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), percent_decode(v)))
            .collect();
        match s.value {
            prometheus_parse::Value::Counter(v) => {
                samples.push(simple(s.metric, labels, v, SampleKind::Counter))
            }
            prometheus_parse::Value::Gauge(v) => {
                samples.push(simple(s.metric, labels, v, SampleKind::Gauge))
            }
            prometheus_parse::Value::Untyped(v) => {
                samples.push(simple(s.metric, labels, v, SampleKind::Untyped))
            }
            prometheus_parse::Value::Histogram(buckets) => {
                let name = format!("{}_bucket", s.metric);
                for b in buckets {
                    let mut labels = labels.clone();
                    labels.insert("le".to_string(), format_le(b.less_than));
                    samples.push(simple(
                        name.clone(),
                        labels,
                        b.count,
                        SampleKind::HistogramBucket,
                    ));
                }
            }
            prometheus_parse::Value::Summary(quantiles) => {
                for q in quantiles {
                    let mut labels = labels.clone();
                    labels.insert("quantile".to_string(), format!("{}", q.quantile));
                    samples.push(simple(
                        s.metric.clone(),
                        labels,
                        q.count,
                        SampleKind::SummaryQuantile,
                    ));
                }
            }
        }
    }
    samples.extend(direct);
    Ok(Exposition { samples })
}

fn simple(
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    kind: SampleKind,
) -> ExpositionSample {
    ExpositionSample {
        name,
        labels,
        value,
        kind,
    }
}

/// Percent-encodes the characters `prometheus-parse` would misread inside a label value.
fn percent_encode(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '%' | ',' | '=' | '{' | '}' | '"' | '\\' | ' ' | '\t' => {
                out.push_str(&format!("%{:02X}", c as u32))
            }
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::scrape::LabelMatch;

    fn eq(v: &str) -> LabelMatch {
        LabelMatch::Equal(v.to_string())
    }

    #[test]
    fn label_values_with_commas_quotes_and_escapes_survive() {
        let text = r#"req_total{path="/a,b=c",ua="say \"hi\"",x="back\\slash\nnew{}",e=""} 2"#;
        let e = parse_exposition(text).unwrap();
        let s = &e.samples()[0];
        assert_eq!(s.labels["path"], "/a,b=c");
        assert_eq!(s.labels["ua"], "say \"hi\"");
        assert_eq!(s.labels["x"], "back\\slash\nnew{}");
        assert_eq!(s.labels["e"], "");
        assert_eq!(s.labels.len(), 4);
        assert_eq!(e.sum("req_total", &[("path", eq("/a,b=c"))]), Some(2.0));
    }

    #[test]
    fn openmetrics_text_is_accepted() {
        let text = "# TYPE foo counter\nfoo_total{a=\"b\"} 3 1700000000.123 # {trace_id=\"x\"} 1\nfoo_created{a=\"b\"} 1700000000\n\
                    empty{} 1\nspecial NaN\ninf +Inf\n# EOF\n";
        let e = parse_exposition(text).unwrap();
        assert_eq!(e.sum("foo_total", &[]), Some(3.0));
        assert_eq!(e.sum("empty", &[]), Some(1.0));
        assert!(e.sum("special", &[]).unwrap().is_nan());
        assert_eq!(e.sum("inf", &[]), Some(f64::INFINITY));
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let cases = [
            ("ok 1\nbad{a=\"b\" 1\n", 2),
            ("x{a=\"b\"} one\n", 1),
            ("x{a=b} 1\n", 1),
            ("x{a=\"unterminated} 1\n", 1),
            ("x 1 2 3\n", 1),
            ("x\n", 1),
            ("{a=\"b\"} 1\n", 1),
            ("x{a=\"\\q\"} 1\n", 1),
            ("x{a=\"1\",a=\"2\"} 1\n", 1),
            ("x 1\nx 2\n", 2),
            ("# TYPE h histogram\nh_bucket{x=\"1\"} 3\n", 2),
            ("# TYPE h histogram\nh_bucket{le=\"abc\"} 3\n", 2),
            ("# TYPE s summary\ns 3\n", 2),
            ("<html>oops</html>\n", 1),
        ];
        for (text, line) in cases {
            match parse_exposition(text) {
                Err(ScrapeError::Parse {
                    line: l, origin, ..
                }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert_eq!(origin, "exposition text");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn percent_encoding_round_trips() {
        for v in ["", "plain", "%41", "a,b=c{d}\"e\\f g\th\n", "ünïcode ✓"] {
            let mut enc = String::new();
            percent_encode(&mut enc, v);
            assert!(!enc.contains([',', '=', '"', '{', '}', ' ']), "{enc}");
            assert_eq!(percent_decode(&enc), v);
        }
    }
}
