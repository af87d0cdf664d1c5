use canary_gate::analysis::*;
use canary_gate::simulation::*;
fn main() {
    for idx in [10usize, 11] {
        let s = standard_scenarios()[idx].clone();
        for (tol, jit) in [(0.0, 0.0), (0.0, 0.05), (0.05, 0.05)] {
            let mut g = Generator::new(s.clone(), 1);
            let mut cmp = LatencyComparison::new(Direction::Increase, tol, jit);
            let mut line = String::new();
            for i in 0..30 {
                let ctx = StepContext { t: i as f64 * 10.0, step: 0, weight: 5.0, step_complete: false, last_step: false };
                let iv = g.interval(ctx);
                cmp.update(&iv.stable.latency, &iv.canary.latency).unwrap();
                if i % 5 == 4 { line += &format!(" {:.1}", cmp.mixture().log_e()); }
            }
            let tr: Vec<String> = cmp.mixture().tracks().iter().map(|x| format!("{x:.0}")).collect();
            println!("{} tol {tol} jit {jit}: log_e every 50s:{line}\n   tracks {}", s.name, tr.join(","));
        }
    }
}
