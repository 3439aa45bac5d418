//! AFL target: profile files (see `ferry_fuzz::profile`).

fn main() {
    let profiles = ferry_profiles::ProfileSet::builtin().expect("built-in profiles");
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            ferry_fuzz::profile(&profiles, text);
        }
    });
}
