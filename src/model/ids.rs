//! Hash maps and sets keyed by record ids. Every record of a pass is
//! hashed several times on its way (the window's set of ids, the
//! accumulator's, the commit's); std's SipHash, built to resist keys
//! chosen by an attacker, cost more than the rest of those steps. Ids come
//! from the API the user configured, so a fast multiplicative hash (the
//! one rustc uses, eight bytes at a time) does here.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by record ids.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A set of record ids.
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// FxHash: rotate, xor in eight bytes, multiply.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.add(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_share_a_prefix_land_apart_and_a_set_finds_each() {
        let ids: Vec<String> = (0..10_000)
            .map(|i| format!("ms-6a1ba5cea8d2cfebe98e{i:04}"))
            .collect();
        let set: IdSet<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|id| set.contains(id.as_str())));
        assert!(!set.contains("ms-6a1ba5cea8d2cfebe98e10000"));
    }
}
