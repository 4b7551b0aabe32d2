//! Resolving a program to addresses (`Scenario::build`): what it refuses.

use explore::Setup;

/// The explorer resolves `rN+K` against the allocation too: a page past
/// it is refused, not resolved to a frame nobody allocated.
#[test]
fn a_register_offset_outside_its_allocation_is_refused() {
    let setup = Setup::standard(
        mm::Protocol::by_name("bbm").expect("built in"),
        vmsa::BbmLevel::Level0,
    );
    let prep = explore::Prepared::new(&setup).expect("prepares");
    let mut program = mm::Program::default();
    program.push(mm::Instr::Alloc { reg: 7, order: 0 });
    program.push(mm::Instr::Copy {
        dst: mm::Page::Reg(7, 3),
        src: mm::Page::Reg(7, 0),
    });
    let e = explore::Scenario::build(&prep, &program)
        .err()
        .expect("refused");
    assert!(
        e.to_string()
            .contains("page offset 3 (r7+3) is outside the allocation in r7"),
        "{e}"
    );
}
