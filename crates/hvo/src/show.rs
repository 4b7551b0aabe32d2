//! `hvo show`: the program the explorer runs for one huge page, as text
//! (with its rule verdict) or as a kernel file for `hvo check`. Both
//! forms print the one program [`explored`] returns, which is the program
//! `hvo verify` explores.

use std::process::ExitCode;

use clap::Args;
use explore::{Direction, Limits, Prepared, Setup, WorkloadKind};
use mm::{Instr, Program, Protocol, Regs};
use vmsa::granule::format_size;
use vmsa::{BbmLevel, Features};

use crate::simulate::{MachineArgs, fail, groups};

/// `hvo show` options.
#[derive(Args, Clone, Debug)]
pub struct ShowArgs {
    /// The protocol.
    name: String,
    #[command(flatten)]
    machine: MachineArgs,
    /// Show de-HVO (restore) after HVO; with `--format seq`, write the
    /// de-HVO program.
    #[arg(long)]
    restore: bool,
    /// `text` (the program and its rule verdict), `seq` (a kernel file
    /// for `hvo check`, with the verdicts of `hvo verify` as its expected
    /// ones) or `litmus` (the level-3 part as a herd7 AArch64 VMSA litmus
    /// test for `hvo litmus` and herd7; `--restore` for de-HVO's).
    #[arg(long, default_value = "text")]
    format: String,
    /// With `--format seq`: the FEAT_BBM levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,2,2-noabort")]
    levels: Vec<BbmLevel>,
    /// The workloads, comma-separated (default: the standard set).
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// CPUs per workload.
    #[arg(long = "workload-cpus", default_value_t = 1)]
    workload_cpus: usize,
    /// With `--format seq`: all workloads in one exploration.
    #[arg(long)]
    together: bool,
    /// With `--format seq`: hardware Access flag management off (on by
    /// default, as in `hvo verify`).
    #[arg(long)]
    no_hw_af: bool,
    /// Remove `synchronize_rcu()` from the program (as `hvo verify
    /// --no-rcu`).
    #[arg(long)]
    no_rcu: bool,
}

impl ShowArgs {
    /// Returns the workloads asked for, or the standard set.
    fn workloads(&self) -> Result<Vec<WorkloadKind>, String> {
        if self.workload.is_empty() {
            Ok(WorkloadKind::STANDARD.to_vec())
        } else {
            self.workload.iter().map(|w| w.parse()).collect()
        }
    }

    /// Returns the explorer's setup of protocol `p` for `direction` with
    /// `features`.
    fn setup(
        &self,
        p: Protocol,
        direction: Direction,
        features: Features,
    ) -> Result<Setup, String> {
        Ok(Setup {
            protocol: p,
            direction,
            granule: self.machine.granule,
            huge_size: self.machine.huge_size,
            features,
            workloads: self.workloads()?,
            copies: self.workload_cpus,
        })
    }

    /// Returns the `hvo show ... --format seq` command that writes this
    /// file: every option that changes it, so that running the command
    /// again writes the same file.
    fn seq_command(&self) -> String {
        self.command("seq")
    }

    /// Returns the `hvo show ... --format FORMAT` command that writes this
    /// output (for `litmus`, without the options it ignores).
    fn command(&self, format: &str) -> String {
        let seq = format == "seq";
        let mut c = format!("hvo show {} --format {format}", self.name);
        let m = &self.machine;
        if let Some(s) = &m.split {
            c.push_str(&format!(" --split {s}"));
        }
        if self.restore {
            c.push_str(" --restore");
        }
        if m.granule != vmsa::Granule::K4 {
            c.push_str(&format!(
                " --granule {}",
                m.granule.to_string().to_lowercase()
            ));
        }
        if m.huge_size != 2 << 20 {
            c.push_str(&format!(" --hugepagesz {}", format_size(m.huge_size)));
        }
        let levels: Vec<String> = self.levels.iter().map(ToString::to_string).collect();
        if seq && levels != ["0", "2", "2-noabort"] {
            c.push_str(&format!(" --levels {}", levels.join(",")));
        }
        if !self.workload.is_empty() {
            c.push_str(&format!(" --workload {}", self.workload.join(",")));
        }
        if self.workload_cpus != 1 {
            c.push_str(&format!(" --workload-cpus {}", self.workload_cpus));
        }
        for (on, flag) in [
            (self.together && seq, " --together"),
            (self.no_hw_af, " --no-hw-af"),
            (m.hw_dbm, " --hw-dbm"),
            (self.no_rcu, " --no-rcu"),
        ] {
            if on {
                c.push_str(flag);
            }
        }
        c
    }
}

/// Returns the kernel the explorer boots for `setup` and the program it
/// explores there: the protocol's batch of one huge page after the
/// refcount freeze ([`explore::Prepared`]), without `synchronize_rcu()`
/// with `--no-rcu`. Both forms of `hvo show` print this program.
fn explored(a: &ShowArgs, setup: &Setup) -> Result<(Prepared, Program), String> {
    let prep = Prepared::new(setup).map_err(|e| e.to_string())?;
    let mut program = prep.program.clone();
    if a.no_rcu {
        program
            .instrs
            .retain(|i| !matches!(i, Instr::SynchronizeRcu));
    }
    Ok((prep, program))
}

