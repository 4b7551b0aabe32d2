//! The `.seq` text format: table-update sequences with expected rule
//! verdicts, and their runner on the VMSA model.
//!
//! A file has a header (configuration, initial mappings, page contents)
//! and one or more cases; each case runs on a fresh machine built from the
//! header, with the rule checker watching, and states the set of rule
//! clauses it expects to be reported (`expect none` for a compliant one).
//!
//! ```text
//! # The generic Linux tail remap, and the break-before-make twin.
//! config granule=4k bbm=0 cpus=2 memory=64M
//! map 0xffff800000000000 -> 0x2000000 size=32K level=3 rw
//! fill 0x2000000 pages=8 value=1
//!
//! case generic
//! expect R_WHZWS.oa-writable R_WHZWS.oa-contents
//! cpu0 store 0xffff800000001000 L3 page 0x2000000 ro
//! cpu0 dsb ishst
//! cpu0 tlbi vaale1is 0xffff800000001000
//! cpu0 dsb ish
//! ```
//!
//! Steps (`cpuN` then):
//! - `store VA Ln DESC` / `cas VA Ln EXPECTED => DESC`: write the descriptor
//!   that translates VA at level n; DESC is `invalid`, `page PA ATTRS`,
//!   `block PA ATTRS`, `table NAME` or `raw 0xVALUE`;
//! - `dsb ish`, `dsb ishst`, `isb`, `tlbi OP [VA] [asid=N]`;
//! - `table NAME split VA Ln [ATTRS]`: allocate a table that maps the same
//!   memory as the block at VA with entries one level down (not yet live);
//! - `table NAME empty`: allocate a zeroed table;
//! - `copy DST SRC`: copy a page; `write PA VALUE`: write a word;
//! - `free PA order=N`, `free table NAME`, `free table-at VA Ln` (the
//!   initial table that holds VA's level-n descriptor).
//!
//! ATTRS are `rw` or `ro`, and any of `noaf`, `ng`, `nt`, `dbm`, `cont`,
//! `pxn`, `uxn`, `attr=N`, `sh=is|os|ns`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use rustc_hash::FxHashMap;
use vmsa::granule::parse_size;
use vmsa::{
    Attributes, BbmLevel, Config, Descriptor, DsbKind, Granule, LeafAttrs, Machine, PhysAddr,
    Shareability, Tlbi, TlbiKind, Violation, VirtAddr,
};

/// An error in a `.seq` file, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}\n  {text}\n  {caret}")]
pub struct SeqError {
    /// The file name as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What was wrong and what was expected.
    pub message: String,
    /// The source line.
    pub text: String,
    /// A caret line under the offending token.
    pub caret: String,
}

/// The configuration line.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// The machine configuration.
    pub config: Config,
    /// Memory size in bytes.
    pub memory: u64,
}

#[derive(Clone, Debug, PartialEq)]
enum Desc {
    Invalid,
    Leaf { pa: u64, attrs: LeafAttrs },
    Table(String),
    Raw(u64),
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Store {
        va: u64,
        level: u8,
        desc: Desc,
    },
    Cas {
        va: u64,
        level: u8,
        expected: Desc,
        desc: Desc,
    },
    Dsb(DsbKind),
    Isb,
    Tlbi(Tlbi),
    SplitTable {
        name: String,
        va: u64,
        level: u8,
        attrs: Option<LeafAttrs>,
    },
    EmptyTable(String),
    Copy {
        dst: u64,
        src: u64,
    },
    Write {
        pa: u64,
        value: u64,
    },
    Free {
        pa: u64,
        order: u8,
    },
    FreeTable(String),
    FreeTableAt {
        va: u64,
        level: u8,
    },
}

#[derive(Clone, Debug, PartialEq)]
struct Step {
    line: usize,
    cpu: usize,
    op: Op,
}

#[derive(Clone, Debug, PartialEq)]
enum Init {
    Map {
        va: u64,
        pa: u64,
        size: u64,
        level: u8,
        attrs: LeafAttrs,
    },
    Fill {
        pa: u64,
        pages: u64,
        value: u64,
    },
}

