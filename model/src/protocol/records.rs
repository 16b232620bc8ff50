//! The data of a job: the records of the replayable source log (Kafka-like) and what the
//! operators make of them.
//!
//! This module owns the *definitions* that the model's data plane and the oracles' fault-free
//! reference ([`crate::checking::reference`]) must share, so that both sides compute the same thing from
//! the same rules: which record sits at an offset of a partition ([`record_at`]), which key a
//! `key_by { keys }` assigns ([`keyed`]), what a `map` does to a value ([`map_value`]) and what a
//! keyed `count` emits ([`CountOutput`]). It does not own the source log node (`source_log`), the
//! operators' execution or state (the TaskExecutor's tasks), nor any checking (`reference`).
//!
//! Every function here is pure and has a fixed definition (no `DefaultHasher`, no randomness):
//! the same record comes out of the same position on every run, thread count and machine, so a
//! source can re-read a partition from any offset after a failure and get identical records.

use serde::{Deserialize, Serialize};

/// Bits of a position (see [`record_at`]) that hold the offset; the partition takes the rest.
const OFFSET_BITS: u32 = 40;

/// Partitions the position encoding of [`record_at`] can address (the top 24 bits).
pub const PARTITIONS_MAX: u32 = 1 << (u64::BITS - OFFSET_BITS);

/// Records per partition the position encoding of [`record_at`] can address (the low 40 bits).
pub const RECORDS_PER_PARTITION_MAX: u64 = 1 << OFFSET_BITS;

// Partition and offset together fill exactly 64 bits, so distinct positions never collide and
// every addressable position fits.
const _: () = assert!(
    (PARTITIONS_MAX as u128) * (RECORDS_PER_PARTITION_MAX as u128) == (u64::MAX as u128) + 1
);

/// One record of the source log. `key` and `value` are what the job computes on; `partition`
/// and `offset` say where the record came from, and travel with it so that an oracle can tell
/// which source record a sink output stems from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Record {
    pub partition: u32,
    pub offset: u64,
    pub key: u64,
    pub value: u64,
}

/// What the keyed `count` operator emits for each input record: the record's key and the key's
/// running count including this record (1 for the key's first record, then 2, 3, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CountOutput {
    pub key: u64,
    pub count: u64,
}

/// The record at `offset` of `partition`, by a fixed definition. With the position
/// `p = (partition << 40) | offset`:
///
/// - `key = fmix64(p)`, MurmurHash3's 64-bit finaliser;
/// - `value = splitmix64(p)`, i.e. the SplitMix64 output for state `p`: the Stafford "mix13"
///   finaliser applied to `p + 0x9e37_79b9_7f4a_7c15`.
///
/// Both are bijections of `p`, so distinct positions have distinct keys and distinct values.
/// Keys look uniformly random, which spreads them over any `key_by { keys }` ([`keyed`]).
///
/// Panics if `partition >= PARTITIONS_MAX` or `offset >= RECORDS_PER_PARTITION_MAX`: a
/// scenario's source must be validated against those bounds before records are read.
pub fn record_at(partition: u32, offset: u64) -> Record {
    assert!(
        partition < PARTITIONS_MAX,
        "partition {partition} out of range"
    );
    assert!(
        offset < RECORDS_PER_PARTITION_MAX,
        "offset {offset} out of range"
    );
    let position = ((partition as u64) << OFFSET_BITS) | offset;
    Record {
        partition,
        offset,
        key: fmix64(position),
        value: splitmix64(position),
    }
}

/// The key a `key_by { keys }` assigns to a record with key `key`: `key % keys`, so a keyed
/// stream has at most `keys` distinct keys (`0..keys`).
pub fn keyed(key: u64, keys: u32) -> u64 {
    assert!(keys >= 1, "key_by needs at least one key");
    let result = key % keys as u64;
    assert!(result < keys as u64);
    result
}

