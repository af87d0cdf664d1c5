//! Decoding query responses: the API's JSON and sample values into [`Sample`]s and [`Series`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use tracing::warn;

use super::error::{PrometheusError, shorten};

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series labels, as Prometheus returned them (including `__name__` if present).
    pub labels: BTreeMap<String, String>,
    /// The value (always finite: non-finite values are [`PrometheusError::NotANumber`]).
    pub value: f64,
    /// Evaluation time, Unix seconds.
    pub timestamp: f64,
}

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series labels, as Prometheus returned them.
    pub labels: BTreeMap<String, String>,
    /// `(Unix seconds, value)` pairs in time order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// Timestamp of the newest point, if any.
    pub fn last_timestamp(&self) -> Option<f64> {
        self.points.last().map(|p| p.0)
    }
}

pub(super) fn decode_error(promql: &str, detail: &str) -> PrometheusError {
    PrometheusError::Decode {
        query: shorten(promql),
        detail: detail.to_string(),
    }
}

/// Parses a sample value as the API encodes it (`"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
fn parse_number(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse::<f64>().ok(),
    }
}

/// A sample value, parsed while the JSON is decoded: 8 bytes a point, not a `String`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RawValue(pub(super) f64);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sample value as a string, like \"1.5\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawValue, E> {
                parse_number(v).map(RawValue).ok_or_else(|| {
                    E::custom(format!("sample value {:?} is not a number", shorten(v)))
                })
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// Bounds on one response's series, checked before anything is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    pub(super) max_series: usize,
    pub(super) max_points_per_series: usize,
}

/// Refuses more series or points than `limits` allow, and two series with identical labels
/// (which Prometheus never returns; summing them would multiply the evidence).
pub(super) fn check_series<'a>(
    promql: &str,
    series: impl ExactSizeIterator<Item = (&'a BTreeMap<String, String>, usize)>,
    limits: Limits,
) -> Result<(), PrometheusError> {
    if series.len() > limits.max_series {
        return Err(PrometheusError::TooManySeries {
            query: shorten(promql),
            series: series.len(),
            limit: limits.max_series,
        });
    }
    let mut seen = std::collections::HashSet::with_capacity(series.len());
    for (labels, points) in series {
        if points > limits.max_points_per_series {
            return Err(PrometheusError::TooManyPoints {
                query: shorten(promql),
                labels: super::error::format_labels(labels),
                points,
                limit: limits.max_points_per_series,
            });
        }
        if !seen.insert(labels) {
            return Err(PrometheusError::DuplicateSeries {
                query: shorten(promql),
                labels: super::error::format_labels(labels),
            });
        }
    }
    Ok(())
}

#[derive(Deserialize)]
pub(super) struct ApiBody<T> {
    status: String,
    data: Option<T>,
    #[serde(rename = "errorType", default)]
    pub(super) error_type: Option<String>,
    #[serde(default)]
    pub(super) error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub(super) enum QueryData {
    Vector(Vec<RawSample>),
    Scalar(RawPoint),
    Matrix(Vec<RawSeries>),
    String(IgnoredAny),
}

impl QueryData {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            QueryData::Vector(_) => "an instant vector",
            QueryData::Scalar(_) => "a scalar",
            QueryData::Matrix(_) => "a range vector",
            QueryData::String(_) => "a string",
        }
    }
}

pub(super) type RawPoint = (f64, RawValue);

#[derive(Deserialize)]
pub(super) struct RawSample {
    #[serde(default)]
    pub(super) metric: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) value: Option<RawPoint>,
}

#[derive(Deserialize)]
pub(super) struct RawSeries {
    #[serde(default)]
    pub(super) metric: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) values: Vec<RawPoint>,
    #[serde(default)]
    pub(super) histograms: Option<IgnoredAny>,
}

