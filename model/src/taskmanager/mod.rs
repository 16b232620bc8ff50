//! The TaskManager process: its [`task_executor`] endpoint, the [`task_slot_table`], the
//! deployed [`task`]s and the stream side of a running task ([`stream_task`]).

pub mod stream_task;
pub mod task;
pub mod task_executor;
pub mod task_slot_table;
