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
pub(super) fn parse_value(promql: &str, text: &str) -> Result<f64, PrometheusError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        other => other
            .parse::<f64>()
            .map_err(|_| decode_error(promql, &format!("sample value {other:?} is not a number"))),
    }
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

pub(super) type RawPoint = (f64, String);

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

/// Decodes a 2xx query response into its `data`.
pub(super) fn decode_data(promql: &str, body: &[u8]) -> Result<QueryData, PrometheusError> {
    let api: ApiBody<QueryData> = serde_json::from_slice(body).map_err(|e| {
        decode_error(
            promql,
            &format!("{e}; body starts with {:?}", truncate_chars(body, 120)),
        )
    })?;
    if api.status != "success" {
        return Err(decode_error(
            promql,
            &format!(
                "status {:?} ({}: {}) in a 2xx response",
                api.status,
                api.error_type.unwrap_or_default(),
                api.error.unwrap_or_default()
            ),
        ));
    }
    for warning in &api.warnings {
        warn!(query = %shorten(promql), warning = %warning, "prometheus warning");
    }
    api.data
        .ok_or_else(|| decode_error(promql, "successful response without \"data\""))
}

fn truncate_chars(body: &[u8], n: usize) -> String {
    String::from_utf8_lossy(body).chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_like_the_api_encodes_them() {
        assert_eq!(parse_value("q", "1.5").unwrap(), 1.5);
        assert!(parse_value("q", "NaN").unwrap().is_nan());
        assert_eq!(parse_value("q", "+Inf").unwrap(), f64::INFINITY);
        assert_eq!(parse_value("q", "-Inf").unwrap(), f64::NEG_INFINITY);
        assert_eq!(parse_value("q", "x").unwrap_err().category(), "decode");
    }

    #[test]
    fn decode_rejects_unexpected_shapes() {
        assert!(decode_data("q", b"<html>").is_err());
        assert!(decode_data("q", br#"{"status":"success"}"#).is_err());
        assert!(
            decode_data(
                "q",
                br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#
            )
            .is_err()
        );
        match decode_data(
            "q",
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#,
        ) {
            Ok(QueryData::Scalar((t, v))) => assert_eq!((t, v.as_str()), (1.0, "2")),
            _ => panic!("scalar expected"),
        }
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
            if let Err(e) = decode_data("sum(up)", &body) {
                let text = e.to_string();
                proptest::prop_assert!(text.contains("sum(up)"), "{}", text);
            }
            for value in ["", "1e999", "-", "0x10", "NaN ", "∞"] {
                let _ = parse_value("q", value);
            }
        }
    }
}
