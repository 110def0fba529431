//! The session id codec (facts 1.8): public and private ids are the
//! protobuf `SessionIdData`, optionally AES-CTR encrypted with
//! `[sessions] blockkey`, signed with a truncated HMAC-SHA256 over a label and
//! `[sessions] hashkey`, then base64url (no padding). Public ids have their
//! bytes reversed so the MAC comes first.

use aes::cipher::{KeyIvInit, StreamCipher};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use prost::Message;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ids::{PrivateSessionId, PublicSessionId};

const MAC_LEN: usize = 10;
const IV_LEN: usize = 16;
const LABEL_PRIVATE: &[u8] = b"private-session";
const LABEL_PUBLIC: &[u8] = b"public-session";

/// The payload of a session id.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct SessionIdData {
    /// Process-local session counter, never 0.
    #[prost(uint64, tag = "1")]
    pub sid: u64,
    /// Creation time in Unix microseconds.
    #[prost(int64, tag = "2")]
    pub created: i64,
    #[prost(string, tag = "3")]
    pub backend_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("the hash key must not be empty")]
    EmptyHashKey,
    #[error("the block key must be 16, 24 or 32 bytes, got {0}")]
    BadBlockKeyLength(usize),
    #[error("session id is not valid base64url")]
    Base64,
    #[error("session id is too short")]
    TooShort,
    #[error("session id signature mismatch")]
    BadMac,
    #[error("session id payload is not decodable")]
    Payload,
}

enum BlockCipher {
    None,
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

impl BlockCipher {
    fn apply(&self, iv: &[u8; IV_LEN], data: &mut [u8]) {
        match self {
            BlockCipher::None => {}
            BlockCipher::Aes128(k) => {
                ctr::Ctr128BE::<aes::Aes128>::new(k.into(), iv.into()).apply_keystream(data)
            }
            BlockCipher::Aes192(k) => {
                ctr::Ctr128BE::<aes::Aes192>::new(k.into(), iv.into()).apply_keystream(data)
            }
            BlockCipher::Aes256(k) => {
                ctr::Ctr128BE::<aes::Aes256>::new(k.into(), iv.into()).apply_keystream(data)
            }
        }
    }
}

/// Encodes and decodes session ids with the configured keys.
pub struct SessionIdCodec {
    hash_key: Vec<u8>,
    cipher: BlockCipher,
}

impl std::fmt::Debug for SessionIdCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionIdCodec { .. }")
    }
}

impl SessionIdCodec {
    pub fn new(hash_key: &[u8], block_key: Option<&[u8]>) -> Result<Self, CodecError> {
        if hash_key.is_empty() {
            return Err(CodecError::EmptyHashKey);
        }
        let cipher = match block_key {
            None => BlockCipher::None,
            Some([]) => BlockCipher::None,
            Some(k) => match k.len() {
                16 => BlockCipher::Aes128(
                    k.try_into()
                        .map_err(|_| CodecError::BadBlockKeyLength(16))?,
                ),
                24 => BlockCipher::Aes192(
                    k.try_into()
                        .map_err(|_| CodecError::BadBlockKeyLength(24))?,
                ),
                32 => BlockCipher::Aes256(
                    k.try_into()
                        .map_err(|_| CodecError::BadBlockKeyLength(32))?,
                ),
                n => return Err(CodecError::BadBlockKeyLength(n)),
            },
        };
        Ok(SessionIdCodec {
            hash_key: hash_key.to_vec(),
            cipher,
        })
    }

    fn mac(&self, label: &[u8], body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.hash_key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any size"),
        };
        mac.update(label);
        mac.update(b"|");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    fn seal(&self, label: &[u8], data: &SessionIdData) -> Vec<u8> {
        let plain = data.encode_to_vec();
        let mut body = match self.cipher {
            BlockCipher::None => plain,
            _ => {
                let mut iv = [0u8; IV_LEN];
                rand::thread_rng().fill_bytes(&mut iv);
                let mut enc = plain;
                self.cipher.apply(&iv, &mut enc);
                let mut out = iv.to_vec();
                out.extend_from_slice(&enc);
                out
            }
        };
        let mac = self.mac(label, &body);
        body.extend_from_slice(&mac);
        body
    }

