//! Raw AES-GCM throughput of the two maintained crates the ESP codec could sit on: `ring` and
//! RustCrypto's `aes-gcm`, sealing and opening 64 and 1400 bytes with ESP's 8-byte AAD. The
//! faster one backs `ipsec_hooks::aead::GcmKey` (BENCHMARKS.md has the figures).
//!
//! `cargo bench -p ipsec-hooks --bench aead`

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use std::hint::black_box;

const AAD: [u8; 8] = [0, 0, 0x10, 0, 0, 0, 0, 1];
const NONCE: [u8; 12] = [0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0, 0, 0, 0, 1];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead");
    for len in [64usize, 1400] {
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0x5au8; len];
        for (bits, alg) in [(128, &AES_128_GCM), (256, &AES_256_GCM)] {
            let key = LessSafeKey::new(UnboundKey::new(alg, &[7u8; 32][..bits / 8]).unwrap());
            g.bench_with_input(
                BenchmarkId::new(format!("ring-{bits}-seal"), len),
                &len,
                |b, _| {
                    b.iter(|| {
                        let n = Nonce::assume_unique_for_key(NONCE);
                        black_box(
                            key.seal_in_place_separate_tag(n, Aad::from(AAD), &mut buf)
                                .unwrap(),
                        )
                    })
                },
            );
            let n = Nonce::assume_unique_for_key(NONCE);
            let mut ct = vec![0x5au8; len];
            let tag = key
                .seal_in_place_separate_tag(n, Aad::from(AAD), &mut ct)
                .unwrap();
            g.bench_with_input(
                BenchmarkId::new(format!("ring-{bits}-open"), len),
                &len,
                |b, _| {
                    b.iter(|| {
                        buf.copy_from_slice(&ct);
                        let n = Nonce::assume_unique_for_key(NONCE);
                        black_box(
                            key.open_in_place_separate_tag(n, Aad::from(AAD), tag, &mut buf, 0..)
                                .is_ok(),
                        )
                    })
                },
            );
        }
        let k192 = ipsec_hooks::aead::GcmKey::new(&[7u8; 28]).unwrap();
        g.bench_with_input(BenchmarkId::new("wrapper-192-seal", len), &len, |b, _| {
            b.iter(|| black_box(k192.seal(&[0; 8], &AAD, &mut buf)))
        });
        let k128 = aes_gcm::Aes128Gcm::new_from_slice(&[7u8; 16]).unwrap();
        let k256 = aes_gcm::Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
        let nonce = aes_gcm::Nonce::from_slice(&NONCE);
        g.bench_with_input(BenchmarkId::new("aes-gcm-128-seal", len), &len, |b, _| {
            b.iter(|| {
                black_box(
                    k128.encrypt_in_place_detached(nonce, &AAD, &mut buf)
                        .unwrap(),
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("aes-gcm-256-seal", len), &len, |b, _| {
            b.iter(|| {
                black_box(
                    k256.encrypt_in_place_detached(nonce, &AAD, &mut buf)
                        .unwrap(),
                )
            })
        });
        let mut ct = vec![0x5au8; len];
        let tag = k128
            .encrypt_in_place_detached(nonce, &AAD, &mut ct)
            .unwrap();
        g.bench_with_input(BenchmarkId::new("aes-gcm-128-open", len), &len, |b, _| {
            b.iter(|| {
                buf.copy_from_slice(&ct);
                black_box(
                    k128.decrypt_in_place_detached(nonce, &AAD, &mut buf, &tag)
                        .is_ok(),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
