//! Machine files: a bare machine built from `map` and `fill` lines, cases
//! of raw-address steps on any CPU, and the rule checker's verdict.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;
use vmsa::{
    Attributes, BbmLevel, Config, Descriptor, DsbKind, LeafAttrs, Machine, PhysAddr, Tlbi,
    Violation, VirtAddr,
};

use crate::error::RunError;

/// The configuration of a machine file.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// The machine configuration.
    pub config: Config,
    /// Memory size in bytes.
    pub memory: u64,
}

/// A descriptor of a machine file.
#[derive(Clone, Debug, PartialEq)]
pub enum Desc {
    /// 0.
    Invalid,
    /// A block or page (by level) at `pa`.
    Leaf {
        /// The output address.
        pa: u64,
        /// The attributes.
        attrs: LeafAttrs,
    },
    /// A table made by a `table NAME` step.
    Table(String),
    /// A raw value.
    Raw(u64),
}

/// A step's operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `store VA Ln DESC`.
    Store {
        /// The VA.
        va: u64,
        /// The level.
        level: u8,
        /// The value.
        desc: Desc,
    },
    /// `cas VA Ln EXPECTED => DESC`.
    Cas {
        /// The VA.
        va: u64,
        /// The level.
        level: u8,
        /// The value expected.
        expected: Desc,
        /// The new value.
        desc: Desc,
    },
    /// `dsb ish|ishst`.
    Dsb(DsbKind),
    /// `isb`.
    Isb,
    /// `tlbi OP [VA] [asid=N]`.
    Tlbi(Tlbi),
    /// `table NAME split VA Ln [ATTRS]`.
    SplitTable {
        /// The name.
        name: String,
        /// The block's VA.
        va: u64,
        /// The block's level.
        level: u8,
        /// The attributes of the new entries (default: the block's).
        attrs: Option<LeafAttrs>,
    },
    /// `table NAME empty`.
    EmptyTable(String),
    /// `copy DST SRC`.
    Copy {
        /// Destination PA.
        dst: u64,
        /// Source PA.
        src: u64,
    },
    /// `write PA VALUE`.
    Write {
        /// The PA.
        pa: u64,
        /// The value.
        value: u64,
    },
    /// `free PA [order=N]`.
    Free {
        /// The PA.
        pa: u64,
        /// The order.
        order: u8,
    },
    /// `free table NAME`.
    FreeTable(String),
    /// `free table-at VA Ln`.
    FreeTableAt {
        /// The VA.
        va: u64,
        /// The level of the descriptor the table holds.
        level: u8,
    },
}

/// One step: its line, CPU and operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// 1-based line.
    pub line: usize,
    /// The CPU.
    pub cpu: usize,
    /// The operation.
    pub op: Op,
}

/// A set-up line.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// `map VA -> PA size=S level=N ATTRS`.
    Map {
        /// The first VA.
        va: u64,
        /// The first PA.
        pa: u64,
        /// The size.
        size: u64,
        /// The level of the leaves.
        level: u8,
        /// Their attributes.
        attrs: LeafAttrs,
    },
    /// `fill PA [pages=N] value=V`.
    Fill {
        /// The first PA.
        pa: u64,
        /// How many pages.
        pages: u64,
        /// The value of every word.
        value: u64,
    },
}

/// One case of a machine file.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The case's name.
    pub name: String,
    /// Line of the `case` keyword.
    pub line: usize,
    /// The rule codes (`R_WHZWS.oa-writable`) expected, or empty for none.
    pub expect: BTreeSet<String>,
    /// A FEAT_BBM level for this case only.
    pub bbm: Option<BbmLevel>,
    /// The steps.
    pub steps: Vec<Step>,
}

/// A parsed machine file.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineFile {
    /// The file name as given.
    pub file: String,
    /// The configuration.
    pub setup: Setup,
    /// The set-up lines.
    pub init: Vec<Init>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// The FEAT_BBM level it ran at.
    pub bbm: BbmLevel,
    /// The rule codes expected.
    pub expect: BTreeSet<String>,
    /// The violations found.
    pub violations: Vec<Violation>,
    /// The number of table-maintenance operations checked.
    pub steps: u64,
    /// The pairs of level-3 descriptor values for which herd7 would raise
    /// `Warning-BBM-expected` (`vmsa::herd_bbm`; empty: no warning).
    pub herd7_bbm: Vec<vmsa::herd_bbm::Pair>,
}

