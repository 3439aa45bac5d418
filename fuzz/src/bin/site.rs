//! AFL target: site files (see `ferry_fuzz::site`).

fn main() {
    let profiles = ferry_profiles::ProfileSet::builtin().expect("built-in profiles");
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            ferry_fuzz::site(&profiles, text);
        }
    });
}
