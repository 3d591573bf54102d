//! Stable hashes (FNV-1a 64, then a finalizer): the same bytes give the same hash on
//! every machine and in every version, which shard assignment and lineage checks need
//! (`std`'s `DefaultHasher` promises neither).

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

fn update(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// splitmix64's finalizer: spreads FNV's low-entropy high bits.
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of one byte string.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    finish(update(OFFSET, bytes))
}

/// Hash of a sequence of byte strings (each length-prefixed, so parts cannot run
/// into one another).
pub fn stable_hash_parts(parts: &[&[u8]]) -> u64 {
    let mut h = OFFSET;
    for p in parts {
        h = update(h, &(p.len() as u64).to_le_bytes());
        h = update(h, p);
    }
    finish(h)
}

/// 16 lowercase hex digits.
pub fn hex(h: u64) -> String {
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_fixed() {
        // Pinned values: shard assignment must never change between versions.
        assert_eq!(hex(stable_hash(b"")), "f52a15e9a9b5e89b");
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        assert_ne!(
            stable_hash_parts(&[b"ab", b"c"]),
            stable_hash_parts(&[b"a", b"bc"])
        );
    }
}