/// Decodes a 2xx response into its `data`; `redact` scrubs credentials from any text of the
/// body quoted in an error or a log line, before it is shortened.
pub(super) fn decode_data<T: serde::de::DeserializeOwned>(
    promql: &str,
    body: &[u8],
    redact: &dyn Fn(&str) -> String,
) -> Result<T, PrometheusError> {
    let api: ApiBody<T> = serde_json::from_slice(body).map_err(|e| {
        decode_error(
            promql,
            &format!(
                "{}; body starts with {:?}",
                redact(&e.to_string()),
                truncate_chars(&redact(&String::from_utf8_lossy(body)), 120)
            ),
        )
    })?;
    if api.status != "success" {
        return Err(decode_error(
            promql,
            &truncate_chars(
                &redact(&format!(
                    "status {:?} ({}: {}) in a 2xx response",
                    api.status,
                    api.error_type.unwrap_or_default(),
                    api.error.unwrap_or_default()
                )),
                600,
            ),
        ));
    }
    for warning in &api.warnings {
        warn!(query = %shorten(promql), warning = %truncate_chars(&redact(warning), 300), "prometheus warning");
    }
    api.data
        .ok_or_else(|| decode_error(promql, "successful response without \"data\""))
}

fn truncate_chars(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_like_the_api_encodes_them() {
        assert_eq!(parse_number("1.5"), Some(1.5));
        assert!(parse_number("NaN").unwrap().is_nan());
        assert_eq!(parse_number("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_number("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_number("x"), None);
        let Err(err) = decode_data::<QueryData>(
            "q",
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"x"]}}"#,
            &|s: &str| s.to_string(),
        ) else {
            panic!("decoded a non-number")
        };
        assert_eq!(err.category(), "decode");
        assert!(
            err.to_string()
                .contains("sample value \"x\" is not a number"),
            "{err}"
        );
    }

    #[test]
    fn decode_rejects_unexpected_shapes() {
        let keep = |s: &str| s.to_string();
        assert!(decode_data::<QueryData>("q", b"<html>", &keep).is_err());
        assert!(decode_data::<QueryData>("q", br#"{"status":"success"}"#, &keep).is_err());
        assert!(
            decode_data::<QueryData>(
                "q",
                br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
                &keep
            )
            .is_err()
        );
        match decode_data(
            "q",
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#,
            &keep,
        ) {
            Ok(QueryData::Scalar((t, v))) => assert_eq!((t, v.0), (1.0, 2.0)),
            _ => panic!("scalar expected"),
        }
    }

    #[test]
    fn repeated_label_sets_and_oversized_answers_are_refused_by_name() {
        let a: BTreeMap<String, String> = [("version".to_string(), "canary".to_string())].into();
        let b: BTreeMap<String, String> = [("version".to_string(), "stable".to_string())].into();
        let limits = Limits {
            max_series: 3,
            max_points_per_series: 10,
        };
        assert!(check_series("q", [(&a, 1), (&b, 10)].into_iter(), limits).is_ok());
        let err = check_series("q", [(&a, 1), (&b, 1), (&a, 1)].into_iter(), limits).unwrap_err();
        assert_eq!(err.category(), "duplicate_series");
        assert!(
            err.to_string()
                .contains(r#"series {version="canary"} more than once"#),
            "{err}"
        );
        let err = check_series("q", [(&a, 1), (&b, 11)].into_iter(), limits).unwrap_err();
        assert_eq!(err.category(), "too_many_points");
        let err = check_series("q", [(&a, 1); 4].into_iter(), limits).unwrap_err();
        assert_eq!(err.category(), "too_many_series");
    }

    proptest::proptest! {
        /// Whatever comes back over the wire — a valid answer with random edits, or junk — the
        /// decoder returns a value or an error naming the query; it never panics.
        #[test]
        fn any_body_decodes_or_is_an_error_naming_the_query(
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 0..12),
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let valid = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"version":"canary","le":"0.1"},"values":[[1700000000,"1.5"],[1700000060.5,"NaN"],[1700000120,"+Inf"]]}]},"warnings":["w"]}"#;
            let mut body = valid.to_vec();
            for (at, byte) in &edits {
                let i = at % body.len();
                body[i] = *byte;
            }
            body.truncate(body.len() - cut % body.len());
            body.extend_from_slice(&junk);
            if let Err(e) = decode_data::<QueryData>("sum(up)", &body, &|s: &str| s.to_string()) {
                let text = e.to_string();
                proptest::prop_assert!(text.contains("sum(up)"), "{}", text);
            }
            for value in ["", "1e999", "-", "0x10", "NaN ", "∞"] {
                let _ = parse_number(value);
            }
        }
    }
}
