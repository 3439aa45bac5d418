//! The example sites built into the binary, so `ferry demo` works on a fresh machine.

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

pub fn get(name: &str) -> Option<&'static str> {
    EXAMPLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    EXAMPLES.iter().map(|(n, _)| *n).collect()
}
