//! Istio router: route weights on a `VirtualService` to the `stable` and `canary` subsets of a
//! `DestinationRule`, header and cookie matches for A/B.

use serde_json::{Map, Value, json};

use super::matching::{Condition, conditions, cookie_regex, percent};
use super::{ObjectRef, Router, Split, TrafficError, VERSION_LABEL};

/// Prefix of the names of the A/B routes canary-gate puts in a VirtualService.
const AB_PREFIX: &str = "canary-gate-ab-";

/// Keeps the DestinationRule's `stable` and `canary` subsets selecting pods by version label.
///
/// Existing `stable` and `canary` subsets keep their other fields (traffic policy…) but get
/// exactly the label `canarygate.dev/version: stable|canary`; missing ones are appended; other
/// subsets are left alone. The split plays no part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationRuleSubsets {
    /// DestinationRule name.
    pub destination_rule: String,
}

/// Weights the `stable` and `canary` subsets on a VirtualService's HTTP routes.
///
/// Every HTTP route sending traffic to either subset gets exactly `[stable, canary]`, weighted
/// `100 - w` and `w`; with A/B matches, a route named `canary-gate-ab-<k>` before it sends the
/// requests that match (its own matches plus a header condition) to the canary alone. Other
/// routes are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServiceRoutes {
    /// VirtualService name.
    pub virtual_service: String,
}

impl Router for DestinationRuleSubsets {
    fn reads(&self) -> ObjectRef {
        ObjectRef {
            group: "networking.istio.io",
            version: "v1beta1",
            kind: "DestinationRule",
            plural: "destinationrules",
            name: self.destination_rule.clone(),
        }
    }

    fn desired(&self, read: &Value, _split: &Split) -> Result<Value, TrafficError> {
        if read
            .pointer("/spec/host")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(TrafficError::Unusable {
                object: self.reads().to_string(),
                problem: "has no spec.host; set spec.host to the Service whose pods the stable \
                          and canary subsets select (e.g. web.shop.svc.cluster.local)"
                    .into(),
            });
        }
        let mut subsets = read
            .pointer("/spec/subsets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for role in ["stable", "canary"] {
            let labels = json!({ VERSION_LABEL: role });
            match subsets
                .iter()
                .position(|s| s.get("name").and_then(Value::as_str) == Some(role))
            {
                Some(i) => {
                    if let Some(Value::Object(subset)) = subsets.get_mut(i) {
                        subset.insert("labels".into(), labels);
                    }
                }
                None => subsets.push(json!({"name": role, "labels": labels})),
            }
        }
        Ok(json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "DestinationRule",
            "metadata": {"name": self.destination_rule},
            "spec": {"subsets": subsets},
        }))
    }

    fn in_force(&self, _written: &Value) -> Option<i32> {
        None
    }
}

impl Router for VirtualServiceRoutes {
    fn reads(&self) -> ObjectRef {
        ObjectRef {
            group: "networking.istio.io",
            version: "v1beta1",
            kind: "VirtualService",
            plural: "virtualservices",
            name: self.virtual_service.clone(),
        }
    }

    fn desired(&self, read: &Value, split: &Split) -> Result<Value, TrafficError> {
        let conditions = conditions(split)?;
        let weight = i64::from(split.weight.clamp(0, 100));
        let mut http = Vec::new();
        let mut k = 0;
        let mut weighted = 0;
        for (i, route) in http_routes(read).iter().enumerate() {
            if is_ab_route(route) {
                continue;
            }
            if !is_weighted(route) {
                http.push(route.clone());
                continue;
            }
            weighted += 1;
            let (stable, canary) = self.weighted_entries(i, route, weight)?;
            for c in &conditions {
                http.push(ab_route(k, route, &canary, c));
                k += 1;
            }
            let mut out = route.as_object().cloned().unwrap_or_default();
            out.insert("route".into(), json!([stable, canary]));
            http.push(Value::Object(out));
        }
        if weighted == 0 {
            return Err(TrafficError::Unusable {
                object: self.reads().to_string(),
                problem: "no HTTP route sends traffic to subset stable; add a route \
                          {destination: {host: <service>, subset: stable}} to the spec.http \
                          entry whose traffic the rollout splits"
                    .into(),
            });
        }
        Ok(json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": self.virtual_service},
            "spec": {"http": http},
        }))
    }

    fn in_force(&self, written: &Value) -> Option<i32> {
        let route = http_routes(written)
            .iter()
            .find(|r| !is_ab_route(r) && is_weighted(r))?;
        let entries = destinations(route);
        // Istio's default weight: 100 for a sole destination, 0 otherwise.
        let default = if entries.len() == 1 { 100 } else { 0 };
        let weight_of = |role: &str| {
            entries
                .iter()
                .find(|e| subset(e) == Some(role))
                .map_or(0, |e| {
                    e.get("weight").and_then(Value::as_i64).unwrap_or(default)
                })
        };
        percent(weight_of("stable"), weight_of("canary"))
    }
}

