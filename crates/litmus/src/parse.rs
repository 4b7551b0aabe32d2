//! The reader of herd7 AArch64 litmus files: a lexer with positions and a
//! recursive-descent parser for the header, the initial state, the thread
//! columns and the final condition.

use crate::LitmusError;
use crate::ast::*;

mod cond;
mod init;
mod instr;
mod lex;
mod values;
use cond::*;
use init::*;
use instr::*;
use lex::*;
use values::*;

/// Parses the text of a litmus file.
///
/// # Errors
///
/// Returns [`LitmusError::Syntax`] (file, line, column, what was expected)
/// for malformed input and [`LitmusError::Unsupported`] naming the
/// construct for valid herd7 input the model does not handle.
pub fn parse(file: &str, src: &str) -> Result<Test, LitmusError> {
    let text = blank_comments(src);
    let lines: Vec<&str> = text.split('\n').collect();
    let syntax = |line: usize, col: usize, msg: &str| LitmusError::Syntax {
        file: file.into(),
        line,
        col,
        msg: msg.into(),
    };
    let unsupported = |line: usize, col: usize, what: String| LitmusError::Unsupported {
        file: file.into(),
        line,
        col,
        what,
    };
    // Header line: `AArch64 NAME`.
    let first = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .ok_or_else(|| syntax(1, 1, "empty file: expected `AArch64 NAME`"))?;
    let mut words = lines[first].split_whitespace();
    let arch = words.next().unwrap_or("");
    if arch != "AArch64" {
        return Err(unsupported(first + 1, 1, format!("architecture `{arch}`")));
    }
    let name = words
        .next()
        .ok_or_else(|| {
            syntax(
                first + 1,
                arch.len() + 1,
                "expected the test's name after `AArch64`",
            )
        })?
        .to_string();
    let mut t = Test {
        name,
        variants: Vec::new(),
        fault_mode: FaultMode::default(),
        tthm: Tthm::default(),
        el0: 0,
        syms: Vec::new(),
        init_mem: Vec::new(),
        arrays: Vec::new(),
        init_regs: Vec::new(),
        threads: Vec::new(),
        locations: Vec::new(),
        quant: Quant::Exists,
        prop: Prop::True,
    };
    // Header lines up to `{`.
    let mut li = first + 1;
    let brace_line = loop {
        let Some(l) = lines.get(li) else {
            return Err(syntax(li + 1, 1, "expected `{` opening the initial state"));
        };
        if l.trim_start().starts_with('{') {
            break li;
        }
        if let Some((k, v)) = l.split_once('=') {
            let k = k.trim();
            let v = v.trim();
            // herd7 matches header keys case-insensitively (herdtools7
            // `lib/miscParser.ml`, `key_match`) and splits the variant
            // tags at commas and blanks (`lib/lexSplit.mll`,
            // `strings_spaces`).
            match k.to_ascii_lowercase().as_str() {
                "variant" => {
                    for w in v.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
                        if let Some(m) = FaultMode::parse_tag(w) {
                            t.fault_mode = m;
                        }
                        t.variants.push(w.to_string());
                    }
                }
                "tthm" => {
                    for w in v.split_whitespace() {
                        let (who, what) = match w.split_once(':') {
                            Some((p, f)) => {
                                let n: u32 = p
                                    .strip_prefix('P')
                                    .and_then(|n| n.parse().ok())
                                    .filter(|n| *n < 64)
                                    .ok_or_else(|| {
                                        syntax(li + 1, 1, "expected Pn:HA or Pn:HD in TTHM")
                                    })?;
                                (1u64 << n, f)
                            }
                            None => (u64::MAX, w),
                        };
                        match what {
                            "HA" => t.tthm.ha |= who,
                            "HD" => {
                                t.tthm.hd |= who;
                                // FEAT_HAFDBS: dirty-state management implies
                                // hardware AF (D8.4.1; herd7's HD implies HA).
                                t.tthm.ha |= who;
                            }
                            _ => return Err(unsupported(li + 1, 1, format!("TTHM `{what}`"))),
                        }
                    }
                }
                "el0" => {
                    for w in v.split([',', ' ', ';']).filter(|w| !w.is_empty()) {
                        let n: u32 = w
                            .strip_prefix('P')
                            .and_then(|n| n.parse().ok())
                            .filter(|n| *n < 64)
                            .ok_or_else(|| syntax(li + 1, 1, "expected Pn in EL0"))?;
                        t.el0 |= 1 << n;
                    }
                }
                _ => {}
            }
        }
        li += 1;
    };
    // Initial state: from `{` to the matching `}`.
    let open_col = lines[brace_line].find('{').unwrap_or(0);
    let mut init_text = String::new();
    let mut close: Option<(usize, usize)> = None;
    // Braces nest: an array's values are in braces (`int x[3]={0,0,0};`).
    let mut depth = 0usize;
    'outer: for (j, l) in lines.iter().enumerate().skip(brace_line) {
        let start = if j == brace_line { open_col + 1 } else { 0 };
        let s = l.get(start..).unwrap_or("");
        for (c, ch) in s.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                '}' => {
                    init_text.push_str(&s[..c]);
                    close = Some((j, start + c));
                    break 'outer;
                }
                _ => {}
            }
        }
        init_text.push_str(s);
        init_text.push('\n');
    }
    let Some((close_line, close_col)) = close else {
        return Err(syntax(
            brace_line + 1,
            open_col + 1,
            "no `}` closing the initial state",
        ));
    };
    let mut syms = Syms::default();
    let toks = lex(file, &init_text, brace_line + 1, open_col + 2)?;
    let mut p = P {
        file,
        toks,
        pos: 0,
        end: (close_line + 1, close_col + 1),
    };
    parse_init(&mut p, &mut syms, &mut t)?;

    // Thread columns: lines after `}` up to the condition.
    let rest_first = close_line;
    let after_brace = lines[close_line].get(close_col + 1..).unwrap_or("");
    let mut code_lines: Vec<(usize, usize, String)> = Vec::new();
    if !after_brace.trim().is_empty() {
        code_lines.push((close_line, close_col + 1, after_brace.to_string()));
    }
    let mut cond_start = None;
    for (j, l) in lines.iter().enumerate().skip(rest_first + 1) {
        let tr = l.trim_start();
        let kw = tr
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '~')
            .next()
            .unwrap_or("");
        if ["exists", "~exists", "forall", "locations", "filter", "~"].contains(&kw)
            || tr.starts_with('~')
        {
            cond_start = Some(j);
            break;
        }
        code_lines.push((j, 0, l.to_string()));
    }
    let Some(cond_start) = cond_start else {
        return Err(syntax(
            lines.len(),
            1,
            "expected the final condition (exists, ~exists or forall)",
        ));
    };
    let code_lines: Vec<_> = code_lines
        .into_iter()
        .filter(|(_, _, l)| !l.trim().is_empty())
        .collect();
    let Some(((hl, hc, header), rows)) = code_lines.split_first() else {
        return Err(syntax(
            rest_first + 2,
            1,
            "expected the thread header `P0 | P1 ;`",
        ));
    };
    // Column header: P0 | P1 | P1.F ;
    let mut cols: Vec<(usize, bool)> = Vec::new();
    let mut col = *hc;
    for cell in header.trim_end().trim_end_matches(';').split('|') {
        let c = cell.trim();
        let (n, handler) = match c.strip_suffix(".F") {
            Some(n) => (n, true),
            None => (c, false),
        };
        let id: usize = n
            .strip_prefix('P')
            .and_then(|n| n.parse().ok())
            .filter(|n| *n < 64)
            .ok_or_else(|| {
                syntax(
                    hl + 1,
                    col + 1,
                    &format!("expected a thread name Pn, found `{c}`"),
                )
            })?;
        cols.push((id, handler));
        col += cell.len() + 1;
    }
    let nthreads = cols.iter().map(|c| c.0 + 1).max().unwrap_or(0);
    // Gather cells per column: (line, col, text).
    let mut cells: Vec<Vec<(usize, usize, String)>> = vec![Vec::new(); cols.len()];
    for (ln, c0, l) in rows {
        let body = l.trim_end();
        let body = body.strip_suffix(';').unwrap_or(body);
        let mut c = *c0;
        for (k, cell) in body.split('|').enumerate() {
            if k >= cols.len() {
                if cell.trim().is_empty() {
                    continue;
                }
                return Err(syntax(ln + 1, c + 1, "more columns than threads"));
            }
            let lead = cell.len() - cell.trim_start().len();
            let txt = cell.trim().trim_end_matches(';').trim().to_string();
            cells[k].push((*ln, c + lead, txt));
            c += cell.len() + 1;
        }
    }
    // First pass: labels (instruction index per column, handler after main).
    let mut threads: Vec<Thread> = vec![Thread::default(); nthreads];
    let split_label = |s: &str| -> Option<(String, String)> {
        let (l, r) = s.split_once(':')?;
        let l = l.trim();
        (!l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !l.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| (l.to_string(), r.trim().to_string()))
    };
    let mut main_len = vec![0usize; nthreads];
    for (k, (tid, handler)) in cols.iter().enumerate() {
        if !handler {
            let mut n = 0;
            for (_, _, txt) in &cells[k] {
                let mut s = txt.clone();
                while let Some((_, r)) = split_label(&s) {
                    s = r;
                }
                if !s.is_empty() {
                    n += 1;
                }
            }
            main_len[*tid] = n;
        }
    }
    for (k, (tid, handler)) in cols.iter().enumerate() {
        let base = if *handler { main_len[*tid] + 1 } else { 0 };
        let mut n = base;
        for (_, _, txt) in &cells[k] {
            let mut s = txt.clone();
            while let Some((l, r)) = split_label(&s) {
                let idx = u16::try_from(n).map_err(|_| syntax(1, 1, "thread too long"))?;
                threads[*tid].labels.push((l, idx));
                s = r;
            }
            if !s.is_empty() {
                n += 1;
            }
        }
    }
    // Second pass: instructions.
    for (k, (tid, handler)) in cols.iter().enumerate() {
        let th = threads[*tid].clone();
        let lab = |l: &str| th.labels.iter().find(|(n, _)| n == l).map(|x| x.1);
        let mut code = Vec::new();
        let mut texts = Vec::new();
        for (ln, c, txt) in &cells[k] {
            let mut s = txt.clone();
            while let Some((_, r)) = split_label(&s) {
                s = r;
            }
            if s.is_empty() {
                continue;
            }
            let off = txt.len() - s.len();
            let toks = lex(file, &s, ln + 1, c + off + 1)?;
            let mut p = P {
                file,
                toks,
                pos: 0,
                end: (ln + 1, c + txt.len() + 1),
            };
            code.push(parse_instr(&mut p, &lab)?);
            texts.push(s);
        }
        let thr = &mut threads[*tid];
        if *handler {
            if thr.code.is_empty() {
                thr.code.push(Instr::Halt);
                thr.text.push(String::new());
            }
            thr.handler = Some(u16::try_from(thr.code.len()).unwrap_or(u16::MAX));
        }
        thr.code.extend(code);
        thr.text.extend(texts);
        thr.code.push(Instr::Halt);
        thr.text.push(String::new());
    }
    t.threads = threads;

    // The condition: `locations [...]`, then the quantifier and proposition.
    let mut cond_text = String::new();
    for l in &lines[cond_start..] {
        cond_text.push_str(l);
        cond_text.push('\n');
    }
    let toks = lex(file, &cond_text, cond_start + 1, 1)?;
    let mut p = P {
        file,
        toks,
        pos: 0,
        end: (lines.len(), 1),
    };
    let threads_ref = t.threads.clone();
    let labels = move |s: &str| -> Option<Val> {
        let (th, l) = s.split_once(':')?;
        let tid: u8 = th.strip_prefix('P')?.parse().ok()?;
        let pc = threads_ref
            .get(usize::from(tid))?
            .labels
            .iter()
            .find(|(n, _)| n == l)?
            .1;
        Some(Val::Label(tid, pc))
    };
    loop {
        match p.peek() {
            Some(Tok::Ident(s)) if s == "locations" => {
                p.pos += 1;
                p.expect("[")?;
                while !p.eat("]") {
                    if p.done() {
                        return Err(p.err("expected `]` closing locations"));
                    }
                    if p.eat(";") {
                        continue;
                    }
                    let o = if let Some((th, r)) = thread_reg(&mut p)? {
                        Obs::Reg(th, r)
                    } else if matches!(p.peek(), Some(Tok::Ident(s)) if s == "fault" || s == "Fault")
                    {
                        p.pos += 1;
                        fault_atom(&mut p, &mut syms, &t)?
                    } else {
                        Obs::Mem(location(&mut p, &mut syms)?)
                    };
                    t.locations.push(o);
                }
            }
            Some(Tok::Ident(s)) if s == "filter" => {
                return Err(p.unsupported("filter"));
            }
            _ => break,
        }
    }
    // `locations [...]` alone is a complete condition: herd7 then takes
    // `forall (true)` (herdtools7 `lib/stateParser.mly`, rule `constr`,
    // its empty case: `ConstrGen.constr_true`) and prints the states.
    if p.done() && !t.locations.is_empty() {
        t.quant = Quant::Forall;
        t.prop = Prop::True;
        t.syms = syms.0;
        return check_threads(file, t, brace_line);
    }
    t.quant = if p.eat("~") {
        match p.ident()?.as_str() {
            "exists" => Quant::NotExists,
            other => return Err(p.err(format!("expected `exists` after `~`, found `{other}`"))),
        }
    } else {
        match p.peek() {
            Some(Tok::Ident(s)) if s == "exists" => {
                p.pos += 1;
                Quant::Exists
            }
            Some(Tok::Ident(s)) if s == "forall" => {
                p.pos += 1;
                Quant::Forall
            }
            _ => {
                return Err(p.err(format!(
                    "expected exists, ~exists or forall, found {}",
                    p.describe()
                )));
            }
        }
    };
    t.prop = prop(&mut p, &mut syms, &t, &labels)?;
    if !p.done() {
        return Err(p.err(format!(
            "unexpected {} after the final condition",
            p.describe()
        )));
    }
    t.syms = syms.0;
    check_threads(file, t, brace_line)
}

/// Checks that every initial register belongs to a thread of the test.
fn check_threads(file: &str, t: Test, brace_line: usize) -> Result<Test, LitmusError> {
    for (th, _, _) in &t.init_regs {
        if usize::from(*th) >= t.threads.len() {
            return Err(LitmusError::Syntax {
                file: file.into(),
                line: brace_line + 1,
                col: 1,
                msg: format!("register of thread {th}, which has no column"),
            });
        }
    }
    Ok(t)
}
