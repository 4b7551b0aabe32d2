//! Prints every protocol's verdict at each FEAT_BBM level.
use explore::{Limits, Setup, Verdict, verify};
use vmsa::BbmLevel;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    for p in mm::PROTOCOLS {
        if args.len() > 1 && args[1] != p.name {
            continue;
        }
        for bbm in [BbmLevel::Level0, BbmLevel::Level2, BbmLevel::Level2NoAbort] {
          for w in explore::WorkloadKind::STANDARD {
            let mut setup = Setup::standard(p, bbm);
            setup.workloads = vec![w];
            let lim = Limits { states: 3_000_000, ..Limits::default() };
            let row = verify(&setup, &lim).unwrap();
            let v = match &row.report.verdict {
                Verdict::Safe => "safe".to_string(),
                Verdict::Hazard { hazard, trace } => {
                    if args.len() > 2 {
                        for t in trace {
                            println!("    {}", t.text);
                        }
                    }
                    format!("{hazard}")
                }
                Verdict::Incomplete { advice, .. } => advice.clone(),
            };
            println!(
                "{:14} {:10} {:?} rules={:?} states={} depth={} {:?}\n   {}",
                p.name, w.name(), bbm, row.violations.iter().map(|v| v.0.code()).collect::<Vec<_>>(), row.report.states, row.report.depth, row.report.elapsed, v
            );
          }
        }
    }
}
