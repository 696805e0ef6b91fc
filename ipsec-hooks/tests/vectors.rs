//! The RFC 4106 known-answer vectors (`tests/data/rfc4106_vectors.json`: draft-mcgrew-gcm-test-01
//! as carried in Linux's `crypto/testmgr.h`) through this crate's AEAD wrapper: the exact
//! ciphertext and ICV, the plaintext back, and a failure for every flipped bit position tried.

use ipsec_hooks::aead::{GcmKey, ICV_LEN, IV_LEN};
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/rfc4106_vectors.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["vectors"].as_array().unwrap().clone()
}

#[test]
fn every_vector_seals_and_opens_exactly() {
    let all = vectors();
    assert_eq!(all.len(), 23);
    let mut sizes = std::collections::BTreeSet::new();
    for (n, v) in all.iter().enumerate() {
        let s = |k: &str| hex(v[k].as_str().unwrap());
        assert!(!v["expect_fail"].as_bool().unwrap(), "vector {n}");
        assert_eq!(v["icv_len"].as_u64(), Some(ICV_LEN as u64));
        let key = GcmKey::new(&s("key_salt")).unwrap();
        sizes.insert(key.bits());
        let iv: [u8; IV_LEN] = s("iv").try_into().unwrap();
        let aad = s("aad_spi_seq");
        let pt = s("plaintext");
        let want = s("ciphertext_icv");
        let mut buf = pt.clone();
        let icv = key.seal(&iv, &aad, &mut buf).unwrap();
        buf.extend_from_slice(&icv);
        assert_eq!(buf, want, "vector {n}: ciphertext ‖ ICV");

        let (ct, tag) = want.split_at(want.len() - ICV_LEN);
        let tag: [u8; ICV_LEN] = tag.try_into().unwrap();
        let mut back = ct.to_vec();
        key.open(&iv, &aad, &mut back, &tag).unwrap();
        assert_eq!(back, pt, "vector {n}: plaintext");

        // One flipped bit anywhere (ciphertext, ICV, AAD, IV) fails.
        for bit in [0, 7, ct.len() * 8 - 1] {
            let mut c = ct.to_vec();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                key.open(&iv, &aad, &mut c, &tag).is_err(),
                "vector {n} ct bit {bit}"
            );
        }
        let mut t = tag;
        t[ICV_LEN - 1] ^= 0x80;
        assert!(
            key.open(&iv, &aad, &mut ct.to_vec(), &t).is_err(),
            "vector {n} icv"
        );
        let mut a = aad.clone();
        a[0] ^= 1;
        assert!(
            key.open(&iv, &a, &mut ct.to_vec(), &tag).is_err(),
            "vector {n} aad"
        );
        let mut i2 = iv;
        i2[7] ^= 1;
        assert!(
            key.open(&i2, &aad, &mut ct.to_vec(), &tag).is_err(),
            "vector {n} iv"
        );
    }
    // The vectors cover each key size the wrapper has a backend for.
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![128, 192, 256]);
}