impl CaseResult {
    /// Returns the distinct rule codes found.
    pub fn found(&self) -> BTreeSet<String> {
        self.violations.iter().map(|v| v.rule.code()).collect()
    }

    /// Tells whether what was found is what was expected.
    pub fn passed(&self) -> bool {
        self.found() == self.expect
    }
}

impl MachineFile {
    /// Runs every case with the rule checker.
    ///
    /// # Errors
    ///
    /// Returns the first step the model refuses (a CPU that does not exist,
    /// an address outside memory, a descriptor that cannot be encoded, an
    /// unknown table name).
    pub fn run(&self) -> Result<Vec<CaseResult>, RunError> {
        self.cases.iter().map(|c| self.run_case(c)).collect()
    }

    fn boot(&self, config: Config) -> Result<Machine, RunError> {
        let err = |line: usize, e: String| RunError {
            file: self.file.clone(),
            line,
            message: e,
        };
        let mut m = Machine::new(config, self.setup.memory).map_err(|e| err(1, e.to_string()))?;
        // Keep the allocator away from the memory the set-up lays out.
        let shift = config.granule.page_shift();
        for i in &self.init {
            let (pa, len) = match *i {
                Init::Map { pa, size, .. } => (pa, size),
                Init::Fill { pa, pages, .. } => (pa, pages << shift),
            };
            m.allocator_mut()
                .claim(pa >> shift, (pa + len).div_ceil(1 << shift));
        }
        for i in &self.init {
            match *i {
                Init::Map {
                    va,
                    pa,
                    size,
                    level,
                    attrs,
                } => m
                    .map(VirtAddr(va), PhysAddr(pa), size, level, attrs)
                    .map_err(|e| err(1, format!("map: {e}")))?,
                Init::Fill { pa, pages, value } => {
                    let ps = config.granule.page_size();
                    for p in 0..pages {
                        for w in 0..ps / 8 {
                            m.mem_mut()
                                .write_u64(PhysAddr(pa + p * ps + w * 8), value)
                                .map_err(|e| err(1, format!("fill: {e}")))?;
                        }
                    }
                }
            }
        }
        m.enable_checker();
        if let Some(c) = m.checker_mut() {
            c.enable_herd_bbm();
        }
        Ok(m)
    }