/// One case: a name, its expected rule clauses and its steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The case's name.
    pub name: String,
    /// Line of the `case` keyword.
    pub line: usize,
    /// The rule codes (`R_WHZWS.oa-writable`) expected, or empty for none.
    pub expect: BTreeSet<String>,
    bbm: Option<BbmLevel>,
    steps: Vec<Step>,
}

/// A parsed `.seq` file.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqFile {
    /// The file name as given.
    pub file: String,
    /// The configuration.
    pub setup: Setup,
    init: Vec<Init>,
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

struct Cursor<'a> {
    file: &'a str,
    line_no: usize,
    text: &'a str,
    toks: Vec<(usize, &'a str)>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(file: &'a str, line_no: usize, text: &'a str) -> Self {
        let code = text.split('#').next().unwrap_or("");
        let mut toks = Vec::new();
        let mut start = None;
        for (i, c) in code.char_indices() {
            if c.is_whitespace() {
                if let Some(s) = start.take() {
                    toks.push((s, &code[s..i]));
                }
            } else if start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            toks.push((s, &code[s..]));
        }
        Cursor {
            file,
            line_no,
            text,
            toks,
            pos: 0,
        }
    }

    fn err_at(&self, col0: usize, width: usize, message: String) -> SeqError {
        SeqError {
            file: self.file.to_string(),
            line: self.line_no,
            col: col0 + 1,
            message,
            text: self.text.to_string(),
            caret: format!("{}{}", " ".repeat(col0), "^".repeat(width.max(1))),
        }
    }

    fn err(&self, expected: &str) -> SeqError {
        match self.toks.get(self.pos) {
            Some(&(c, t)) => self.err_at(c, t.len(), format!("expected {expected}, found `{t}`")),
            None => self.err_at(
                self.text.trim_end().len(),
                1,
                format!("expected {expected}, found end of line"),
            ),
        }
    }

    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.pos).map(|&(_, t)| t)
    }

    fn next(&mut self, expected: &str) -> Result<&'a str, SeqError> {
        let t = self.peek().ok_or_else(|| self.err(expected))?;
        self.pos += 1;
        Ok(t)
    }

    fn keyword(&mut self, kw: &str) -> Result<(), SeqError> {
        if self.peek() == Some(kw) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("`{kw}`")))
        }
    }

    fn number(&mut self, what: &str) -> Result<u64, SeqError> {
        let t = self.peek().ok_or_else(|| self.err(what))?;
        let v = parse_num(t).ok_or_else(|| self.err(what))?;
        self.pos += 1;
        Ok(v)
    }

    fn level(&mut self) -> Result<u8, SeqError> {
        let t = self.peek().ok_or_else(|| self.err("a level L0..L3"))?;
        match t
            .strip_prefix('L')
            .or_else(|| t.strip_prefix('l'))
            .and_then(|n| n.parse::<u8>().ok())
        {
            Some(n) if n <= 3 => {
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.err("a level L0..L3")),
        }
    }

    fn end(&self) -> Result<(), SeqError> {
        if self.pos < self.toks.len() {
            return Err(self.err("end of line"));
        }
        Ok(())
    }

    /// Parses `key=value` options, calling `f` for each; stops at a token
    /// without `=` that `f` does not accept as a flag.
    fn attrs(&mut self) -> Result<LeafAttrs, SeqError> {
        let mut a = LeafAttrs {
            flags: Attributes::AF,
            sh: Shareability::Inner,
            ..LeafAttrs::default()
        };
        while let Some(t) = self.peek() {
            let (k, v) = t.split_once('=').unwrap_or((t, ""));
            match (k, v) {
                ("rw", "") => a.flags.remove(Attributes::READ_ONLY),
                ("ro", "") => a.flags.insert(Attributes::READ_ONLY),
                ("noaf", "") => a.flags.remove(Attributes::AF),
                ("ng", "") => a.flags.insert(Attributes::NG),
                ("nt", "") => a.flags.insert(Attributes::NT),
                ("dbm", "") => a.flags.insert(Attributes::DBM),
                ("cont", "") => a.flags.insert(Attributes::CONTIGUOUS),
                ("pxn", "") => a.flags.insert(Attributes::PXN),
                ("uxn", "") => a.flags.insert(Attributes::UXN),
                ("attr", n) => match n.parse::<u8>() {
                    Ok(n) if n < 8 => a.attr_indx = n,
                    _ => return Err(self.err("attr=0..7")),
                },
                ("sh", s) => {
                    a.sh = match s {
                        "is" => Shareability::Inner,
                        "os" => Shareability::Outer,
                        "ns" => Shareability::NonShareable,
                        _ => return Err(self.err("sh=is, sh=os or sh=ns")),
                    }
                }
                _ => break,
            }
            self.pos += 1;
        }
        Ok(a)
    }

    fn desc(&mut self) -> Result<Desc, SeqError> {
        match self.next("a descriptor: invalid, page, block, table or raw")? {
            "invalid" => Ok(Desc::Invalid),
            "page" | "block" => {
                let pa = self.number("an output address")?;
                let attrs = self.attrs()?;
                Ok(Desc::Leaf { pa, attrs })
            }
            "table" => Ok(Desc::Table(self.next("a table name")?.to_string())),
            "raw" => Ok(Desc::Raw(self.number("a 64-bit descriptor value")?)),
            _ => {
                self.pos -= 1;
                Err(self.err("a descriptor: invalid, page, block, table or raw"))
            }
        }
    }
}

