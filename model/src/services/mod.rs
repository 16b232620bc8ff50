//! Runtime services every Flink endpoint embeds, whichever process it lives in: the heartbeat
//! manager ([`heartbeat`]) and the retrying registration ([`registration`]) of
//! `org.apache.flink.runtime.heartbeat` and `org.apache.flink.runtime.registration`.

pub mod heartbeat;
pub mod registration;