/// What a `map` operator does to a record's value: `value + 1` (wrapping). The key, partition and
/// offset pass unchanged.
///
/// The map is deliberately not the identity, so that a record that skipped its map, or went
/// through it twice (a replay applied on top of already mapped output), differs from the
/// reference. Incrementing keeps the expected value easy to check by hand in a report.
pub fn map_value(value: u64) -> u64 {
    value.wrapping_add(1)
}

/// MurmurHash3's `fmix64`. Each step (xor-shift, multiply by an odd constant) is invertible, so
/// the whole is a bijection on `u64`.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// SplitMix64 (Steele, Lea, Flood 2014) for the state `x`: a bijection on `u64` different from
/// [`fmix64`], so that a record's value is not a function of its key's bits in any simple way.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_at_is_pinned() {
        // Pinned: a change here changes every scenario's data, and with it every trace hash.
        // fmix64(1) is also pinned by `job_graph`'s key-group test; splitmix64(0) is the
        // published first output of SplitMix64 seeded with 0.
        let table = [
            (0, 0, 0, 0xe220_a839_7b1d_cdaf),
            (0, 1, 0xb456_bcfc_34c2_cb2c, splitmix64(1)),
            (1, 0, fmix64(1 << 40), splitmix64(1 << 40)),
        ];
        for (partition, offset, key, value) in table {
            let record = record_at(partition, offset);
            assert_eq!(
                record,
                Record {
                    partition,
                    offset,
                    key,
                    value
                },
                "({partition}, {offset})"
            );
        }
        // The largest addressable position is valid.
        let last = record_at(PARTITIONS_MAX - 1, RECORDS_PER_PARTITION_MAX - 1);
        assert_eq!(last.key, fmix64(u64::MAX));
    }

    #[test]
    fn record_at_is_pure_and_injective() {
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for partition in 0..4 {
            for offset in 0..2_500 {
                let record = record_at(partition, offset);
                assert_eq!(record, record_at(partition, offset));
                assert_eq!((record.partition, record.offset), (partition, offset));
                keys.push(record.key);
                values.push(record.value);
            }
        }
        for column in [&mut keys, &mut values] {
            column.sort_unstable();
            column.dedup();
            assert_eq!(column.len(), 10_000);
        }
    }

    #[test]
    fn keys_spread_over_key_by() {
        // 10 000 records over 64 keys: every key appears, each within ±40 % of the mean of 156.
        let mut counts = [0u32; 64];
        for offset in 0..10_000 {
            counts[keyed(record_at(0, offset).key, 64) as usize] += 1;
        }
        for (key, &count) in counts.iter().enumerate() {
            assert!((94..=219).contains(&count), "key {key}: {count}");
        }
        // Also across partitions at a fixed offset.
        let mut seen = [false; 64];
        for partition in 0..10_000 {
            seen[keyed(record_at(partition, 7).key, 64) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn keyed_table() {
        // (key, keys, keyed)
        let table = [
            (0, 1, 0),
            (u64::MAX, 1, 0),
            (17, 64, 17),
            (64, 64, 0),
            (130, 64, 2),
            (u64::MAX, u32::MAX, u64::MAX % u32::MAX as u64),
        ];
        for (key, keys, expected) in table {
            assert_eq!(keyed(key, keys), expected, "keyed({key}, {keys})");
        }
    }

    #[test]
    #[should_panic(expected = "at least one key")]
    fn keyed_rejects_zero_keys() {
        keyed(1, 0);
    }

    #[test]
    #[should_panic(expected = "partition 16777216 out of range")]
    fn record_at_rejects_a_partition_beyond_the_encoding() {
        record_at(PARTITIONS_MAX, 0);
    }

    #[test]
    #[should_panic(expected = "offset 1099511627776 out of range")]
    fn record_at_rejects_an_offset_beyond_the_encoding() {
        record_at(0, RECORDS_PER_PARTITION_MAX);
    }

    #[test]
    fn map_value_table() {
        let table = [(0, 1), (41, 42), (u64::MAX, 0)];
        for (value, expected) in table {
            assert_eq!(map_value(value), expected, "map_value({value})");
        }
    }
}
