//! The controller's own requests to the API server, counted by verb and resource
//! (`canary_gate_kube_requests_total`): a tower layer under the kube client, so every request —
//! reconcile, watch, Lease, Event — is seen, and API requests per reconcile and watch restarts
//! can be read from `/metrics`.

use std::task::{Context, Poll};

use http::{Method, Request};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of one counted request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete` (as the API
    /// server's audit log names them), or the HTTP method for anything else.
    pub verb: String,
    /// The resource, with its subresource (`deployments`, `rollouts/status`, `leases`, …).
    pub resource: String,
}

/// The counter family, registered as `canary_gate_kube_requests_total`.
#[derive(Clone, Default)]
pub struct KubeRequests {
    counts: Family<RequestLabel, Counter>,
}

impl KubeRequests {
    /// Registers the family under `canary_gate_`.
    pub fn register(registry: &mut Registry) -> Self {
        let me = Self::default();
        registry.sub_registry_with_prefix("canary_gate").register(
            "kube_requests",
            "Requests to the Kubernetes API server, by verb and resource (a watch is counted when it starts)",
            me.counts.clone(),
        );
        me
    }

    /// How many requests of `verb` on `resource` were sent so far.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .get(&RequestLabel {
                verb: verb.into(),
                resource: resource.into(),
            })
            .map_or(0, |c| c.get())
    }
}

impl<S> tower::Layer<S> for KubeRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            counts: self.counts.clone(),
        }
    }
}

/// The counting service the layer wraps around the kube client's stack.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counts: Family<RequestLabel, Counter>,
}

impl<S, B> tower::Service<Request<B>> for Counted<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.counts.get_or_create(&classify(&request)).inc();
        self.inner.call(request)
    }
}

/// The verb and resource of a request to the API server, from its method, path and query.
pub fn classify<B>(request: &Request<B>) -> RequestLabel {
    let uri = request.uri();
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // /api/v1/… or /apis/GROUP/VERSION/…, then [namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]].
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("other".to_string(), false),
        [resource] => ((*resource).to_string(), false),
        [resource, _name] => ((*resource).to_string(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let watch = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let apply = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let verb = match *request.method() {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if apply => "apply",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        ref other => {
            return RequestLabel {
                verb: other.as_str().to_ascii_lowercase(),
                resource,
            };
        }
    };
    RequestLabel {
        verb: verb.to_string(),
        resource,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(method: Method, uri: &str, content_type: Option<&str>) -> (String, String) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(c) = content_type {
            request = request.header(http::header::CONTENT_TYPE, c);
        }
        let l = classify(&request.body(()).unwrap());
        (l.verb, l.resource)
    }

    #[test]
    fn requests_are_named_by_verb_and_resource_as_the_api_server_names_them() {
        let cases = [
            (
                Method::GET,
                "/apis/apps/v1/namespaces/shop/deployments/web",
                None,
                ("get", "deployments"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?&watch=true&timeoutSeconds=290",
                None,
                ("watch", "deployments"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?limit=500",
                None,
                ("list", "deployments"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb",
                None,
                ("list", "pods"),
            ),
            (
                Method::PATCH,
                "/apis/canarygate.dev/v1alpha1/namespaces/shop/rollouts/web/status?fieldManager=x",
                Some("application/apply-patch+yaml"),
                ("apply", "rollouts/status"),
            ),
            (
                Method::PATCH,
                "/apis/canarygate.dev/v1alpha1/namespaces/shop/rollouts/web",
                Some("application/json-patch+json"),
                ("patch", "rollouts"),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/shop/events",
                None,
                ("create", "events"),
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/canary-gate-system/leases/canary-gate-controller",
                None,
                ("update", "leases"),
            ),
            (
                Method::GET,
                "/apis/canarygate.dev/v1alpha1/clusteranalysistemplates/t",
                None,
                ("get", "clusteranalysistemplates"),
            ),
            (Method::GET, "/version", None, ("list", "other")),
        ];
        for (method, uri, content_type, (verb, resource)) in cases {
            assert_eq!(
                label(method, uri, content_type),
                (verb.to_string(), resource.to_string()),
                "{uri}"
            );
        }
    }

    #[tokio::test]
    async fn the_layer_counts_every_request_it_passes_on() {
        use tower::{Layer, Service, ServiceExt};
        let requests = KubeRequests::default();
        let mut service = requests.layer(tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(())
        }));
        for _ in 0..3 {
            let request = Request::get("/apis/apps/v1/namespaces/a/deployments/b")
                .body(())
                .unwrap();
            service.ready().await.unwrap().call(request).await.unwrap();
        }
        assert_eq!(requests.count("get", "deployments"), 3);
        assert_eq!(requests.count("list", "deployments"), 0);
    }
}