    fn run_case(&self, case: &Case) -> Result<CaseResult, RunError> {
        let mut config = self.setup.config;
        if let Some(b) = case.bbm {
            config.features.bbm = b;
        }
        let mut m = self.boot(config)?;
        let g = config.granule;
        let mut tables: FxHashMap<String, PhysAddr> = FxHashMap::default();
        // `free table-at VA Ln` names a table of the initial tables.
        let mut initial: FxHashMap<(u64, u8), PhysAddr> = FxHashMap::default();
        for s in &case.steps {
            if let Op::FreeTableAt { va, level } = s.op {
                let pa = m.desc_pa(VirtAddr(va), level).map_err(|e| RunError {
                    file: self.file.clone(),
                    line: s.line,
                    message: format!("no initial L{level} table for {va:#x}: {e}"),
                })?;
                initial.insert((va, level), pa.align_down(g.page_size()));
            }
        }
        for s in &case.steps {
            let err = |e: String| RunError {
                file: self.file.clone(),
                line: s.line,
                message: e,
            };
            let encode = |m: &Machine,
                          tables: &FxHashMap<String, PhysAddr>,
                          level: u8,
                          d: &Desc|
             -> Result<Descriptor, RunError> {
                let _ = m;
                match d {
                    Desc::Invalid => Ok(Descriptor::INVALID),
                    Desc::Raw(v) => Ok(Descriptor(*v)),
                    Desc::Leaf { pa, attrs } => Descriptor::leaf(g, level, PhysAddr(*pa), *attrs)
                        .map_err(|e| err(e.to_string())),
                    Desc::Table(n) => {
                        let t = tables
                            .get(n)
                            .ok_or_else(|| err(format!("no table named {n}")))?;
                        Descriptor::table(g, level, *t).map_err(|e| err(e.to_string()))
                    }
                }
            };
            let cpu = s.cpu;
            match &s.op {
                Op::Store { va, level, desc } => {
                    let pa = m
                        .desc_pa(VirtAddr(*va), *level)
                        .map_err(|e| err(e.to_string()))?;
                    let d = encode(&m, &tables, *level, desc)?;
                    m.store_desc(cpu, pa, d).map_err(|e| err(e.to_string()))?;
                }
                Op::Cas {
                    va,
                    level,
                    expected,
                    desc,
                } => {
                    let pa = m
                        .desc_pa(VirtAddr(*va), *level)
                        .map_err(|e| err(e.to_string()))?;
                    let e = encode(&m, &tables, *level, expected)?;
                    let d = encode(&m, &tables, *level, desc)?;
                    m.cas_desc(cpu, pa, e, d).map_err(|e| err(e.to_string()))?;
                }
                Op::Dsb(k) => m.dsb(cpu, *k).map_err(|e| err(e.to_string()))?,
                Op::Isb => m.isb(cpu).map_err(|e| err(e.to_string()))?,
                Op::Tlbi(t) => m.tlbi(cpu, *t).map_err(|e| err(e.to_string()))?,
                Op::EmptyTable(name) => {
                    let t = m.alloc_table().map_err(|e| err(e.to_string()))?;
                    tables.insert(name.clone(), t);
                }
                Op::SplitTable {
                    name,
                    va,
                    level,
                    attrs,
                } => {
                    let pa = m
                        .desc_pa(VirtAddr(*va), *level)
                        .map_err(|e| err(e.to_string()))?;
                    let d = m.read_desc(pa).map_err(|e| err(e.to_string()))?;
                    let leaf = d
                        .as_leaf(g, *level)
                        .ok_or_else(|| err(format!("no block at L{level} for {va:#x} to split")))?;
                    if *level >= 3 {
                        return Err(err("cannot split a page".into()));
                    }
                    let t = m.alloc_table().map_err(|e| err(e.to_string()))?;
                    let sub = level + 1;
                    let mut a = attrs.unwrap_or(leaf.attrs);
                    a.flags.remove(Attributes::NT);
                    for i in 0..g.entries_per_table() as u64 {
                        let oa = PhysAddr(leaf.oa.0 + i * g.level_size(sub));
                        let sd = Descriptor::leaf(g, sub, oa, a).map_err(|e| err(e.to_string()))?;
                        m.mem_mut()
                            .write_u64(t.add(i * 8), sd.0)
                            .map_err(|e| err(e.to_string()))?;
                    }
                    tables.insert(name.clone(), t);
                }
                Op::Copy { dst, src } => m
                    .copy_page(PhysAddr(*dst), PhysAddr(*src))
                    .map_err(|e| err(e.to_string()))?,
                Op::Write { pa, value } => m
                    .mem_mut()
                    .write_u64(PhysAddr(*pa), *value)
                    .map_err(|e| err(e.to_string()))?,
                Op::Free { pa, order } => m
                    .free_pages(cpu, PhysAddr(*pa), *order)
                    .map_err(|e| err(e.to_string()))?,
                Op::FreeTableAt { va, level } => {
                    let t = *initial
                        .get(&(*va, *level))
                        .ok_or_else(|| err(format!("no initial L{level} table for {va:#x}")))?;
                    m.free_pages(cpu, t, 0).map_err(|e| err(e.to_string()))?;
                }
                Op::FreeTable(name) => {
                    let t = *tables
                        .get(name)
                        .ok_or_else(|| err(format!("no table named {name}")))?;
                    m.free_pages(cpu, t, 0).map_err(|e| err(e.to_string()))?;
                }
            }
        }
        Ok(CaseResult {
            name: case.name.clone(),
            bbm: config.features.bbm,
            expect: case.expect.clone(),
            violations: m.violations().to_vec(),
            steps: m.checker().map_or(0, |c| c.steps()),
            herd7_bbm: m
                .checker()
                .and_then(|c| c.herd_bbm())
                .map(|h| h.pairs().to_vec())
                .unwrap_or_default(),
        })
    }
}