fn parse_num(t: &str) -> Option<u64> {
    let t = t.replace('_', "");
    if let Some(h) = t.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else {
        t.parse().ok()
    }
}

/// Parses a `.seq` file's text; `file` names it in errors.
///
/// # Errors
///
/// Returns the first [`SeqError`]: file, line, column, the source line and
/// what was expected.
pub fn parse(file: &str, text: &str) -> Result<SeqFile, SeqError> {
    let mut setup = None;
    let mut init = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut c = Cursor::new(file, i + 1, line);
        let Some(head) = c.peek() else { continue };
        c.pos += 1;
        match head {
            "config" => {
                if setup.is_some() || !cases.is_empty() {
                    c.pos -= 1;
                    return Err(c.err("one `config` line before the first case"));
                }
                setup = Some(parse_config(&mut c)?);
            }
            "map" | "fill" if !cases.is_empty() => {
                c.pos -= 1;
                return Err(c.err("a step (`cpuN ...`), `expect` or `case`: set-up lines go before the first case"));
            }
            "map" => {
                let va = c.number("a virtual address")?;
                c.keyword("->")?;
                let pa = c.number("a physical address")?;
                let mut size = None;
                let mut level = None;
                while let Some(t) = c.peek() {
                    if let Some(s) = t.strip_prefix("size=") {
                        size = Some(parse_size(s).map_err(|_| c.err("size=SIZE (e.g. 2M)"))?);
                    } else if let Some(l) = t.strip_prefix("level=") {
                        level = Some(
                            l.parse::<u8>()
                                .ok()
                                .filter(|&l| l <= 3)
                                .ok_or_else(|| c.err("level=0..3"))?,
                        );
                    } else {
                        break;
                    }
                    c.pos += 1;
                }
                let attrs = c.attrs()?;
                c.end()?;
                init.push(Init::Map {
                    va,
                    pa,
                    size: size.ok_or_else(|| c.err("size=SIZE"))?,
                    level: level.ok_or_else(|| c.err("level=N"))?,
                    attrs,
                });
            }
            "fill" => {
                let pa = c.number("a physical address")?;
                let pages = match c.peek().and_then(|t| t.strip_prefix("pages=")) {
                    Some(n) => {
                        let v = parse_num(n).ok_or_else(|| c.err("pages=N"))?;
                        c.pos += 1;
                        v
                    }
                    None => 1,
                };
                let value = match c.peek().and_then(|t| t.strip_prefix("value=")) {
                    Some(n) => {
                        let v = parse_num(n).ok_or_else(|| c.err("value=N"))?;
                        c.pos += 1;
                        v
                    }
                    None => return Err(c.err("value=N")),
                };
                c.end()?;
                init.push(Init::Fill { pa, pages, value });
            }
            "case" => {
                let name = c.next("a case name")?.to_string();
                let mut bbm = None;
                if let Some(t) = c.peek().and_then(|t| t.strip_prefix("bbm=")) {
                    bbm = Some(
                        t.parse::<BbmLevel>()
                            .map_err(|_| c.err("bbm=0, 1, 2 or 2-noabort"))?,
                    );
                    c.pos += 1;
                }
                c.end()?;
                cases.push(Case {
                    name,
                    line: i + 1,
                    expect: BTreeSet::new(),
                    bbm,
                    steps: Vec::new(),
                });
            }
            "expect" => {
                let Some(case) = cases.last_mut() else {
                    c.pos -= 1;
                    return Err(c.err("`case NAME` before `expect`"));
                };
                let mut any = false;
                while let Some(t) = c.peek() {
                    any = true;
                    if t != "none" {
                        let known = vmsa::Rule::ALL.iter().any(|r| r.code() == t);
                        if !known {
                            return Err(c.err("a rule code such as R_WHZWS.oa-writable (see `hvo rules`) or `none`"));
                        }
                        case.expect.insert(t.to_string());
                    }
                    c.pos += 1;
                }
                if !any {
                    return Err(c.err("rule codes or `none`"));
                }
            }
            cpu if cpu.starts_with("cpu") => {
                let n: usize = cpu[3..].parse().map_err(|_| {
                    c.pos -= 1;
                    c.err("cpuN")
                })?;
                let op = parse_op(&mut c)?;
                c.end()?;
                let Some(case) = cases.last_mut() else {
                    return Err(c.err_at(
                        0,
                        cpu.len(),
                        "expected `case NAME` before the first step".into(),
                    ));
                };
                case.steps.push(Step {
                    line: i + 1,
                    cpu: n,
                    op,
                });
            }
            _ => {
                c.pos -= 1;
                return Err(c.err("config, map, fill, case, expect or cpuN"));
            }
        }
    }
    let setup = setup.ok_or_else(|| SeqError {
        file: file.into(),
        line: 1,
        col: 1,
        message: "expected a `config` line".into(),
        text: text.lines().next().unwrap_or("").into(),
        caret: "^".into(),
    })?;
    if cases.is_empty() {
        return Err(SeqError {
            file: file.into(),
            line: text.lines().count().max(1),
            col: 1,
            message: "expected at least one `case`".into(),
            text: String::new(),
            caret: "^".into(),
        });
    }
    Ok(SeqFile {
        file: file.into(),
        setup,
        init,
        cases,
    })
}