/// Writes the kernel file of `hvo show NAME --format seq`.
fn show_seq(a: &ShowArgs, p: Protocol) -> ExitCode {
    let direction = if a.restore {
        Direction::Restore
    } else {
        Direction::Hvo
    };
    let limits = Limits::default();
    let mut rows = Vec::new();
    let mut first = None;
    for &bbm in &a.levels {
        let features = Features {
            bbm,
            hw_af: !a.no_hw_af,
            hw_dbm: a.machine.hw_dbm,
            ..Features::default()
        };
        let (prep, program) = match a
            .setup(p, direction, features)
            .and_then(|s| explored(a, &s))
        {
            Ok(x) => x,
            Err(e) => return fail(&e),
        };
        match explore::verify_program(&prep, &program, &limits, a.together) {
            Ok(r) => rows.push(r),
            Err(e) => return fail(&e.to_string()),
        }
        first.get_or_insert((prep, program));
    }
    let Some((prep, program)) = first else {
        return fail("--levels: expected at least one FEAT_BBM level");
    };
    let title = vec![
        format!(
            "{} {}: {} (split {})",
            p.name,
            direction.name(),
            p.summary,
            p.split.name()
        ),
        format!("source: {}", p.source),
        format!(
            "written by `{}`; the expected verdicts are `hvo verify`'s",
            a.seq_command()
        ),
    ];
    let opts = seq::Emit {
        title,
        case: &format!("{}-{}", p.name, direction.name()),
        together: a.together,
        limits,
    };
    match seq::emit(&prep, &program, &rows, &opts) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Writes the test of `hvo show NAME --format litmus`: the level-3 part
/// of the program the explorer runs (the first FEAT_BBM level's kernel;
/// herd7 has no FEAT_BBM levels), for the reader `--workload` names.
fn show_litmus(a: &ShowArgs, p: Protocol) -> ExitCode {
    let direction = if a.restore {
        Direction::Restore
    } else {
        Direction::Hvo
    };
    let features = Features {
        bbm: a.levels.first().copied().unwrap_or_default(),
        hw_af: !a.no_hw_af,
        hw_dbm: a.machine.hw_dbm,
        ..Features::default()
    };
    let (prep, program) = match a
        .setup(p, direction, features)
        .and_then(|s| explored(a, &s))
    {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let opts = seq::LitmusExport {
        name: format!("{}-{}", p.name, direction.name()),
        title: vec![
            format!(
                "{} {}: {} (split {}).",
                p.name,
                direction.name(),
                p.summary,
                p.split.name()
            ),
            format!("Source: {}.", p.source),
            format!("Written by `{}`.", a.command("litmus")),
        ],
    };
    match seq::emit_litmus(&prep, &program, &opts) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Runs `hvo show`: the program one huge page's HVO (and de-HVO) runs,
/// exactly as the explorer runs it.
pub fn show(a: &ShowArgs) -> ExitCode {
    let mut m = a.machine.clone();
    m.protocol = a.name.clone();
    let p = match m.protocol() {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    match a.format.as_str() {
        "text" => {}
        "seq" => return show_seq(a, p),
        "litmus" => return show_litmus(a, p),
        f => {
            return fail(&format!(
                "unknown format `{f}`: expected text, seq or litmus"
            ));
        }
    }
    if m.memory.is_some() {
        return fail(
            "--memory does not apply to `hvo show`: it prints the program the explorer runs, on the explorer's kernel (two huge pages, memory sized for them)",
        );
    }
    let features = Features {
        bbm: m.bbm,
        hw_af: m.hw_af,
        hw_dbm: m.hw_dbm,
        ..Features::default()
    };
    let mut directions = vec![Direction::Hvo];
    if a.restore {
        directions.push(Direction::Restore);
    }
    let mut programs = Vec::new();
    for d in directions {
        match a.setup(p, d, features).and_then(|s| explored(a, &s)) {
            Ok(x) => programs.push(x),
            Err(e) => return fail(&e),
        }
    }
    let geo = programs[0].0.kernel.geo;
    println!(
        "# {}: {} (split {}), {} granule, one {} huge page ({} vmemmap pages), FEAT_BBM {}",
        p.name,
        p.summary,
        p.split.name(),
        geo.granule,
        format_size(geo.huge_size),
        geo.vmemmap_pages(),
        m.bbm
    );
    println!("# source: {}", p.source);
    println!(
        "# the program `hvo verify` explores (and `--format seq` writes){}",
        if a.no_rcu {
            ", without synchronize_rcu"
        } else {
            ""
        }
    );
    for (prep, program) in &programs {
        println!(
            "# {}",
            match prep.setup.direction {
                Direction::Hvo => "HVO",
                Direction::Restore => "de-HVO",
            }
        );
        for (i, ins) in program.instrs.iter().enumerate() {
            println!("{i:4}  {ins}");
        }
        // The rule verdict of this program on this kernel: the explorer's
        // sequential run (its `rules` column), with the first violation
        // of each rule.
        let mut k = prep.kernel.clone();
        if let Err(e) = k.run(program, &mut Regs::default()) {
            return fail(&e.to_string());
        }
        if k.machine.violations().is_empty() {
            println!("# rule verdict: compliant");
        } else {
            println!("# rule verdict:");
            for g in groups(&k) {
                println!("#   {} x{}: {}", g.rule, g.count, g.first);
            }
        }
    }
    ExitCode::SUCCESS
}
