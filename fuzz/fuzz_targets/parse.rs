//! Fuzzes the `.seq` parser: no input may panic or hang, and every error
//! names a line and column that exist in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match seq::parse("fuzz.seq", src) {
        Ok(_) => {}
        Err(e) => {
            let lines = src.split('\n').count();
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
            let text = src.split('\n').nth(e.line - 1).unwrap_or("");
            assert!(
                e.col >= 1 && e.col <= text.chars().count() + 1,
                "col {}",
                e.col
            );
            assert!(!e.message.is_empty());
            let _ = e.render(src);
        }
    }
});
