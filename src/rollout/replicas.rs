//! How many pods each version runs for a traffic weight.
//!
//! With the replica-ratio router (no mesh, one Service selecting both versions) the pods *are*
//! the split: the canary runs `round(total × weight / 100)` pods (at least one while it is live)
//! and the stable the rest, so the split is as coarse as the pod count — 4 pods can only give
//! 0, 25, 50, 75 or 100 %, and a 5 % step on 4 pods really sends 25 %. With a router the stable
//! keeps all its pods and the canary runs enough for its share (`ceil`, at least one while live).

/// Pods per version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replicas {
    /// Pods of the stable version.
    pub stable: i32,
    /// Pods of the canary.
    pub canary: i32,
}

/// Replica ratio: the weight is the canary's share of `total` pods. `live`: the canary is being
/// rolled out (it keeps at least one pod, unless the weight is 0 and `total` is 0).
pub fn ratio(total: i32, weight: i32, live: bool) -> Replicas {
    let total = total.max(0);
    let weight = weight.clamp(0, 100);
    let mut canary = ((i64::from(total) * i64::from(weight) + 50) / 100) as i32;
    if live && weight > 0 && canary == 0 && total > 0 {
        canary = 1;
    }
    // Keep one stable pod until the canary has all traffic.
    if weight < 100 && canary == total && total > 1 {
        canary = total - 1;
    }
    Replicas {
        stable: total - canary,
        canary,
    }
}

/// A traffic router splits requests: the stable keeps `total` pods, the canary runs
/// `ceil(total × weight / 100)` — at least one while `live` (A/B matches need a pod at weight 0).
pub fn routed(total: i32, weight: i32, live: bool) -> Replicas {
    let total = total.max(0);
    let weight = weight.clamp(0, 100);
    let mut canary = ((i64::from(total) * i64::from(weight) + 99) / 100) as i32;
    if live && canary == 0 && total > 0 {
        canary = 1;
    }
    Replicas {
        stable: total,
        canary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(stable: i32, canary: i32) -> Replicas {
        Replicas { stable, canary }
    }

    #[test]
    fn replica_ratio_is_as_coarse_as_the_pod_count() {
        assert_eq!(ratio(10, 0, true), r(10, 0));
        assert_eq!(ratio(10, 5, true), r(9, 1)); // 10 % in fact
        assert_eq!(ratio(10, 25, true), r(7, 3)); // round(2.5) = 3
        assert_eq!(ratio(10, 50, true), r(5, 5));
        assert_eq!(ratio(10, 100, true), r(0, 10));
        assert_eq!(ratio(4, 5, true), r(3, 1)); // 25 % in fact
        assert_eq!(ratio(2, 90, true), r(1, 1)); // one stable pod until 100 %
        assert_eq!(ratio(1, 50, true), r(0, 1));
        assert_eq!(ratio(10, 0, false), r(10, 0));
        assert_eq!(ratio(0, 50, true), r(0, 0));
        assert_eq!(ratio(-3, 150, true), r(0, 0));
    }

    #[test]
    fn a_router_keeps_the_stable_whole_and_sizes_the_canary_for_its_share() {
        assert_eq!(routed(10, 0, false), r(10, 0));
        assert_eq!(routed(10, 0, true), r(10, 1)); // A/B at weight 0 needs a pod
        assert_eq!(routed(10, 5, true), r(10, 1));
        assert_eq!(routed(10, 50, true), r(10, 5));
        assert_eq!(routed(10, 51, true), r(10, 6));
        assert_eq!(routed(10, 100, true), r(10, 10));
        assert_eq!(routed(0, 100, true), r(0, 0));
    }
}
