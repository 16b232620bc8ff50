//! The TaskExecutor's event dispatch: every RPC of Flink's `TaskExecutorGateway`, every timer
//! and every message that found its target down is routed here to the handler of the concept
//! that owns it (`rm_connection`, `job_leader_service`, `slots`, `tasks`). Small handlers (the
//! RM heartbeat request, the slot report's answer, the data plane's buffers and credit, the
//! checkpoint and sink answers handed to a running task's stream) are the match arms themselves.
//!
//! It owns no state; the public entry points that call it (and then check the invariants) are
//! in `mod.rs`.

use super::job_leader_service::JobLeader;
use super::rm_connection::RmConnection;
use super::TaskExecutor;
use crate::checking::bugs::Bug;
use crate::protocol::obs::{LossCause, Obs};
use crate::protocol::rpc::{
    CheckpointStorageRpc, ConnectPurpose, Msg, ResourceManagerRpc, SourceLogRpc, TaskExecutorRpc,
};
use crate::protocol::states::ExecutionState;
use crate::protocol::timer::{RegistrationTimer, TaskExecutorTimer};
use crate::protocol::Flink;
use crate::taskmanager::task::PartitionRetry;
use sim::{Ctx, NodeId, TimerId};

impl TaskExecutor {
    pub(super) fn handle_rpc(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        from: NodeId,
        rpc: TaskExecutorRpc,
    ) {
        match rpc {
            TaskExecutorRpc::RegistrationResponse {
                attempt_id,
                response,
            } => self.on_registration_response(ctx, from, attempt_id, response),
            TaskExecutorRpc::SlotReportResponse { instance_id, ok } => {
                if self.connected_instance() != Some(instance_id) {
                    return; // an answer for an older registration
                }
                if !ok {
                    self.reconnect_to_resource_manager(ctx, None);
                } else if let Some(RmConnection::Established {
                    slot_report_timeout,
                    ..
                }) = self.connection.as_mut()
                {
                    if let Some(t) = slot_report_timeout.take() {
                        ctx.cancel_timer(t);
                    }
                }
            }
            TaskExecutorRpc::HeartbeatFromResourceManager { resource_id } => {
                // A request from an origin that is not monitored gets no answer.
                if self
                    .resource_manager_heartbeats
                    .report_heartbeat(ctx, resource_id)
                {
                    ctx.send(
                        resource_id,
                        Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager {
                            resource_id: self.me,
                            slot_report: self.task_slot_table.slot_report(),
                        }),
                    );
                }
            }
            TaskExecutorRpc::DisconnectResourceManager { .. } => {
                if from == self.resource_manager {
                    self.reconnect_to_resource_manager(ctx, Some(LossCause::Disconnect));
                }
            }
            TaskExecutorRpc::RequestSlot {
                slot_id,
                job_id,
                allocation_id,
                job_master,
                resource_manager_id,
            } => self.on_request_slot(
                ctx,
                from,
                slot_id,
                job_id,
                allocation_id,
                job_master,
                resource_manager_id,
            ),
            TaskExecutorRpc::RegisterTaskManagerResponse {
                job_id,
                attempt_id,
                response,
            } => self.on_register_task_manager_response(ctx, from, job_id, attempt_id, response),
            TaskExecutorRpc::OfferSlotsResponse {
                job_id,
                job_master_id,
                offer_id,
                accepted,
            } => self.on_offer_slots_response(ctx, job_id, job_master_id, offer_id, &accepted),
            TaskExecutorRpc::SubmitTask { tdd, job_master_id } => {
                self.on_submit_task(ctx, from, *tdd, job_master_id)
            }
            TaskExecutorRpc::CancelTask { attempt } => self.on_cancel_task(ctx, attempt),
            TaskExecutorRpc::FreeSlot { allocation_id } => {
                self.free_slot_internal(ctx, allocation_id, "the JobMaster freed the slot");
            }
            TaskExecutorRpc::HeartbeatFromJobManager {
                job_id,
                job_master_id,
                allocated,
            } => self.on_heartbeat_from_job_manager(ctx, from, job_id, job_master_id, &allocated),
            TaskExecutorRpc::DisconnectJobManager { job_id, .. } => {
                let connected_to_sender = self.job_manager_connection(job_id).is_some()
                    && self.jobs[&job_id].job_master == from;
                if connected_to_sender {
                    // The JobMaster closed the connection itself: no loss to declare, and no
                    // `disconnectTaskManager` echo (it already dropped this TaskManager).
                    self.disconnect_job_manager_connection(ctx, job_id, None);
                }
            }
            TaskExecutorRpc::UpdateTaskExecutionStateResponse { attempt, ok } => {
                self.on_update_task_execution_state_response(ctx, attempt, ok)
            }
            TaskExecutorRpc::RequestSubpartition { producer, consumer } => {
                self.on_request_subpartition(ctx, from, producer, consumer)
            }
            TaskExecutorRpc::PartitionNotFound { producer, consumer } => {
                let Some(task) = self.tasks.get_mut(&consumer) else {
                    return;
                };
                if task.on_partition_not_found(ctx, producer) == PartitionRetry::Exhausted {
                    self.fail_task(
                        ctx,
                        consumer,
                        format!("PartitionNotFoundException: partition of {producer:?} not found"),
                    );
                }
            }
            TaskExecutorRpc::SourceRecords {
                reader,
                partition,
                offset,
                count,
                end_offset,
            } => {
                let Some(task) = self.tasks.get_mut(&reader) else {
                    return; // the reader is gone
                };
                if task.state() != ExecutionState::Running || !task.is_source() {
                    return; // a late answer to a task that stopped reading
                }
                if task.on_source_records(ctx, partition, offset, count, end_offset) {
                    task.stream.source_end(ctx);
                }
                self.after_stream(ctx, reader);
            }
            TaskExecutorRpc::TriggerCheckpoint {
                attempt,
                checkpoint_id,
                timestamp_ms,
            } => {
                // A task that is not RUNNING ignores the trigger; the checkpoint times out or
                // is aborted by the task's failure.
                self.with_running_stream(ctx, attempt, |task, ctx| {
                    let offsets = task.source_offsets();
                    task.stream
                        .on_trigger(ctx, checkpoint_id, timestamp_ms, offsets);
                });
            }
            TaskExecutorRpc::NotifyCheckpointComplete {
                attempt,
                checkpoint_id,
            } => {
                // docs/flink-runtime.md §7.4: a task that is not running ignores notifications.
                self.with_running_stream(ctx, attempt, |task, ctx| {
                    task.stream.on_notify_complete(ctx, checkpoint_id)
                });
            }
            TaskExecutorRpc::NotifyCheckpointAborted {
                attempt,
                checkpoint_id,
            } => {
                self.with_running_stream(ctx, attempt, |task, ctx| {
                    task.stream.on_notify_aborted(ctx, checkpoint_id);
                    task.stream.process(ctx);
                });
            }
            TaskExecutorRpc::DataBatch {
                producer,
                consumer,
                seq,
                elements,
            } => {
                let Some(task) = self.tasks.get_mut(&consumer) else {
                    return;
                };
                if task.state() != ExecutionState::Running {
                    return;
                }
                let Some(channel) = task.input_index(producer) else {
                    return;
                };
                task.stream
                    .on_data_batch(ctx, channel, producer, seq, elements);
                if task.stream.input_ended(channel) {
                    // In-band end of partition: the channel needs no more requests.
                    task.on_end_of_partition(ctx, producer);
                }
                self.after_stream(ctx, consumer);
            }
            TaskExecutorRpc::ChannelProgress {
                producer,
                consumer,
                received,
                consumed,
            } => {
                let Some(task) = self.tasks.get_mut(&producer) else {
                    return;
                };
                if !matches!(
                    task.state(),
                    ExecutionState::Running | ExecutionState::Finished
                ) {
                    return;
                }
                task.stream
                    .on_channel_progress(ctx, consumer, received, consumed);
                if task.state() == ExecutionState::Running {
                    // Credit may end backpressure.
                    task.stream.process(ctx);
                }
                self.after_stream(ctx, producer);
            }
            TaskExecutorRpc::StateWritten { handle } => {
                self.with_running_stream(ctx, handle.attempt, |task, ctx| {
                    assert_eq!(handle.job_id, task.job_id());
                    task.stream.on_state_written(ctx, handle)
                });
            }
            TaskExecutorRpc::StateRead {
                handle,
                reader,
                state,
            } => {
                if let Some(task) = self.tasks.get_mut(&reader) {
                    // A task restores state of its own job.
                    assert_eq!(handle.job_id, task.job_id());
                    if task.state() == ExecutionState::Initializing
                        && task.stream.on_state_read(ctx, handle, state)
                    {
                        self.maybe_start_running(ctx, reader);
                    }
                    self.after_stream(ctx, reader);
                }
            }
            TaskExecutorRpc::TransactionsInitialized { writer, epoch } => {
                if let Some(task) = self.tasks.get_mut(&writer) {
                    if task.state() == ExecutionState::Initializing
                        && task.stream.on_transactions_initialized(ctx, epoch)
                    {
                        self.maybe_start_running(ctx, writer);
                    }
                    self.after_stream(ctx, writer);
                }
            }
            TaskExecutorRpc::SinkWriteAck { writer, next_seq } => {
                self.with_running_stream(ctx, writer, |task, ctx| {
                    task.stream.on_sink_write_ack(ctx, next_seq)
                });
            }
            TaskExecutorRpc::SinkFenced { writer } => {
                self.with_running_stream(ctx, writer, |task, _| task.stream.on_sink_fenced());
            }
            TaskExecutorRpc::PreCommitted { writer, txn } => {
                self.with_running_stream(ctx, writer, |task, ctx| {
                    task.stream.on_pre_committed(ctx, txn)
                });
            }
            TaskExecutorRpc::Committed { writer, txn, .. } => {
                self.with_running_stream(ctx, writer, |task, ctx| {
                    task.stream.on_committed(ctx, txn)
                });
            }
        }
    }

    pub(super) fn handle_timer(
        &mut self,
        ctx: &mut Ctx<'_, Flink>,
        timer: TimerId,
        tag: TaskExecutorTimer,
    ) {
        use TaskExecutorTimer as T;
        match tag {
            T::ResourceManagerHeartbeatTimeout { target } => {
                if !self.resource_manager_heartbeats.on_timeout(timer, target) {
                    return;
                }
                if self.bugs.has(Bug::HeartbeatTimeoutIgnored) {
                    return;
                }
                // Only a timeout of the currently connected RM reconnects (FLINK-8462).
                if target == self.resource_manager {
                    self.reconnect_to_resource_manager(ctx, Some(LossCause::HeartbeatTimeout));
                }
            }
            T::JobManagerHeartbeatTimeout { job_id, target } => {
                let current = match self.jobs.get(&job_id).map(|j| &j.leader) {
                    Some(JobLeader::Connected(c)) => c.heartbeats.on_timeout(timer, target),
                    _ => false,
                };
                if current && !self.bugs.has(Bug::HeartbeatTimeoutIgnored) {
                    self.job_manager_lost(ctx, job_id, LossCause::HeartbeatTimeout);
                }
            }
            T::ResourceManagerRegistration(RegistrationTimer::AttemptTimeout { attempt_id }) => {
                let Some(RmConnection::Registering(reg)) = self.connection.as_mut() else {
                    return;
                };
                if self.bugs.has(Bug::RegistrationNotRetried) {
                    return;
                }
                if let Some(id) = reg.on_attempt_timeout(attempt_id, &mut self.next_attempt_id, ctx)
                {
                    self.send_registration(ctx, id);
                }
            }
            T::ResourceManagerRegistration(RegistrationTimer::Retry { attempt_id }) => {
                let Some(RmConnection::Registering(reg)) = self.connection.as_mut() else {
                    return;
                };
                if let Some(id) = reg.on_retry(attempt_id, &mut self.next_attempt_id, ctx) {
                    self.send_registration(ctx, id);
                }
            }
            T::JobManagerRegistration {
                job_id,
                timer: RegistrationTimer::AttemptTimeout { attempt_id },
            } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                let JobLeader::Registering(reg) = &mut job.leader else {
                    return;
                };
                if let Some(id) = reg.on_attempt_timeout(attempt_id, &mut self.next_attempt_id, ctx)
                {
                    let job_master = job.job_master;
                    self.send_job_master_registration(ctx, job_id, job_master, id);
                }
            }
            T::JobManagerRegistration {
                job_id,
                timer: RegistrationTimer::Retry { attempt_id },
            } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                let JobLeader::Registering(reg) = &mut job.leader else {
                    return;
                };
                if let Some(id) = reg.on_retry(attempt_id, &mut self.next_attempt_id, ctx) {
                    let job_master = job.job_master;
                    self.send_job_master_registration(ctx, job_id, job_master, id);
                }
            }
            T::RegistrationTimeout => {
                // Stopping the registration timeout cancels it: only the armed one fires.
                assert_eq!(self.registration_timeout, Some(timer));
                self.registration_timeout = None;
                if self.connected_instance().is_none() {
                    ctx.trace(Obs::RegistrationTimedOut);
                    ctx.exit();
                }
            }
            T::SlotReportTimeout { instance_id } => {
                if let Some(RmConnection::Established {
                    instance_id: current,
                    slot_report_timeout,
                    ..
                }) = self.connection.as_mut()
                {
                    if *current == instance_id && *slot_report_timeout == Some(timer) {
                        *slot_report_timeout = None;
                        self.reconnect_to_resource_manager(ctx, None);
                    }
                }
            }
            T::SlotTimeout {
                allocation_id,
                ticket,
            } => {
                // Only the current arm of a still-inactive slot counts (Flink's
                // `isValidTimeout`): an activated, re-armed or freed slot ignores it.
                if self.task_slot_table.is_valid_timeout(allocation_id, ticket) {
                    self.free_slot_internal(ctx, allocation_id, "the slot timed out");
                }
            }
            T::TaskStep { attempt } => self.on_task_step(ctx, attempt, timer),
            T::TaskTick { attempt } => {
                let Some(task) = self.tasks.get_mut(&attempt) else {
                    return;
                };
                if task.on_tick_fired(timer) {
                    task.stream.tick(ctx);
                    self.after_stream(ctx, attempt);
                }
            }
            T::PartitionRequestRetry { consumer, producer } => {
                if let Some(task) = self.tasks.get_mut(&consumer) {
                    task.on_partition_request_retry(ctx, producer, timer);
                }
            }
            T::OfferSlotsTimeout { job_id, offer_id } => {
                let Some(job) = self.jobs.get_mut(&job_id) else {
                    return;
                };
                if job
                    .offer
                    .as_ref()
                    .is_some_and(|o| o.offer_id == offer_id && o.timeout == timer)
                {
                    // The JobMaster did not answer in time: offer again (with whatever is
                    // still ALLOCATED now).
                    job.offer = None;
                    self.offer_slots(ctx, job_id);
                }
            }
            T::UpdateTaskStateTimeout { attempt } => {
                let live = self
                    .tasks
                    .get(&attempt)
                    .is_some_and(|t| t.is_update_timeout(timer));
                if live {
                    // Flink fails the task when `updateTaskExecutionState` fails, a timeout
                    // included.
                    self.fail_task(
                        ctx,
                        attempt,
                        "updateTaskExecutionState timed out".to_string(),
                    );
                }
            }
        }
    }

    pub(super) fn handle_unreachable(&mut self, ctx: &mut Ctx<'_, Flink>, to: NodeId, msg: &Msg) {
        match msg {
            Msg::SourceLog(SourceLogRpc::Fetch {
                reader, partition, ..
            }) => {
                if let Some(task) = self.tasks.get_mut(reader) {
                    // Only a source's reader fetches from the log.
                    assert!(task.is_source());
                    task.on_fetch_unreachable(*partition);
                }
            }
            Msg::ResourceManager(ResourceManagerRpc::RegisterTaskExecutor {
                attempt_id, ..
            }) => {
                if let Some(RmConnection::Registering(reg)) = self.connection.as_mut() {
                    reg.on_error(*attempt_id, ctx);
                }
            }
            // A connection that could not be sent failed like one that found no endpoint.
            Msg::Connect {
                purpose: ConnectPurpose::Registration(target),
                connect_id,
            } => self.connect_answered(ctx, *target, *connect_id, false),
            Msg::ResourceManager(ResourceManagerRpc::HeartbeatFromTaskManager { .. })
                if to == self.resource_manager
                    && self.resource_manager_heartbeats.report_rpc_failure(to) =>
            {
                self.reconnect_to_resource_manager(ctx, Some(LossCause::Unreachable));
            }
            Msg::ResourceManager(ResourceManagerRpc::SendSlotReport { instance_id, .. })
                if self.connected_instance() == Some(*instance_id) =>
            {
                self.reconnect_to_resource_manager(ctx, None);
            }
            Msg::JobMaster { job_id, rpc } => self.on_job_master_unreachable(ctx, to, *job_id, rpc),
            Msg::TaskExecutor(TaskExecutorRpc::DataBatch {
                producer, consumer, ..
            }) => {
                // The consumer's TaskManager is gone: the connection is closed and the
                // subpartition's view released (the producer itself goes with its region).
                if let Some(task) = self.tasks.get_mut(producer) {
                    task.stream.on_consumer_lost(*consumer);
                }
            }
            // The producer's TaskManager is gone: Flink's `RemoteTransportException` fails
            // the consumer at once.
            Msg::TaskExecutor(TaskExecutorRpc::ChannelProgress {
                producer, consumer, ..
            }) if self
                .tasks
                .get(consumer)
                .is_some_and(|t| t.state() == ExecutionState::Running) =>
            {
                self.fail_task(
                    ctx,
                    *consumer,
                    format!(
                        "RemoteTransportException: connection to the TaskManager of \
                         {producer:?} lost"
                    ),
                );
            }
            Msg::CheckpointStorage(CheckpointStorageRpc::Write { handle, .. }) => {
                if let Some(task) = self.tasks.get_mut(&handle.attempt) {
                    task.stream.on_state_write_failed(ctx, *handle);
                    let attempt = handle.attempt;
                    self.after_stream(ctx, attempt);
                }
            }
            Msg::CheckpointStorage(CheckpointStorageRpc::Read { reader, .. })
                if self
                    .tasks
                    .get(reader)
                    .is_some_and(|t| t.state() == ExecutionState::Initializing) =>
            {
                self.fail_task(
                    ctx,
                    *reader,
                    "could not restore: checkpoint storage is unreachable".to_string(),
                );
            }
            Msg::TaskExecutor(TaskExecutorRpc::RequestSubpartition { producer, consumer }) => {
                // The producer's TaskManager refused the connection: Flink's
                // `RemoteTransportException` fails the consumer at once.
                let waiting = self
                    .tasks
                    .get(consumer)
                    .is_some_and(|t| t.awaits_partition(*producer));
                if waiting {
                    self.fail_task(
                        ctx,
                        *consumer,
                        format!(
                            "RemoteTransportException: the TaskManager of {producer:?} refused \
                             the connection"
                        ),
                    );
                }
            }
            // Answers to a consumer or the RM that went away: nothing to do.
            _ => {}
        }
    }
}