fn parse_config(c: &mut Cursor<'_>) -> Result<Setup, SeqError> {
    let mut config = Config::new(Granule::K4, 2);
    let mut memory = 64 << 20;
    while let Some(t) = c.peek() {
        let Some((k, v)) = t.split_once('=') else {
            return Err(c.err("key=value (granule, bbm, cpus, memory, hw-af, hw-dbm)"));
        };
        let onoff = |v: &str| match v {
            "on" | "1" | "true" => Some(true),
            "off" | "0" | "false" => Some(false),
            _ => None,
        };
        match k {
            "granule" => config.granule = v.parse().map_err(|_| c.err("granule=4k, 16k or 64k"))?,
            "bbm" => {
                config.features.bbm = v.parse().map_err(|_| c.err("bbm=0, 1, 2 or 2-noabort"))?
            }
            "cpus" => {
                config.ncpus = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| c.err("cpus=1..64"))?
            }
            "memory" => memory = parse_size(v).map_err(|_| c.err("memory=SIZE (e.g. 64M)"))?,
            "hw-af" => config.features.hw_af = onoff(v).ok_or_else(|| c.err("hw-af=on or off"))?,
            "hw-dbm" => {
                config.features.hw_dbm = onoff(v).ok_or_else(|| c.err("hw-dbm=on or off"))?
            }
            _ => return Err(c.err("granule, bbm, cpus, memory, hw-af or hw-dbm")),
        }
        c.pos += 1;
    }
    Ok(Setup { config, memory })
}

