//! A template's metrics read from Prometheus: one range query per template query over a window,
//! pivoted into per-interval, per-version judge samples. Series are summed per version and `le`
//! as the answer is read (nothing else about them is kept), and windows are bounded before any
//! request ([`MAX_WINDOW_INTERVALS`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::analysis::MetricSample;
use crate::template::Template;

use super::prometheus::{Prometheus, PrometheusError};
use super::query::{
    Bindings, LabeledValue, Labels, MetricQueries, QueryError, render_template, resolve_args,
    sample_for_metric,
};

/// The most steps one range query asks for; Prometheus refuses more than 11 000 points per
/// series.
pub const MAX_POINTS: usize = 10_000;

/// The most intervals one window may hold (a week at 10 s intervals is 60 480); longer windows
/// are refused before any request.
pub const MAX_WINDOW_INTERVALS: usize = 100_000;

/// The latest time accepted, unix seconds (year 5000).
const MAX_TIME: f64 = 95_617_584_000.0;

/// Errors reading a template's metrics.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The template's queries cannot be prepared.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A query failed in a way that is not "no data".
    #[error("metric {metric:?}, query.{field}: {source}")]
    Prometheus {
        /// Metric name.
        metric: String,
        /// Query field.
        field: &'static str,
        /// The client's error (names the query).
        #[source]
        source: PrometheusError,
    },
    /// The window holds more intervals than [`MAX_WINDOW_INTERVALS`].
    #[error(
        "the window from {from} to {to} holds {intervals:.0} intervals of {interval}s, more than {max}; judge a shorter window"
    )]
    WindowTooLong {
        /// Start, unix seconds.
        from: f64,
        /// End, unix seconds.
        to: f64,
        /// Intervals it would hold.
        intervals: f64,
        /// Interval length, seconds.
        interval: f64,
        /// The limit.
        max: usize,
    },
    /// A window bound is not a time Prometheus can hold.
    #[error(
        "{which} = {value} is not a time between 1970 and 5000 (unix seconds); give unix seconds or RFC 3339"
    )]
    Time {
        /// `from` or `to`.
        which: &'static str,
        /// The value.
        value: f64,
    },
    /// The window is empty or reversed.
    #[error("the window from {from} to {to} holds no complete interval of {interval}s")]
    Window {
        /// Start, unix seconds.
        from: f64,
        /// End, unix seconds.
        to: f64,
        /// Interval length, seconds.
        interval: f64,
    },
}

/// What one query gave for one interval: its values, or why there are none.
type IntervalValues = Result<Vec<LabeledValue>, Arc<str>>;

/// One interval of a window (defined beside the samples it holds, in the pure judge).
pub use crate::analysis::WindowInterval;

/// What one query returned at one instant, for `template test`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Metric name.
    pub metric: String,
    /// Query field.
    pub field: &'static str,
    /// The rendered PromQL.
    pub query: String,
    /// Series with all their labels, or the error.
    pub result: Result<Vec<LabeledValue>, String>,
}

/// A template bound to a Prometheus and to argument values.
pub struct PrometheusSource<'a> {
    client: &'a Prometheus,
    template: &'a Template,
    bindings: Bindings,
    queries: Vec<MetricQueries>,
}

impl<'a> PrometheusSource<'a> {
    /// Resolves arguments and renders every query.
    ///
    /// # Errors
    /// On unknown or missing arguments, bad placeholders, or a metric without a query.
    pub fn new(
        client: &'a Prometheus,
        template: &'a Template,
        args: &[(String, String)],
    ) -> Result<Self, SourceError> {
        let args = resolve_args(&template.file.spec.args, args)?;
        let bindings = Bindings::new(template, args)?;
        let queries = render_template(template, &bindings)?;
        Ok(Self {
            client,
            template,
            bindings,
            queries,
        })
    }

    /// The rendered queries, per metric.
    pub fn queries(&self) -> &[MetricQueries] {
        &self.queries
    }

