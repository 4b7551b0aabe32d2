//! Every built-in protocol, HVO and de-HVO, written as a kernel file and
//! read back: the program resolves to exactly the protocol's, and the
//! rule checker and the explorer give the verdicts and state counts of
//! `explore::verify` (what `hvo verify` prints).

use explore::{Direction, Limits, Prepared, Setup, verify_program};
use mm::PROTOCOLS;
use seq::SeqFile;
use vmsa::BbmLevel;

const LEVELS: [BbmLevel; 3] = [BbmLevel::Level0, BbmLevel::Level2, BbmLevel::Level2NoAbort];

#[test]
fn every_protocol_round_trips_with_identical_verdicts() {
    let limits = Limits::default();
    for p in PROTOCOLS {
        for d in [Direction::Hvo, Direction::Restore] {
            let mut rows = Vec::new();
            let mut programs = Vec::new();
            let mut first = None;
            for bbm in LEVELS {
                let mut s = Setup::standard(p, bbm);
                s.direction = d;
                let prep = Prepared::new(&s).expect("prepares");
                rows.push(verify_program(&prep, &prep.program, &limits, false).expect("verifies"));
                programs.push(prep.program.clone());
                first.get_or_insert(prep);
            }
            let prep = first.expect("one level");
            let name = format!("{}-{}", p.name, d.name());
            let opts = seq::Emit {
                title: vec![name.clone()],
                case: &name,
                together: false,
                limits,
            };
            let text = seq::emit(&prep, &prep.program, &rows, &opts).expect("emits");
            let file = match seq::parse(&format!("{name}.seq"), &text) {
                Ok(SeqFile::Kernel(k)) => k,
                Ok(_) => panic!("{name}: not a kernel file"),
                Err(e) => panic!("{name}: {e}\n{text}"),
            };
            for (&bbm, original) in LEVELS.iter().zip(&programs) {
                let (_, read) = file.prepare(bbm).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    &read[0], original,
                    "{name} at {bbm}: the program differs\n{text}"
                );
            }
            let checked = file.check().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(checked.len(), LEVELS.len());
            for (c, r) in checked.iter().zip(&rows) {
                let bbm = r.setup.features.bbm;
                assert!(c.passed(), "{name} at {bbm}: not as expected\n{text}");
                assert_eq!(c.row.violations, r.violations, "{name} at {bbm}");
                assert_eq!(
                    seq::kernel::concurrent_of(&c.row),
                    seq::kernel::concurrent_of(r),
                    "{name} at {bbm}"
                );
                assert_eq!(c.row.states(), r.states(), "{name} at {bbm}: states");
                assert_eq!(c.row.costs, r.costs, "{name} at {bbm}: costs");
            }
        }
    }
}

/// A program whose TLBIs are all local (`tlbi vaale1`, `tlbi vmalle1`, no
/// IS suffix) is written with the local mnemonics and reads back to the
/// same program: the scope survives the kernel file.
#[test]
fn local_tlbis_round_trip() {
    let limits = Limits::default();
    for p in PROTOCOLS {
        let s = Setup::standard(p, BbmLevel::Level0);
        let prep = Prepared::new(&s).expect("prepares");
        let mut program = prep.program.clone();
        let mut locals = 0;
        for i in &mut program.instrs {
            if let mm::Instr::Tlbi { scope, .. } = i {
                *scope = vmsa::TlbiScope::Local;
                locals += 1;
            }
        }
        if locals == 0 {
            continue;
        }
        let row = verify_program(&prep, &program, &limits, false).expect("verifies");
        let name = format!("{}-local", p.name);
        let opts = seq::Emit {
            title: vec![name.clone()],
            case: &name,
            together: false,
            limits,
        };
        let text = seq::emit(&prep, &program, &[row], &opts).expect("emits");
        let broadcast = text
            .lines()
            .any(|l| l.trim_start().starts_with("tlbi ") && l.contains("1is"));
        assert!(!broadcast, "{name}: a broadcast TLBI written\n{text}");
        let file = match seq::parse(&format!("{name}.seq"), &text) {
            Ok(SeqFile::Kernel(k)) => k,
            Ok(_) => panic!("{name}: not a kernel file"),
            Err(e) => panic!("{name}: {e}\n{text}"),
        };
        let (_, read) = file
            .prepare(BbmLevel::Level0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read[0], program, "{name}: the program differs\n{text}");
    }
}
