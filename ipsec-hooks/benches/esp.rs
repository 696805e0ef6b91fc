//! ESP per core: encapsulation and decapsulation of 64- and 1400-byte IPv4 packets (tunnel
//! mode, AES-128-GCM) against the raw AEAD on the same bytes, the limit. Buffers are made
//! outside the timed part; the ESP trailer and ICV still grow each one (the drivers'
//! buffers have no tailroom yet), which the figures include.
//!
//! `cargo bench -p ipsec-hooks --bench esp`

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ipsec_hooks::aead::GcmKey;
use ipsec_hooks::text::parse_state;
use ipsec_hooks::{Bundle, Ipsec, SecPath};
use std::hint::black_box;
use wire::{Instant, PacketBuf};

const KEY: &str = "0x0102030405060708090a0b0c0d0e0f1011121314";

fn bench(c: &mut Criterion) {
    let now = Instant::from_secs(1);
    // Window 0 on the receiver: the same packet can be opened again and again.
    let line = format!(
        "src 203.0.113.1 dst 203.0.113.2 proto esp spi 0x1000 reqid 1 mode tunnel aead 'rfc4106(gcm(aes))' {KEY} 128"
    );
    let mut g = c.benchmark_group("esp");
    for len in [64usize, 1400] {
        let inner = testkit::udp(
            "192.0.2.10",
            4000,
            "198.51.100.20",
            53,
            &vec![0x5a; len - 28],
        );
        g.throughput(Throughput::Bytes(len as u64));
        let mut tx = Ipsec::new();
        let id = tx.add_sa(parse_state(&line).unwrap(), now).unwrap();
        let bundle = Bundle::of(&[id]).unwrap();
        g.bench_with_input(BenchmarkId::new("encap", len), &len, |b, _| {
            b.iter_batched(
                || PacketBuf::from_slice(&inner),
                |mut buf| {
                    tx.encapsulate(now, &bundle, &mut buf).unwrap();
                    buf
                },
                BatchSize::SmallInput,
            )
        });
        let mut buf = PacketBuf::from_slice(&inner);
        tx.encapsulate(now, &bundle, &mut buf).unwrap();
        let esp = buf.into_vec();
        let mut rx = Ipsec::new();
        rx.add_sa(parse_state(&line).unwrap(), now).unwrap();
        g.bench_with_input(BenchmarkId::new("decap", len), &len, |b, _| {
            b.iter_batched(
                || PacketBuf::from_slice(&esp),
                |mut buf| {
                    let mut sp = SecPath::new();
                    rx.decapsulate(now, &mut buf, &mut sp).unwrap();
                    buf
                },
                BatchSize::SmallInput,
            )
        });
        // The AEAD alone over what ESP encrypts (the packet and a 2-byte trailer).
        let key = GcmKey::new(&ipsec_hooks::text::parse_key(KEY).unwrap()).unwrap();
        let aad = [0, 0, 0x10, 0, 0, 0, 0, 1];
        let iv = [0, 0, 0, 0, 0, 0, 0, 1];
        let mut plain = inner.clone();
        plain.extend_from_slice(&[0, 4]);
        g.bench_with_input(BenchmarkId::new("aead-seal", len), &len, |b, _| {
            b.iter_batched(
                || plain.clone(),
                |mut p| black_box(key.seal(&iv, &aad, &mut p)),
                BatchSize::SmallInput,
            )
        });
        let mut ct = plain.clone();
        let icv = key.seal(&iv, &aad, &mut ct).unwrap();
        g.bench_with_input(BenchmarkId::new("aead-open", len), &len, |b, _| {
            b.iter_batched(
                || ct.clone(),
                |mut p| black_box(key.open(&iv, &aad, &mut p, &icv).is_ok()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