    /// Samples for every complete interval in `(from, to]`. Long windows are read in range
    /// queries of at most [`MAX_POINTS`] steps each (Prometheus refuses more than 11 000 points
    /// per series), so a rollout paused for a week is read as a few queries, not refused.
    ///
    /// An error query that returns no series in the whole window while its requests query
    /// does is missing data for every interval (it may never match), not zero errors.
    ///
    /// # Errors
    /// When a query fails for a reason other than returning no data or NaN (those become
    /// missing samples, which the judge holds on), when the newest part of the window is
    /// stale, or when the window is outside 1970…5000 or longer than
    /// [`MAX_WINDOW_INTERVALS`].
    pub async fn window(&self, from: f64, to: f64) -> Result<Vec<WindowInterval>, SourceError> {
        let step = self.template.interval;
        let interval = step.as_secs_f64();
        for (which, value) in [("from", from), ("to", to)] {
            if !(0.0..=MAX_TIME).contains(&value) {
                return Err(SourceError::Time { which, value });
            }
        }
        let intervals = ((to - from) / interval + 1e-9).floor();
        if intervals > MAX_WINDOW_INTERVALS as f64 {
            return Err(SourceError::WindowTooLong {
                from,
                to,
                intervals,
                interval,
                max: MAX_WINDOW_INTERVALS,
            });
        }
        let n = intervals.max(0.0) as usize;
        if n == 0 {
            return Err(SourceError::Window { from, to, interval });
        }
        let times: Vec<f64> = (1..=n).map(|k| from + k as f64 * interval).collect();
        // results[metric][query][interval] = values, or why there are none
        let mut results: Vec<Vec<Vec<IntervalValues>>> = Vec::new();
        for (metric, queries) in self.template.file.spec.metrics.iter().zip(&self.queries) {
            let mut per_query = Vec::new();
            // Whether each query returned any series at all in the window.
            let mut seen = Vec::new();
            for (field, query) in queries.queries() {
                let mut any_series = false;
                let mut per_interval = Vec::with_capacity(n);
                let chunks = times.chunks(MAX_POINTS);
                let last_chunk = chunks.len() - 1;
                for (c, chunk) in chunks.enumerate() {
                    let (start, end) = (chunk[0], chunk[chunk.len() - 1]);
                    tracing::debug!(metric = %metric.name, field, query, start, end, "range query");
                    // None (or none lately) of a series whose absence means zero is not
                    // missing data.
                    let answer = if MetricQueries::absent_means_zero(field) {
                        self.client
                            .query_range_sparse(query, start, end, step)
                            .await
                    } else {
                        self.client.query_range(query, start, end, step).await
                    };
                    match answer {
                        Ok(series) => {
                            any_series |= !series.is_empty();
                            let base = per_interval.len();
                            per_interval.resize(base + chunk.len(), Ok(Vec::new()));
                            // Only the version label and `le` matter to the judge: series with
                            // the same (version, le) are summed here, point by point, so memory
                            // grows with intervals × versions × buckets, not with the answer.
                            let mut keys: Vec<Labels> = Vec::new();
                            for s in series {
                                let Some(key) = self.key(&s.labels, &mut keys) else {
                                    continue;
                                };
                                for (ts, v) in s.points {
                                    let k = ((ts - start) / interval).round();
                                    if k >= 0.0
                                        && (k as usize) < chunk.len()
                                        && (start + k * interval - ts).abs() < 1e-3
                                        && let Ok(values) = &mut per_interval[base + k as usize]
                                    {
                                        match values.iter_mut().find(|(l, _)| Arc::ptr_eq(l, &key))
                                        {
                                            Some((_, sum)) => *sum += v,
                                            None => values.push((key.clone(), v)),
                                        }
                                    }
                                }
                            }
                        }
                        Err(
                            e
                            @ (PrometheusError::Empty { .. } | PrometheusError::NotANumber { .. }),
                        ) => {
                            let why: Arc<str> = e.to_string().into();
                            per_interval.extend(chunk.iter().map(|_| Err(why.clone())));
                        }
                        // Only the newest part of a window can be stale; an older chunk
                        // without recent points simply has no data.
                        Err(e @ PrometheusError::Stale { .. }) if c < last_chunk => {
                            let why: Arc<str> = e.to_string().into();
                            per_interval.extend(chunk.iter().map(|_| Err(why.clone())));
                        }
                        Err(source) => {
                            return Err(SourceError::Prometheus {
                                metric: metric.name.clone(),
                                field,
                                source,
                            });
                        }
                    }
                }
                per_query.push(per_interval);
                seen.push(any_series);
            }
            // Absent errors mean zero errors only once the error query has been seen to match:
            // one that never returns a series while the requests query does may simply never
            // match (a label the exporter does not have), and reading that as "no errors"
            // would pass any canary.
            if let (MetricQueries::ErrorRate { errors, .. }, [false, true]) =
                (queries, seen.as_slice())
            {
                let why: Arc<str> = format!(
                    "no data: query.errors {errors:?} returned no series in the whole window while query.requests did; \
                     check that it matches your metrics (`canary-gate template test`), and if the service \
                     really served no errors yet, make the query return 0 (append `or 0 * (<the requests query>)`)"
                )
                .into();
                per_query[0] = vec![Err(why); n];
            }
            results.push(per_query);
        }
        Ok(times
            .iter()
            .enumerate()
            .map(|(k, &t)| WindowInterval {
                t,
                samples: self
                    .template
                    .judge
                    .metrics
                    .iter()
                    .zip(&results)
                    .map(|(config, per_query)| {
                        let mut values = Vec::with_capacity(per_query.len());
                        for q in per_query {
                            match &q[k] {
                                Ok(v) => values.push(v.clone()),
                                Err(why) => return MetricSample::Missing(why.to_string()),
                            }
                        }
                        sample_for_metric(config.kind, &config.method, &self.bindings, &values)
                    })
                    .collect(),
            })
            .collect())
    }

    /// The labels of a series that the judge reads (the version label and `le`), interned in
    /// `keys`; `None` for a series of neither version.
    fn key(&self, labels: &BTreeMap<String, String>, keys: &mut Vec<Labels>) -> Option<Labels> {
        let label = &self.bindings.version_label;
        let version = labels.get(label)?;
        if version != &self.bindings.stable && version != &self.bindings.canary {
            return None;
        }
        let mut key = BTreeMap::new();
        key.insert(label.clone(), version.clone());
        if let Some(le) = labels.get("le") {
            key.insert("le".to_string(), le.clone());
        }
        if let Some(found) = keys.iter().find(|k| ***k == key) {
            return Some(found.clone());
        }
        let key = Labels::new(key);
        keys.push(key.clone());
        Some(key)
    }

    /// Runs every query once at `t` and returns what each gave, errors included.
    pub async fn probe(&self, t: f64) -> Vec<QueryResult> {
        let mut out = Vec::new();
        for (metric, queries) in self.template.file.spec.metrics.iter().zip(&self.queries) {
            for (field, query) in queries.queries() {
                let result = self
                    .client
                    .query(query, t)
                    .await
                    .map(|samples| {
                        samples
                            .into_iter()
                            .map(|s| (Labels::new(s.labels), s.value))
                            .collect()
                    })
                    .map_err(|e| e.to_string());
                out.push(QueryResult {
                    metric: metric.name.clone(),
                    field,
                    query: query.to_string(),
                    result,
                });
            }
        }
        out
    }

    /// The version label and values in use.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }
}
