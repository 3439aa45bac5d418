//! AFL target: plan files (see `ferry_fuzz::plan`).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            ferry_fuzz::plan(text);
        }
    });
}
