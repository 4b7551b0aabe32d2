//! Expressions and operands: arithmetic on numbers, `let` names, `head`,
//! `next`, `vmemmap[]`, `pfn`, `page-of` and registers; page arguments;
//! a kernel step's descriptor; allocation orders; TLBI and DSB kinds.

use mm::Perm;
use vmsa::{DsbKind, TlbiKind, TlbiScope};

use crate::ast::{Expr, ExprKind, KDesc, PageArg, PageRef};

use super::{Parser, R, number};

impl<'s> Parser<'s> {
    // Expressions: sum := product ('+' product)*; product := atom ('*' atom)*;
    // atom := NUMBER | head | next | vmemmap '[' sum ']' | '(' sum ')'.
    pub(super) fn expr(&mut self, what: &str) -> R<Expr> {
        let mut e = self.product(what)?;
        while self.eat_punct("+") {
            let r = self.product(what)?;
            let span = e.span.start..r.span.end;
            e = Expr {
                kind: ExprKind::Add(Box::new(e), Box::new(r)),
                span,
            };
        }
        Ok(e)
    }

    pub(super) fn product(&mut self, what: &str) -> R<Expr> {
        let mut e = self.atom(what)?;
        while self.eat_punct("*") {
            let r = self.atom(what)?;
            let span = e.span.start..r.span.end;
            e = Expr {
                kind: ExprKind::Mul(Box::new(e), Box::new(r)),
                span,
            };
        }
        Ok(e)
    }

    pub(super) fn atom(&mut self, what: &str) -> R<Expr> {
        let start = self.span().start;
        if self.eat_punct("(") {
            let inner = self.expr(what)?;
            self.punct(")")?;
            return Ok(Expr {
                kind: inner.kind,
                span: start..self.prev_end(),
            });
        }
        let expected = format!("{what} (a number, `head`, `next`, `vmemmap[PFN]` or a `let` name)");
        let Some(w) = self.peek_word() else {
            return Err(self.err(&expected));
        };
        let kind = match w {
            "head" => ExprKind::Head,
            "next" => ExprKind::Next,
            "vmemmap" => {
                self.bump();
                self.punct("[")?;
                let inner = self.expr("a pfn")?;
                self.punct("]")?;
                return Ok(Expr {
                    kind: ExprKind::Vmemmap(Box::new(inner)),
                    span: start..self.prev_end(),
                });
            }
            w if self.lets.contains_key(w) => {
                let kind = self.lets[w].kind.clone();
                self.bump();
                return Ok(Expr {
                    kind,
                    span: start..self.prev_end(),
                });
            }
            w => match number(w) {
                Some(n) => ExprKind::Num(n),
                None => return Err(self.err(&expected)),
            },
        };
        self.bump();
        Ok(Expr {
            kind,
            span: start..self.prev_end(),
        })
    }

    /// Parses an expression and evaluates it with no kernel (machine files).
    pub(super) fn const_expr(&mut self, what: &str) -> R<u64> {
        let e = self.expr(what)?;
        crate::kernel::eval(&e, None).map_err(|(span, m)| self.err_at(span, m))
    }
}

pub(super) fn page_arg(p: &mut Parser<'_>) -> R<PageArg> {
    const WHAT: &str = "a page: rN, rN+K, pfn N, page-of VA, same, shared-tail or a name given by `alloc rN as NAME`";
    let start = p.span().start;
    let Some(w) = p.peek_word() else {
        return Err(p.err(WHAT));
    };
    let page = match w {
        "pfn" => {
            p.bump();
            PageRef::Pfn(p.expr("a frame number")?)
        }
        "page-of" => {
            p.bump();
            PageRef::PageOf(p.expr("a virtual address")?)
        }
        "same" => {
            p.bump();
            PageRef::Same
        }
        "shared-tail" => {
            p.bump();
            PageRef::SharedTail
        }
        w if p.names.contains_key(w) => {
            let r = p.names[w];
            p.bump();
            let off = if p.eat_punct("+") {
                p.num_word("a page offset")?
            } else {
                0
            };
            PageRef::Reg(r, off)
        }
        w if w.starts_with('r') && w.len() > 1 && w[1..].bytes().all(|b| b.is_ascii_digit()) => {
            let s = p.span();
            let r: u16 = w[1..]
                .parse()
                .map_err(|_| p.err_at(s, format!("expected a register r0..r65535, found `{w}`")))?;
            p.bump();
            let off = if p.eat_punct("+") {
                p.num_word("a page offset")?
            } else {
                0
            };
            PageRef::Reg(r, off)
        }
        _ => return Err(p.err(WHAT)),
    };
    Ok(PageArg {
        page,
        span: start..p.prev_end(),
    })
}

pub(super) fn kdesc(p: &mut Parser<'_>) -> R<KDesc> {
    const WHAT: &str = "a descriptor: invalid, page PAGE rw|ro, block PAGE rw|ro or table PAGE";
    let (w, _) = p.word(WHAT)?;
    match w {
        "invalid" => Ok(KDesc::Invalid),
        "table" => Ok(KDesc::Table(page_arg(p)?)),
        "page" | "block" => {
            let page = page_arg(p)?;
            let perm = match p.peek_word() {
                Some("rw") => Perm::Rw,
                Some("ro") => Perm::Ro,
                _ => return Err(p.err("rw or ro (PAGE_KERNEL or PAGE_KERNEL_RO)")),
            };
            p.bump();
            let (mut af, mut nt) = (true, false);
            loop {
                if p.eat_word("noaf") {
                    af = false;
                } else if p.eat_word("nt") {
                    nt = true;
                } else {
                    break;
                }
            }
            Ok(KDesc::Leaf {
                page,
                perm,
                af,
                nt,
                block: w == "block",
            })
        }
        _ => {
            p.pos -= 1;
            Err(p.err(WHAT))
        }
    }
}

pub(super) fn order(p: &mut Parser<'_>) -> R<u8> {
    if p.at_key() == Some("order") {
        let (w, s) = p.value("0..31")?;
        w.parse()
            .ok()
            .filter(|&o: &u8| o < 32)
            .ok_or_else(|| p.err_at(s, format!("expected order=0..31, found `{w}`")))
    } else {
        Ok(0)
    }
}

/// A TLBI operation with its scope: `vae1is` (broadcast) or `vae1` (local).
pub(super) fn tlbi_kind(p: &mut Parser<'_>) -> R<(TlbiKind, TlbiScope)> {
    const WHAT: &str = TlbiKind::EXPECTED;
    let (w, s) = p.word(WHAT)?;
    TlbiKind::parse_scoped(w).map_err(|_| p.err_at(s, format!("expected {WHAT}, found `{w}`")))
}

pub(super) fn dsb_kind(p: &mut Parser<'_>) -> R<DsbKind> {
    let (w, s) = p.word("ish or ishst")?;
    w.parse()
        .map_err(|_| p.err_at(s, format!("expected ish or ishst, found `{w}`")))
}
