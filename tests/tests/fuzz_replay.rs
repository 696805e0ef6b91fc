//! Replays the committed fuzz inputs through the harnesses the cargo-fuzz targets run
//! (`fuzz/`, see FUZZING.md): the seed corpora (`fuzz/seeds/<target>/`) and every input a
//! fuzzer found a bug with (`fuzz/regressions/<target>/`). A short run of every target in
//! the normal suite, without nightly: the harnesses keep building and the bugs stay fixed.

use std::path::Path;

/// Runs every committed input of `target` through `harness`; the seeds must exist.
fn replay(target: &str, harness: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut seeds = 0;
    for (kind, dir) in [("seeds", "seeds"), ("regressions", "regressions")] {
        let dir = root.join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.map(|e| e.expect("entry").path()).collect();
        paths.sort();
        for p in paths {
            let data = std::fs::read(&p).expect("read input");
            eprintln!(
                "{target}: {kind}/{}",
                p.file_name().unwrap_or_default().to_string_lossy()
            );
            harness(&data);
            seeds += usize::from(kind == "seeds");
        }
    }
    assert!(seeds > 0, "no seeds for {target} under {}", root.display());
}

#[test]
fn wire_views() {
    replay("wire", wire::fuzzing::run);
}

#[test]
fn conntrack_modules() {
    replay("conntrack", l4proto::fuzzing::run);
}

#[test]
fn defrag() {
    replay("defrag", l3proto::fuzzing::run);
}

#[test]
fn rules_language() {
    replay("rules", rules::fuzzing::run);
}

#[test]
fn config_toml() {
    replay("config", router::fuzzing::config);
}

#[test]
fn control_protocol() {
    replay("control", router::fuzzing::control);
}

#[test]
fn pcap_reader() {
    replay("pcap", router::fuzzing::pcap);
}

#[test]
fn l2_arp_nd() {
    replay("l2", router::fuzzing::l2);
}

#[test]
fn engine() {
    replay("engine", router::fuzzing::engine);
}

#[test]
fn helper_ftp() {
    replay("helper_ftp", helpers::fuzzing::ftp);
}

#[test]
fn helper_tftp() {
    replay("helper_tftp", helpers::fuzzing::tftp);
}

#[test]
fn helper_talk() {
    replay("helper_talk", helpers::fuzzing::talk);
}

#[test]
fn ipsec_decap() {
    replay("ipsec_decap", ipsec_hooks::fuzzing::decap);
}

#[test]
fn ipsec_parse() {
    replay("ipsec_parse", ipsec_hooks::fuzzing::parse);
}

#[test]
fn h323_per() {
    replay("h323_per", helpers::fuzzing::h323_per);
}

#[test]
fn h323_ras() {
    replay("h323_ras", helpers::fuzzing::h323_ras);
}

#[test]
fn h323_q931() {
    replay("h323_q931", helpers::fuzzing::h323_q931);
}

#[test]
fn h323_h245() {
    replay("h323_h245", helpers::fuzzing::h323_h245);
}