    fn open(&self, label: &[u8], raw: &[u8]) -> Result<SessionIdData, CodecError> {
        if raw.len() <= MAC_LEN {
            return Err(CodecError::TooShort);
        }
        let (body, mac) = raw.split_at(raw.len() - MAC_LEN);
        let expected = self.mac(label, body);
        if !bool::from(expected.ct_eq(mac)) {
            return Err(CodecError::BadMac);
        }
        let plain = match self.cipher {
            BlockCipher::None => body.to_vec(),
            _ => {
                if body.len() <= IV_LEN {
                    return Err(CodecError::TooShort);
                }
                let (iv, enc) = body.split_at(IV_LEN);
                let mut iv_arr = [0u8; IV_LEN];
                iv_arr.copy_from_slice(iv);
                let mut plain = enc.to_vec();
                self.cipher.apply(&iv_arr, &mut plain);
                plain
            }
        };
        SessionIdData::decode(plain.as_slice()).map_err(|_| CodecError::Payload)
    }

    pub fn encode_private(&self, data: &SessionIdData) -> PrivateSessionId {
        PrivateSessionId(URL_SAFE_NO_PAD.encode(self.seal(LABEL_PRIVATE, data)))
    }

    pub fn encode_public(&self, data: &SessionIdData) -> PublicSessionId {
        let mut raw = self.seal(LABEL_PUBLIC, data);
        raw.reverse();
        PublicSessionId(URL_SAFE_NO_PAD.encode(raw))
    }

    pub fn decode_private(&self, id: &str) -> Result<SessionIdData, CodecError> {
        let raw = URL_SAFE_NO_PAD
            .decode(id.as_bytes())
            .map_err(|_| CodecError::Base64)?;
        self.open(LABEL_PRIVATE, &raw)
    }

    pub fn decode_public(&self, id: &str) -> Result<SessionIdData, CodecError> {
        let mut raw = URL_SAFE_NO_PAD
            .decode(id.as_bytes())
            .map_err(|_| CodecError::Base64)?;
        raw.reverse();
        self.open(LABEL_PUBLIC, &raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_data() -> SessionIdData {
        SessionIdData {
            sid: 1,
            created: 1_700_000_000_000_000,
            backend_id: "backend-1".into(),
        }
    }

    /// Vector of facts 10.3 (no block key).
    #[test]
    fn digest_vector_without_blockkey() {
        let codec = SessionIdCodec::new(b"12345678901234567890123456789012", None).unwrap();
        assert_eq!(
            hex::encode(vector_data().encode_to_vec()),
            "0801108080f9c0c1c482031a096261636b656e642d31"
        );
        let private = codec.encode_private(&vector_data());
        let public = codec.encode_public(&vector_data());
        assert_eq!(private.0, "CAEQgID5wMHEggMaCWJhY2tlbmQtMVJoQmc-hgrmV0A");
        assert_eq!(public.0, "xWufz1AuelfEeTEtZG5la2NhYgkaA4LEwcD5gIAQAQg");
        assert_eq!(codec.decode_private(&private.0).unwrap(), vector_data());
        assert_eq!(codec.decode_public(&public.0).unwrap(), vector_data());
    }

    #[test]
    fn public_and_private_are_not_interchangeable() {
        let codec = SessionIdCodec::new(b"12345678901234567890123456789012", None).unwrap();
        let private = codec.encode_private(&vector_data());
        let public = codec.encode_public(&vector_data());
        assert_eq!(codec.decode_private(&public.0), Err(CodecError::BadMac));
        assert_eq!(codec.decode_public(&private.0), Err(CodecError::BadMac));
    }

    #[test]
    fn encrypted_round_trip_and_tamper() {
        for key_len in [16usize, 24, 32] {
            let block = vec![7u8; key_len];
            let codec = SessionIdCodec::new(b"hash", Some(&block)).unwrap();
            let a = codec.encode_private(&vector_data());
            let b = codec.encode_private(&vector_data());
            assert_ne!(a, b, "independent IVs");
            assert_eq!(codec.decode_private(&a.0).unwrap(), vector_data());
            let p = codec.encode_public(&vector_data());
            assert_eq!(codec.decode_public(&p.0).unwrap(), vector_data());
            let mut tampered = a.0.clone().into_bytes();
            tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert!(codec.decode_private(&tampered).is_err());
        }
    }

    #[test]
    fn bad_keys_and_garbage() {
        assert_eq!(
            SessionIdCodec::new(b"", None).unwrap_err(),
            CodecError::EmptyHashKey
        );
        assert_eq!(
            SessionIdCodec::new(b"k", Some(b"short")).unwrap_err(),
            CodecError::BadBlockKeyLength(5)
        );
        let codec = SessionIdCodec::new(b"k", None).unwrap();
        assert_eq!(codec.decode_private("!!!"), Err(CodecError::Base64));
        assert_eq!(codec.decode_private("AAAA"), Err(CodecError::TooShort));
        assert_eq!(codec.decode_private(""), Err(CodecError::TooShort));
    }
}
