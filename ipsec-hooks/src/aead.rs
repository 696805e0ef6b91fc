//! `rfc4106(gcm(aes))`: AES-GCM as ESP uses it (RFC 4106).
//!
//! The key material is what `ip xfrm state add ... aead 'rfc4106(gcm(aes))' 0xKEYSALT 128`
//! takes: the AES key (16, 24 or 32 bytes) followed by a 4-byte salt. The 12-byte GCM nonce is
//! the salt followed by the 8-byte IV carried in each packet; the ICV is 16 bytes.
//!
//! Backend: `ring` for 128- and 256-bit keys (4 to 5 times RustCrypto's `aes-gcm` at 1400 bytes
//! on this machine, BENCHMARKS.md), RustCrypto's `aes-gcm` for 192-bit keys, which `ring` does
//! not offer.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use core::fmt;

/// Bytes of the ICV (RFC 4106 §6: 8, 12 or 16; only 16 is supported, as `ip xfrm`'s 128).
pub const ICV_LEN: usize = 16;
/// Bytes of the salt at the end of the key material.
pub const SALT_LEN: usize = 4;
/// Bytes of the explicit IV in each packet.
pub const IV_LEN: usize = 8;
/// The only ICV length accepted, in bits, as `ip xfrm` writes it.
pub const ICV_BITS: u32 = 128;
/// The algorithm's name, as `ip xfrm` writes it.
pub const ALG_NAME: &str = "rfc4106(gcm(aes))";

type Aes192Gcm = aes_gcm::AesGcm<aes_gcm::aes::Aes192, aes_gcm::aead::consts::U12>;

// The common backend stays inline in the SA (no pointer to follow per packet).
#[allow(clippy::large_enum_variant)]
enum Backend {
    Ring(ring::aead::LessSafeKey),
    // Boxed: the expanded AES-192 key schedule is large and this variant is rare.
    RustCrypto192(Box<Aes192Gcm>),
}

/// A ready AES-GCM key with its salt. Its `Debug` shows the key size only.
pub struct GcmKey {
    backend: Backend,
    salt: [u8; SALT_LEN],
    bits: u16,
}

/// Key material of the wrong length: not 16, 24 or 32 bytes of key plus 4 of salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadKeyLength(pub usize);

impl fmt::Display for BadKeyLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key material of {} bytes: expected 20, 28 or 36 (a 128, 192 or 256-bit AES key followed by a 4-byte salt)",
            self.0
        )
    }
}

impl std::error::Error for BadKeyLength {}

/// The ICV did not verify: the packet was forged, corrupted or sealed with another key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntegrityError;

impl GcmKey {
    /// Builds the key from `key ‖ salt` (20, 28 or 36 bytes).
    pub fn new(key_and_salt: &[u8]) -> Result<GcmKey, BadKeyLength> {
        let bad = BadKeyLength(key_and_salt.len());
        let key_len = key_and_salt.len().checked_sub(SALT_LEN).ok_or(bad)?;
        let (key, salt) = key_and_salt.split_at(key_len);
        let backend = match key_len {
            16 | 32 => {
                let alg = if key_len == 16 {
                    &ring::aead::AES_128_GCM
                } else {
                    &ring::aead::AES_256_GCM
                };
                let unbound = ring::aead::UnboundKey::new(alg, key).map_err(|_| bad)?;
                Backend::Ring(ring::aead::LessSafeKey::new(unbound))
            }
            24 => {
                Backend::RustCrypto192(Box::new(Aes192Gcm::new_from_slice(key).map_err(|_| bad)?))
            }
            _ => return Err(bad),
        };
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(GcmKey {
            backend,
            salt: s,
            bits: (key_len * 8) as u16,
        })
    }

    /// The AES key size in bits (128, 192 or 256).
    pub fn bits(&self) -> u16 {
        self.bits
    }

    fn nonce(&self, iv: &[u8; IV_LEN]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        n
    }

    /// Encrypts `in_out` in place and returns the ICV. `None` only when the crate refuses the
    /// length (more than GCM's 64 GiB, never a packet).
    pub fn seal(&self, iv: &[u8; IV_LEN], aad: &[u8], in_out: &mut [u8]) -> Option<[u8; ICV_LEN]> {
        let nonce = self.nonce(iv);
        let mut icv = [0u8; ICV_LEN];
        match &self.backend {
            Backend::Ring(k) => {
                let tag = k
                    .seal_in_place_separate_tag(
                        ring::aead::Nonce::assume_unique_for_key(nonce),
                        ring::aead::Aad::from(aad),
                        in_out,
                    )
                    .ok()?;
                icv.copy_from_slice(tag.as_ref());
            }
            Backend::RustCrypto192(k) => {
                let tag = k
                    .encrypt_in_place_detached(aes_gcm::Nonce::from_slice(&nonce), aad, in_out)
                    .ok()?;
                icv.copy_from_slice(&tag);
            }
        }
        Some(icv)
    }

    /// Checks `icv` and decrypts `in_out` in place. On failure `in_out` holds no plaintext
    /// worth reading (`ring` zeroes it) and must be dropped.
    pub fn open(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        icv: &[u8; ICV_LEN],
    ) -> Result<(), IntegrityError> {
        let nonce = self.nonce(iv);
        match &self.backend {
            Backend::Ring(k) => {
                let tag = ring::aead::Tag::from(*icv);
                k.open_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(aad),
                    tag,
                    in_out,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| IntegrityError)
            }
            Backend::RustCrypto192(k) => k
                .decrypt_in_place_detached(
                    aes_gcm::Nonce::from_slice(&nonce),
                    aad,
                    in_out,
                    aes_gcm::Tag::from_slice(icv),
                )
                .map_err(|_| IntegrityError),
        }
    }
}

impl fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcmKey {{ bits: {}, .. }}", self.bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lengths() {
        for (len, bits) in [(20, 128), (28, 192), (36, 256)] {
            assert_eq!(GcmKey::new(&vec![1u8; len]).unwrap().bits(), bits);
        }
        for len in [0, 3, 4, 16, 19, 21, 32, 40] {
            assert_eq!(GcmKey::new(&vec![1u8; len]).unwrap_err(), BadKeyLength(len));
        }
    }

    #[test]
    fn seal_open_every_size_and_reject_tampering() {
        for len in [20, 28, 36] {
            let key = GcmKey::new(&vec![9u8; len]).unwrap();
            let iv = [1, 2, 3, 4, 5, 6, 7, 8];
            let mut data = b"attack at dawn!".to_vec();
            let icv = key.seal(&iv, b"aad", &mut data).unwrap();
            assert_ne!(&data[..], b"attack at dawn!");
            let sealed = data.clone();
            key.open(&iv, b"aad", &mut data, &icv).unwrap();
            assert_eq!(&data[..], b"attack at dawn!");
            // Wrong AAD, IV or ICV each fail.
            let mut d = sealed.clone();
            assert_eq!(key.open(&iv, b"aae", &mut d, &icv), Err(IntegrityError));
            let mut d = sealed.clone();
            assert_eq!(key.open(&[0; 8], b"aad", &mut d, &icv), Err(IntegrityError));
            let mut bad = icv;
            bad[15] ^= 1;
            let mut d = sealed.clone();
            assert_eq!(key.open(&iv, b"aad", &mut d, &bad), Err(IntegrityError));
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let k = GcmKey::new(&[0xab; 20]).unwrap();
        assert_eq!(format!("{k:?}"), "GcmKey { bits: 128, .. }");
    }
}
