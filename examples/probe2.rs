use canary_gate::analysis::*;
use canary_gate::simulation::*;
fn main() {
    let s = standard_scenarios()[10].clone();
    let mut g = Generator::new(s.clone(), 1);
    let mut hs = Histogram::empty(&DEFAULT_BUCKETS); let mut hc = Histogram::empty(&DEFAULT_BUCKETS);
    for i in 0..30 {
        let ctx = StepContext { t: i as f64 * 10.0, step: 0, weight: 5.0, step_complete: false, last_step: false };
        let iv = g.interval(ctx);
        hs.add(&iv.stable.latency).unwrap(); hc.add(&iv.canary.latency).unwrap();
    }
    println!("stable {:?}\ncanary {:?}", hs.counts, hc.counts);
    println!("p50 {:?} {:?} p99 {:?} {:?}", hs.quantile(0.5), hc.quantile(0.5), hs.quantile(0.99), hc.quantile(0.99));
}