impl VirtualServiceRoutes {
    /// The stable and canary destination entries of weighted route `i`, weighted.
    fn weighted_entries(
        &self,
        i: usize,
        route: &Value,
        weight: i64,
    ) -> Result<(Value, Value), TrafficError> {
        let (mut stable, mut canary) = (None, None);
        for entry in destinations(route) {
            match subset(entry) {
                Some("stable") => {
                    stable.get_or_insert(entry);
                }
                Some("canary") => {
                    canary.get_or_insert(entry);
                }
                other => {
                    let host = entry
                        .pointer("/destination/host")
                        .and_then(Value::as_str)
                        .unwrap_or("<no host>");
                    let name = route
                        .get("name")
                        .and_then(Value::as_str)
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    return Err(TrafficError::Unusable {
                        object: self.reads().to_string(),
                        problem: format!(
                            "spec.http[{i}]{name} sends traffic to {host}{} besides the stable \
                             and canary subsets; a route whose traffic canary-gate splits must \
                             send traffic only to these two subsets: move the other destinations \
                             to a route of their own",
                            other.map(|s| format!(" subset {s}")).unwrap_or_default()
                        ),
                    });
                }
            }
        }
        // Both destinations go to the stable destination's host and port.
        let base = stable
            .or(canary)
            .and_then(|e| e.get("destination"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let destination = |role: &str| {
            let mut d = base.clone();
            d.insert("subset".into(), role.into());
            Value::Object(d)
        };
        let mut stable_entry = entry_object(stable);
        if stable.is_none() {
            stable_entry.insert("destination".into(), destination("stable"));
        }
        stable_entry.insert("weight".into(), (100 - weight).into());
        let mut canary_entry = entry_object(canary);
        canary_entry.insert("destination".into(), destination("canary"));
        canary_entry.insert("weight".into(), weight.into());
        Ok((Value::Object(stable_entry), Value::Object(canary_entry)))
    }
}

fn entry_object(entry: Option<&Value>) -> Map<String, Value> {
    entry
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn http_routes(vs: &Value) -> &[Value] {
    vs.pointer("/spec/http")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn destinations(route: &Value) -> &[Value] {
    route
        .get("route")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn subset(entry: &Value) -> Option<&str> {
    entry.pointer("/destination/subset").and_then(Value::as_str)
}

fn is_ab_route(route: &Value) -> bool {
    route
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.starts_with(AB_PREFIX))
}

fn is_weighted(route: &Value) -> bool {
    destinations(route)
        .iter()
        .any(|e| matches!(subset(e), Some("stable" | "canary")))
}

/// A/B route `k` before a weighted route: its other fields (rewrite, timeout, retries…), each of
/// its match entries (or an empty one) with condition `c` added, and the canary alone.
fn ab_route(k: usize, route: &Value, canary: &Value, c: &Condition<'_>) -> Value {
    let matches: Vec<Value> = match route
        .get("match")
        .and_then(Value::as_array)
        .filter(|ms| !ms.is_empty())
    {
        Some(ms) => ms.iter().map(|m| with_header(m, c)).collect(),
        None => vec![with_header(&json!({}), c)],
    };
    let mut only_canary = canary.clone();
    if let Value::Object(e) = &mut only_canary {
        e.insert("weight".into(), 100.into());
    }
    let mut ab = route.as_object().cloned().unwrap_or_default();
    ab.insert("name".into(), format!("{AB_PREFIX}{k}").into());
    ab.insert("match".into(), Value::Array(matches));
    ab.insert("route".into(), json!([only_canary]));
    Value::Object(ab)
}

/// Match entry `m` with the header condition for `c` (Istio wants header names in lowercase).
fn with_header(m: &Value, c: &Condition<'_>) -> Value {
    let (name, condition) = match *c {
        Condition::Header { name, value } => (name.to_ascii_lowercase(), json!({"exact": value})),
        Condition::Cookie { name, value } => (
            "cookie".to_string(),
            json!({"regex": cookie_regex(name, value)}),
        ),
    };
    let mut m = m.as_object().cloned().unwrap_or_default();
    let mut headers = m
        .get("headers")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    headers.insert(name, condition);
    m.insert("headers".into(), Value::Object(headers));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::rollout::RouteMatch;

    fn split(weight: i32, matches: Vec<RouteMatch>) -> Split {
        Split {
            weight,
            matches,
            stable_revision: "5d9f8c7b6".into(),
            canary_revision: Some("7c6b5a4d3".into()),
        }
    }

    fn header(name: &str, value: &str) -> RouteMatch {
        RouteMatch {
            header: Some(name.into()),
            cookie: None,
            value: value.into(),
        }
    }

    fn cookie(name: &str, value: &str) -> RouteMatch {
        RouteMatch {
            header: None,
            cookie: Some(name.into()),
            value: value.into(),
        }
    }

    fn subsets() -> DestinationRuleSubsets {
        DestinationRuleSubsets {
            destination_rule: "web".into(),
        }
    }

    fn destination_rule(subsets: Value) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "DestinationRule",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "12"},
            "spec": {
                "host": "web.shop.svc.cluster.local",
                "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                "subsets": subsets,
            },
        })
    }

