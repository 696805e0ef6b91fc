//! Replay the committed fuzz inputs (`fuzz/regressions/`) through the same
//! harness the cargo-fuzz target runs.

#[test]
fn replay_fuzz_regressions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("fuzz/regressions") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read input");
        search::fuzzing::run(&data);
        n += 1;
    }
    assert!(n > 0, "no regression inputs");
}