fn parse_op(c: &mut Cursor<'_>) -> Result<Op, SeqError> {
    let verb = c.next("an operation: store, cas, dsb, isb, tlbi, table, copy, write, free")?;
    Ok(match verb {
        "store" => {
            let va = c.number("a virtual address")?;
            let level = c.level()?;
            let desc = c.desc()?;
            Op::Store { va, level, desc }
        }
        "cas" => {
            let va = c.number("a virtual address")?;
            let level = c.level()?;
            let expected = c.desc()?;
            c.keyword("=>")?;
            let desc = c.desc()?;
            Op::Cas {
                va,
                level,
                expected,
                desc,
            }
        }
        "dsb" => {
            let t = c.next("ish or ishst")?;
            Op::Dsb(t.parse().map_err(|_| {
                c.pos -= 1;
                c.err("ish or ishst")
            })?)
        }
        "isb" => Op::Isb,
        "tlbi" => {
            let t = c.next("a TLBI operation")?;
            let kind: TlbiKind = t.parse().map_err(|_| {
                c.pos -= 1;
                c.err("vae1is, vale1is, vaae1is, vaale1is or vmalle1is")
            })?;
            let va = if kind.by_va() {
                c.number("the TLBI's virtual address")?
            } else {
                0
            };
            let mut asid = 0;
            if let Some(a) = c.peek().and_then(|t| t.strip_prefix("asid=")) {
                asid = a.parse().map_err(|_| c.err("asid=0..65535"))?;
                c.pos += 1;
            }
            Op::Tlbi(Tlbi {
                kind,
                va: VirtAddr(va),
                asid,
            })
        }
        "table" => {
            let name = c.next("a table name")?.to_string();
            match c.next("split or empty")? {
                "split" => {
                    let va = c.number("the VA of the block to split")?;
                    let level = c.level()?;
                    let attrs = if c.peek().is_some() {
                        Some(c.attrs()?)
                    } else {
                        None
                    };
                    Op::SplitTable {
                        name,
                        va,
                        level,
                        attrs,
                    }
                }
                "empty" => Op::EmptyTable(name),
                _ => {
                    c.pos -= 1;
                    return Err(c.err("split or empty"));
                }
            }
        }
        "copy" => Op::Copy {
            dst: c.number("a destination physical address")?,
            src: c.number("a source physical address")?,
        },
        "write" => Op::Write {
            pa: c.number("a physical address")?,
            value: c.number("a value")?,
        },
        "free" => {
            if c.peek() == Some("table") {
                c.pos += 1;
                Op::FreeTable(c.next("a table name")?.to_string())
            } else if c.peek() == Some("table-at") {
                c.pos += 1;
                let va = c.number("a virtual address")?;
                let level = c.level()?;
                Op::FreeTableAt { va, level }
            } else {
                let pa = c.number("a physical address or `table NAME`")?;
                let order = match c.peek().and_then(|t| t.strip_prefix("order=")) {
                    Some(o) => {
                        let v = o
                            .parse()
                            .ok()
                            .filter(|&o: &u8| o < 32)
                            .ok_or_else(|| c.err("order=N"))?;
                        c.pos += 1;
                        v
                    }
                    None => 0,
                };
                Op::Free { pa, order }
            }
        }
        _ => {
            c.pos -= 1;
            return Err(c.err("an operation: store, cas, dsb, isb, tlbi, table, copy, write, free"));
        }
    })
}

/// Reads and parses a `.seq` file.
///
/// # Errors
///
/// Returns a message naming the file if it cannot be read, or the parse error.
pub fn load(path: &Path) -> Result<SeqFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&path.display().to_string(), &text).map_err(|e| e.to_string())
}

/// An error while running a case (a step the model refuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    /// The file.
    pub file: String,
    /// The line of the step.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for RunError {}

impl SeqFile {
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
                    let t = initial[&(*va, *level)];
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
        })
    }
}