    fn subsets_body(subsets: Value) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "DestinationRule",
            "metadata": {"name": "web"},
            "spec": {"subsets": subsets},
        })
    }

    #[test]
    fn subsets_select_pods_by_version_label_and_keep_the_rest() {
        let read = destination_rule(json!([
            {"name": "legacy", "labels": {"app": "web-v1"}},
            {"name": "canary", "labels": {"app": "web", "track": "canary"},
             "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}}},
        ]));
        let expected = subsets_body(json!([
            {"name": "legacy", "labels": {"app": "web-v1"}},
            {"name": "canary", "labels": {"canarygate.dev/version": "canary"},
             "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}}},
            {"name": "stable", "labels": {"canarygate.dev/version": "stable"}},
        ]));
        let body = subsets().desired(&read, &split(30, vec![])).unwrap();
        assert_eq!(body, expected);
        let mut applied = read.clone();
        applied["spec"]["subsets"] = body["spec"]["subsets"].clone();
        assert_eq!(subsets().desired(&applied, &split(0, vec![])), Ok(expected));
        assert_eq!(subsets().in_force(&applied), None);
    }

    #[test]
    fn subsets_are_added_when_there_are_none() {
        let mut read = destination_rule(json!(null));
        read["spec"].as_object_mut().unwrap().remove("subsets");
        assert_eq!(
            subsets().desired(&read, &split(0, vec![])),
            Ok(subsets_body(json!([
                {"name": "stable", "labels": {"canarygate.dev/version": "stable"}},
                {"name": "canary", "labels": {"canarygate.dev/version": "canary"}},
            ])))
        );
    }

    #[test]
    fn a_destination_rule_without_host_is_unusable() {
        let err = subsets()
            .desired(&json!({"spec": {"subsets": []}}), &split(0, vec![]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DestinationRule web: has no spec.host; set spec.host to the Service whose pods the \
             stable and canary subsets select (e.g. web.shop.svc.cluster.local)"
        );
    }

    fn routes() -> VirtualServiceRoutes {
        VirtualServiceRoutes {
            virtual_service: "web".into(),
        }
    }

    fn virtual_service(http: Value) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "shop", "generation": 3},
            "spec": {
                "hosts": ["shop.example.com"],
                "gateways": ["public"],
                "http": http,
            },
        })
    }

    fn body(http: Value) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "web"},
            "spec": {"http": http},
        })
    }

    /// `read` after applying `body` (the http list is atomic: replaced whole).
    fn applied(read: &Value, body: &Value) -> Value {
        let mut out = read.clone();
        out["spec"]["http"] = body["spec"]["http"].clone();
        out
    }

    const HOST: &str = "web.shop.svc.cluster.local";

    fn admin_route() -> Value {
        json!({
            "name": "admin",
            "match": [{"uri": {"prefix": "/admin"}}],
            "route": [{"destination": {"host": "admin.shop.svc.cluster.local"}}],
        })
    }

    /// The user's VirtualService: `/admin` elsewhere, then the primary route to subset stable.
    fn read() -> Value {
        virtual_service(json!([
            admin_route(),
            {
                "name": "primary",
                "match": [{"uri": {"prefix": "/"}}],
                "timeout": "5s",
                "route": [{
                    "destination": {"host": HOST, "subset": "stable", "port": {"number": 8080}},
                    "headers": {"response": {"set": {"x-version": "stable"}}},
                }],
            },
        ]))
    }

    fn primary(stable: i64, canary: i64) -> Value {
        json!({
            "name": "primary",
            "match": [{"uri": {"prefix": "/"}}],
            "timeout": "5s",
            "route": [
                {"destination": {"host": HOST, "subset": "stable", "port": {"number": 8080}},
                 "headers": {"response": {"set": {"x-version": "stable"}}},
                 "weight": stable},
                {"destination": {"host": HOST, "subset": "canary", "port": {"number": 8080}},
                 "weight": canary},
            ],
        })
    }

    fn ab(k: usize, headers: Value) -> Value {
        json!({
            "name": format!("canary-gate-ab-{k}"),
            "match": [{"uri": {"prefix": "/"}, "headers": headers}],
            "timeout": "5s",
            "route": [{"destination": {"host": HOST, "subset": "canary", "port": {"number": 8080}},
                       "weight": 100}],
        })
    }

    #[test]
    fn weights_the_stable_and_canary_subsets_and_keeps_other_routes() {
        for w in [0, 5, 50, 100] {
            let body = routes().desired(&read(), &split(w, vec![])).unwrap();
            let (stable, canary) = (100 - i64::from(w), i64::from(w));
            assert_eq!(
                body,
                self::body(json!([admin_route(), primary(stable, canary)]))
            );
            assert_eq!(routes().in_force(&applied(&read(), &body)), Some(w));
        }
    }

    #[test]
    fn header_and_cookie_matches_add_ab_routes_before_the_weighted_route() {
        let ab_split = split(10, vec![header("X-Canary", "yes"), cookie("beta", "1.0")]);
        let body = routes().desired(&read(), &ab_split).unwrap();
        assert_eq!(
            body,
            self::body(json!([
                admin_route(),
                ab(0, json!({"x-canary": {"exact": "yes"}})),
                ab(
                    1,
                    json!({"cookie": {"regex": r"(^|.*;\s*)beta=1\.0(;.*|$)"}})
                ),
                primary(90, 10),
            ]))
        );
        assert_eq!(routes().in_force(&applied(&read(), &body)), Some(10));
    }

    #[test]
    fn ab_routes_are_numbered_over_the_whole_list_and_keep_existing_headers() {
        let read = virtual_service(json!([
            {"match": [{"uri": {"prefix": "/api"}, "headers": {"x-app": {"exact": "1"}}},
                       {"uri": {"prefix": "/v2"}}],
             "route": [{"destination": {"host": HOST, "subset": "stable"}}]},
            {"route": [{"destination": {"host": HOST, "subset": "canary"}, "weight": 100}]},
        ]));
        let body = routes()
            .desired(&read, &split(50, vec![header("x-canary", "yes")]))
            .unwrap();
        let canary = json!({"destination": {"host": HOST, "subset": "canary"}, "weight": 100});
        let yes = json!({"exact": "yes"});
        assert_eq!(
            body,
            self::body(json!([
                {"name": "canary-gate-ab-0",
                 "match": [{"uri": {"prefix": "/api"},
                            "headers": {"x-app": {"exact": "1"}, "x-canary": yes}},
                           {"uri": {"prefix": "/v2"}, "headers": {"x-canary": yes}}],
                 "route": [canary]},
                {"match": [{"uri": {"prefix": "/api"}, "headers": {"x-app": {"exact": "1"}}},
                           {"uri": {"prefix": "/v2"}}],
                 "route": [{"destination": {"host": HOST, "subset": "stable"}, "weight": 50},
                           {"destination": {"host": HOST, "subset": "canary"}, "weight": 50}]},
                {"name": "canary-gate-ab-1",
                 "match": [{"headers": {"x-canary": yes}}],
                 "route": [canary]},
                {"route": [{"destination": {"host": HOST, "subset": "stable"}, "weight": 50},
                           {"destination": {"host": HOST, "subset": "canary"}, "weight": 50}]},
            ]))
        );
    }

    #[test]
    fn desired_is_idempotent_and_rollback_removes_the_ab_routes() {
        let ab_split = split(25, vec![header("x-canary", "yes"), cookie("beta", "on")]);
        let first = routes().desired(&read(), &ab_split).unwrap();
        let again = routes()
            .desired(&applied(&read(), &first), &ab_split)
            .unwrap();
        assert_eq!(again, first);

        let rollback = routes()
            .desired(&applied(&read(), &first), &split(0, vec![]))
            .unwrap();
        assert_eq!(rollback, body(json!([admin_route(), primary(100, 0)])));
        assert_eq!(routes().in_force(&applied(&read(), &rollback)), Some(0));
    }

    #[test]
    fn in_force_reads_the_first_weighted_route_in_percent() {
        let written = virtual_service(json!([
            admin_route(),
            {"name": "canary-gate-ab-0",
             "route": [{"destination": {"host": HOST, "subset": "canary"}, "weight": 100}]},
            {"route": [{"destination": {"host": HOST, "subset": "stable"}, "weight": 2},
                       {"destination": {"host": HOST, "subset": "canary"}, "weight": 1}]},
        ]));
        assert_eq!(routes().in_force(&written), Some(33));
        let sole = virtual_service(
            json!([{"route": [{"destination": {"host": HOST, "subset": "stable"}}]}]),
        );
        assert_eq!(routes().in_force(&sole), Some(0));
        assert_eq!(
            routes().in_force(&virtual_service(json!([admin_route()]))),
            None
        );
        assert_eq!(routes().in_force(&json!([])), None);
    }

    #[test]
    fn a_virtual_service_without_stable_or_canary_route_is_unusable() {
        for read in [virtual_service(json!([admin_route()])), json!({"spec": {}})] {
            let err = routes().desired(&read, &split(5, vec![])).unwrap_err();
            assert_eq!(
                err.to_string(),
                "VirtualService web: no HTTP route sends traffic to subset stable; add a route \
                 {destination: {host: <service>, subset: stable}} to the spec.http entry whose \
                 traffic the rollout splits"
            );
        }
    }

    #[test]
    fn a_weighted_route_with_other_destinations_is_unusable() {
        let read = virtual_service(json!([{
            "name": "primary",
            "route": [{"destination": {"host": HOST, "subset": "stable"}, "weight": 90},
                      {"destination": {"host": "legacy.shop.svc.cluster.local"}, "weight": 10}],
        }]));
        let err = routes().desired(&read, &split(5, vec![])).unwrap_err();
        assert_eq!(
            err,
            TrafficError::Unusable {
                object: "VirtualService web".into(),
                problem: "spec.http[0] (primary) sends traffic to legacy.shop.svc.cluster.local \
                          besides the stable and canary subsets; a route whose traffic \
                          canary-gate splits must send traffic only to these two subsets: move \
                          the other destinations to a route of their own"
                    .into(),
            }
        );
    }

    #[test]
    fn an_invalid_match_is_unsupported() {
        let neither = RouteMatch {
            header: None,
            cookie: None,
            value: "yes".into(),
        };
        assert_eq!(
            routes().desired(&read(), &split(5, vec![neither])),
            Err(TrafficError::Unsupported {
                field: "spec.trafficRouting.matches[0]".into(),
                problem: "set exactly one of header or cookie".into(),
            })
        );
    }
}
