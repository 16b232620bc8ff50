//! What judges a run, from outside the model: the [`oracle`]s (always and eventually), the
//! coverage [`probes`] (sometimes), the fault-free [`reference`](mod@reference) output, and the planted
//! [`bugs`] that show each oracle can fail.

pub mod bugs;
pub mod oracle;
pub mod probes;
pub mod reference;
