//! The glue between the link and the supervisor (docs/jobs.md, "Host
//! bridge", "The link"): opsd's `Start`, `Stop` and `LogResend` become
//! supervisor calls; the supervisor's events become `Started`, `Log`,
//! `Metric`, `Exited` and `Lost` messages. The HTTP layer's requests go
//! out as `Api` and `Export`; opsd's `ApiReply` and `ExportChunk` are kept
//! for it to take. opsd's `Notify` goes to the [webhook sender](Webhooks),
//! which never holds up the loop; each one's `Notified` comes back to opsd.
//!
//! # Order and backpressure
//!
//! Messages for opsd go out in three tiers, each only when the one before
//! is empty: the outbox (webhook outcomes, then answers and converted
//! events, FIFO), then pending resends (log ranges opsd asked for again,
//! read from the files chunk by chunk as the window allows), then a new
//! `Supervisor::poll`. When the
//! link's window is full nothing is taken from the supervisor: its files
//! keep everything, and the outbox holds at most one poll's events.
//!
//! # Forgetting jobs
//!
//! The endpoint keeps unacknowledged messages in order, so the pump can
//! tell when the `n`-th message sent was acknowledged
//! ([`LinkPump::acked`]). A job is [forgotten](Supervisor::forget) (its
//! directory deleted) only once its `Exited`/`Lost` has been acknowledged
//! by opsd's endpoint. A bridge restart before that re-adopts the job and
//! reports its end again; opsd's job ids make the repeat harmless.
//!
//! # Restarts and log offsets
//!
//! The supervisor's delivered offsets advance when it reports bytes, which
//! may be before they crossed the link. After a bridge restart opsd sends
//! `LogResend { from: its end }` per stream of its running jobs; the bridge
//! resends `[from, sent_upto)`, where `sent_upto` is the end of what this
//! bridge has already queued for the link (for a re-adopted job: the
//! supervisor's delivered offset), and `poll` continues from there. opsd
//! appends only at its end (a duplicate is dropped, a gap asked for once),
//! so the log it assembles has every byte exactly once.

//!
//! # A restarted opsd
//!
//! opsd keeps no jobs across its own restarts yet (issue 5 stores them), and
//! its job ids start at 1 again. So the supervisor records which opsd
//! incarnation its jobs belong to (`StateFile::owner`); a session Hello
//! from another incarnation makes every job it has an orphan: stopped (its
//! own grace), never reported, forgotten once ended. A `Start` of the new
//! opsd for an id an orphan still holds waits until that orphan has ended.
//! The outcomes of the old opsd's notifications are dropped (the new one's
//! ids may be the same).
//!
//! # Webhook outcomes
//!
//! A `Notified` waits in its own queue while the link is down or its window
//! full, at most [`NOTIFIED_MAX`] (past that the oldest is dropped, with a
//! warning).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use aether_abi::job::{self as abi, JobReply, JobRequest, LOG_CHUNK_MAX, LogChunk, TerminationReason};
use aether_abi::link::{EXPORT_CHUNK_MAX, LinkMessage};

use crate::artifacts::Artifacts;
use crate::artifacts::api::{BytesPart, FetchRequest};
use crate::link::LinkPump;
use crate::supervisor::{Error, Event, JobSpec, JobState, Stream, Supervisor};
use crate::webhook::{Outcome, WebhookConfig, Webhooks};
use crate::{ExitReason, JobMetric};

/// One part of opsd's answer to an `Export` (`LinkMessage::ExportChunk`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExportChunk {
    pub id: u32,
    /// The answer's last part.
    pub last: bool,
    /// False: opsd does not know the job.
    pub found: bool,
    pub text: Box<heapless::Vec<u8, EXPORT_CHUNK_MAX>>,
}

/// The most `Notified` messages waiting for the link.
pub const NOTIFIED_MAX: usize = 1024;

/// A log range to send again.
#[derive(Clone, Copy, Debug)]
struct Resend {
    job_id: u64,
    stream: Stream,
    next: u64,
    end: u64,
}

/// The host bridge: a supervisor driven over the link.
pub struct Bridge {
    supervisor: Supervisor,
    pump: LinkPump,
    outbox: VecDeque<LinkMessage>,
    resends: VecDeque<Resend>,
    /// Per job and stream: the end of the log bytes queued for the link.
    sent_upto: BTreeMap<(u64, Stream), u64>,
    /// Jobs whose end went out as the `n`-th message: forgotten once
    /// acknowledged.
    to_forget: Vec<(u64, u64)>,
    /// The id of the next `Api` or `Export` request (one sequence: an id
    /// names one request of either kind).
    next_api_id: u32,
    /// opsd's answers to `Api` requests, until taken.
    api_replies: Vec<(u32, JobReply)>,
    /// Parts of opsd's answers to `Export` requests, until taken.
    export_chunks: Vec<ExportChunk>,
    /// Jobs of an earlier opsd incarnation: stopped, not reported.
    orphans: BTreeSet<u64>,
    /// Starts waiting for an orphan of the same id to end.
    deferred: BTreeMap<u64, abi::JobSpec>,
    /// The files jobs make, offered and sent to opsd.
    artifacts: Artifacts,
    /// Parts of opsd's answers to `ArtifactFetch`, until taken.
    artifact_bytes: Vec<BytesPart>,
    /// Warnings from before the first poll (reading the artifacts' state).
    early_warnings: Vec<String>,
    /// The sender of opsd's `Notify`s.
    webhooks: Webhooks,
    /// Their outcomes waiting for the link (at most [`NOTIFIED_MAX`]).
    notified: VecDeque<Outcome>,
    /// The incarnation of the opsd of this session (0 before its Hello): a
    /// notification's origin.
    opsd: u64,
    now_ms: u64,
}

impl Bridge {
    /// A bridge over a supervisor (which may have re-adopted jobs) and a
    /// link pump, sending webhooks with the default configuration.
    pub fn new(supervisor: Supervisor, pump: LinkPump) -> Bridge {
        Bridge::with_webhooks(supervisor, pump, WebhookConfig::default())
    }

    /// [`Bridge::new`] with the webhook sender's timeouts and bounds given.
    pub fn with_webhooks(supervisor: Supervisor, pump: LinkPump, webhooks: WebhookConfig) -> Bridge {
        let mut sent_upto = BTreeMap::new();
        let mut early_warnings = Vec::new();
        let mut artifacts = Artifacts::open(supervisor.state_dir(), &mut early_warnings);
        for job in supervisor.jobs() {
            sent_upto.insert((job.job_id, Stream::Stdout), job.stdout_offset);
            sent_upto.insert((job.job_id, Stream::Stderr), job.stderr_offset);
            artifacts.watch(job.job_id, &job.job_dir);
        }
        Bridge {
            supervisor,
            pump,
            outbox: VecDeque::new(),
            resends: VecDeque::new(),
            sent_upto,
            to_forget: Vec::new(),
            next_api_id: 1,
            api_replies: Vec::new(),
            export_chunks: Vec::new(),
            orphans: BTreeSet::new(),
            deferred: BTreeMap::new(),
            artifacts,
            artifact_bytes: Vec::new(),
            early_warnings,
            webhooks: Webhooks::new(webhooks),
            notified: VecDeque::new(),
            opsd: 0,
            now_ms: 0,
        }
    }

    /// Queues a request of the HTTP API for opsd (`LinkMessage::Api`); its
    /// answer comes back through [`Bridge::take_api_replies`] with the
    /// returned id.
    pub fn submit_api(&mut self, request: JobRequest) -> u32 {
        let id = self.api_id();
        self.outbox.push_back(LinkMessage::Api {
            id,
            request: Box::new(request),
        });
        id
    }

    /// Queues a request for the metrics' exposition text (`Export`: every
    /// job's, or `job_id`'s); its parts come back through
    /// [`Bridge::take_export_chunks`] with the returned id.
    pub fn submit_export(&mut self, job_id: Option<u64>) -> u32 {
        let id = self.api_id();
        self.outbox.push_back(LinkMessage::Export { id, job_id });
        id
    }

    /// Queues a fetch of a stored artifact version's bytes
    /// (`ArtifactFetch`); its parts come back through
    /// [`Bridge::take_artifact_bytes`] with the returned id.
    pub fn submit_fetch(&mut self, request: FetchRequest) -> u32 {
        let id = self.api_id();
        self.outbox.push_back(LinkMessage::ArtifactFetch {
            id,
            job_id: request.job_id,
            kind: request.kind,
            name: request.name,
            selector: request.selector,
            offset: request.offset,
        });
        id
    }

    /// Parts of opsd's answers to `ArtifactFetch` received since the last
    /// call, in their order.
    pub fn take_artifact_bytes(&mut self) -> Vec<BytesPart> {
        std::mem::take(&mut self.artifact_bytes)
    }

    /// The artifact transfers (files waiting to be hashed, offered, sent).
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    fn api_id(&mut self) -> u32 {
        let id = self.next_api_id;
        self.next_api_id = self.next_api_id.wrapping_add(1).max(1);
        id
    }

    /// opsd's answers to `Api` requests received since the last call.
    pub fn take_api_replies(&mut self) -> Vec<(u32, JobReply)> {
        std::mem::take(&mut self.api_replies)
    }

    /// Parts of opsd's answers to `Export` requests received since the
    /// last call, in their order.
    pub fn take_export_chunks(&mut self) -> Vec<ExportChunk> {
        std::mem::take(&mut self.export_chunks)
    }

    /// Shutting down for good: asks every running job to stop (its own
    /// grace); their ends go to opsd as usual, if it is still there.
    pub fn stop_all(&mut self) -> Vec<u64> {
        self.supervisor.stop_all()
    }

    /// Everything queued for opsd has been sent and acknowledged.
    pub fn is_flushed(&self) -> bool {
        self.outbox.is_empty()
            && self.notified.is_empty()
            && self.resends.is_empty()
            && self.pump.endpoint().queued() == 0
    }

    /// Notifications handed to the webhook sender and not answered yet.
    pub fn webhooks_pending(&self) -> usize {
        self.webhooks.pending()
    }

    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    pub fn pump(&self) -> &LinkPump {
        &self.pump
    }

    /// One round at `now_ms` (unix ms: it also stamps log chunks and
    /// metrics): link I/O, opsd's requests, then as many messages for opsd
    /// as the window takes. Returns warnings for the operator.
    pub fn poll(&mut self, now_ms: u64) -> Vec<String> {
        self.now_ms = now_ms;
        let mut warnings = std::mem::take(&mut self.early_warnings);
        for msg in self.pump.poll(now_ms) {
            self.handle(msg, &mut warnings);
        }
        for outcome in self.webhooks.take_outcomes() {
            self.push_notified(outcome, &mut warnings);
        }
        self.drain(&mut warnings);
        // Artifacts last: offers and chunks take what room is left (a
        // bounded part of the window), so nothing above waits for them.
        self.artifacts.poll(now_ms, &mut warnings);
        self.artifacts.drain(&mut self.pump, now_ms, &mut warnings);
        // Send what was queued now, not one poll later.
        for msg in self.pump.poll(now_ms) {
            self.handle(msg, &mut warnings);
        }
        self.forget_acknowledged(&mut warnings);
        warnings
    }

    /// A message from opsd.
    fn handle(&mut self, msg: LinkMessage, warnings: &mut Vec<String>) {
        match msg {
            LinkMessage::Start { job_id, spec } if self.orphans.contains(&job_id) => {
                self.deferred.insert(job_id, *spec);
            }
            LinkMessage::Start { job_id, spec } => self.start(job_id, &spec, warnings),
            LinkMessage::Stop { job_id, .. } if self.deferred.remove(&job_id).is_some() => {
                // Never started: stopped as it is.
                self.outbox.push_back(LinkMessage::Exited {
                    job_id,
                    exit_code: None,
                    signal: None,
                    forced: false,
                    ended_ms: self.now_ms,
                    reason: TerminationReason::Stopped,
                });
            }
            // An orphan of the same id stops on its own; not this job.
            LinkMessage::Stop { job_id, .. } if self.orphans.contains(&job_id) => {}
            LinkMessage::Stop { job_id, grace_ms } => match self.supervisor.stop(job_id, u64::from(grace_ms)) {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => warnings.push(format!("stop of job {job_id}: {e}")),
            },
            LinkMessage::LogResend { job_id, .. } if self.orphans.contains(&job_id) => {}
            LinkMessage::LogResend { job_id, stream, from } => {
                let stream = from_abi_stream(stream);
                if self.supervisor.status(job_id).is_none() {
                    warnings.push(format!("log resend for unknown job {job_id}"));
                    return;
                }
                let end = self.sent_upto.get(&(job_id, stream)).copied().unwrap_or(0);
                if from < end {
                    self.resends.push_back(Resend {
                        job_id,
                        stream,
                        next: from,
                        end,
                    });
                }
            }
            // The peer's session Hello: the same opsd reconciles by asking
            // (Start again, LogResend, Stop again); another one means the
            // jobs here are orphans.
            LinkMessage::Hello { incarnation, .. } => self.on_opsd(incarnation, warnings),
            LinkMessage::Notify { id, url, body } => {
                if let Err(refused) = self.webhooks.submit(self.opsd, id, &url, body.to_vec()) {
                    self.push_notified(refused, warnings);
                }
            }
            LinkMessage::ArtifactWant { transfer, offset } => {
                self.artifacts.on_want(transfer, offset, self.now_ms, warnings)
            }
            LinkMessage::ArtifactDone { transfer, outcome } => self.artifacts.on_done(transfer, outcome, warnings),
            LinkMessage::ArtifactBytes {
                id,
                version,
                size,
                digest,
                offset,
                last,
                error,
                bytes,
            } => self.artifact_bytes.push(BytesPart {
                id,
                version,
                size,
                digest,
                offset,
                last,
                error: error.map(|e| e.to_string()),
                bytes,
            }),
            LinkMessage::ApiReply { id, reply } => self.api_replies.push((id, *reply)),
            LinkMessage::ExportChunk { id, last, found, text } => {
                self.export_chunks.push(ExportChunk { id, last, found, text })
            }
            other => warnings.push(format!("unexpected message from opsd: {other:?}")),
        }
    }

    /// A notification's outcome for opsd: queued unless it was another
    /// opsd's, the oldest dropped when [`NOTIFIED_MAX`] wait.
    fn push_notified(&mut self, outcome: Outcome, warnings: &mut Vec<String>) {
        if outcome.origin != self.opsd {
            return;
        }
        if !outcome.delivered {
            warnings.push(format!(
                "webhook notification {} not delivered: {}",
                outcome.id, outcome.error
            ));
        }
        if self.notified.len() >= NOTIFIED_MAX
            && let Some(old) = self.notified.pop_front()
        {
            warnings.push(format!(
                "dropped the outcome of webhook notification {}: {NOTIFIED_MAX} wait for the link",
                old.id
            ));
        }
        self.notified.push_back(outcome);
    }

    /// A session with opsd `incarnation` began.
    fn on_opsd(&mut self, incarnation: u64, warnings: &mut Vec<String>) {
        if incarnation != self.opsd {
            self.opsd = incarnation;
            self.notified.retain(|o| o.origin == incarnation);
        }
        self.artifacts
            .on_session(incarnation, self.supervisor.owner(), warnings);
        match self.supervisor.owner() {
            Some(owner) if owner != incarnation => {
                let ids: Vec<u64> = self.supervisor.jobs().iter().map(|j| j.job_id).collect();
                if !ids.is_empty() {
                    warnings.push(format!(
                        "opsd restarted: stopping the {} job(s) of its previous run",
                        ids.len()
                    ));
                }
                self.supervisor.stop_all();
                for &id in &ids {
                    self.orphans.insert(id);
                    self.sent_upto.remove(&(id, Stream::Stdout));
                    self.sent_upto.remove(&(id, Stream::Stderr));
                }
                self.to_forget.retain(|&(_, id)| !ids.contains(&id));
                self.resends.retain(|r| !ids.contains(&r.job_id));
                self.outbox.retain(|m| job_of(m).is_none_or(|id| !ids.contains(&id)));
                // Ended ones go at once.
                for id in ids {
                    if self
                        .supervisor
                        .status(id)
                        .is_some_and(|s| s.exit.is_some() || s.lost.is_some())
                    {
                        self.orphan_ended(id, warnings);
                    }
                }
            }
            _ => {}
        }
        if let Err(e) = self.supervisor.set_owner(incarnation) {
            warnings.push(format!("recording opsd's incarnation: {e}"));
        }
    }

    /// An orphan ended: forgotten, and a Start that waited for its id runs.
    fn orphan_ended(&mut self, job_id: u64, warnings: &mut Vec<String>) {
        self.orphans.remove(&job_id);
        if let Err(e) = self.supervisor.forget(job_id) {
            warnings.push(format!("forgetting orphan job {job_id}: {e}"));
        }
        if let Some(spec) = self.deferred.remove(&job_id) {
            self.start(job_id, &spec, warnings);
        }
    }

    fn start(&mut self, job_id: u64, spec: &abi::JobSpec, warnings: &mut Vec<String>) {
        match self.supervisor.status(job_id).map(|s| s.state) {
            // A repeated Start (opsd reconnecting): the job runs already. Say
            // so again: the first `Started` may have died with an earlier
            // bridge, leaving opsd to think the job is still pending.
            Some(JobState::Running | JobState::Stopping) => {
                if let Some(st) = self.supervisor.status(job_id) {
                    self.outbox.push_back(LinkMessage::Started {
                        job_id,
                        pid: st.pid as u32,
                        started_ms: st.started_ms,
                    });
                }
                return;
            }
            // A new attempt of an ended job (a retry reuses the id).
            Some(JobState::Exited | JobState::Lost) => {
                if let Err(e) = self.supervisor.forget(job_id) {
                    warnings.push(format!("forgetting job {job_id} before its new attempt: {e}"));
                }
                self.artifacts.forget_job(job_id);
                self.to_forget.retain(|&(_, id)| id != job_id);
                self.resends.retain(|r| r.job_id != job_id);
                // The previous attempt's messages still in the outbox would
                // be taken for the new attempt's.
                self.outbox.retain(|m| job_of(m) != Some(job_id));
            }
            None => {}
        }
        let msg = match self.supervisor.start(job_id, &to_supervisor_spec(spec)) {
            Ok(started) => {
                self.artifacts.watch(job_id, &self.supervisor.job_dir(job_id));
                self.sent_upto.insert((job_id, Stream::Stdout), 0);
                self.sent_upto.insert((job_id, Stream::Stderr), 0);
                LinkMessage::Started {
                    job_id,
                    pid: started.pid as u32,
                    started_ms: started.started_ms,
                }
            }
            Err(e) => {
                let text = match e {
                    Error::Spawn(m) => m,
                    other => other.to_string(),
                };
                LinkMessage::SpawnFailed {
                    job_id,
                    message: truncated(&text),
                }
            }
        };
        self.outbox.push_back(msg);
    }

    /// Sends while the window has room: outbox, resends, new events (one
    /// `Supervisor::poll` per round at most: a poll that only yields
    /// warnings must not spin).
    fn drain(&mut self, warnings: &mut Vec<String>) {
        let mut polled = false;
        loop {
            while let Some(outcome) = self.notified.front() {
                match self.pump.send(&outcome.to_message()) {
                    Ok(_) => {
                        self.notified.pop_front();
                    }
                    Err(_) => return,
                }
            }
            while let Some(msg) = self.outbox.front() {
                match self.pump.send(msg) {
                    Ok(n) => {
                        if let Some(msg) = self.outbox.pop_front()
                            && let LinkMessage::Exited { job_id, .. } | LinkMessage::Lost { job_id } = msg
                        {
                            self.to_forget.push((n, job_id));
                        }
                    }
                    Err(_) => return,
                }
            }
            if let Some(r) = self.resends.front_mut() {
                let want = (r.end - r.next).min(LOG_CHUNK_MAX as u64) as usize;
                match self.supervisor.read_log(r.job_id, r.stream, r.next, want) {
                    Ok((bytes, _)) if !bytes.is_empty() => {
                        let (job_id, stream, offset) = (r.job_id, r.stream, r.next);
                        r.next += bytes.len() as u64;
                        if r.next >= r.end {
                            self.resends.pop_front();
                        }
                        self.push_log(job_id, stream, offset, &bytes);
                    }
                    Ok(_) => {
                        self.resends.pop_front();
                    }
                    Err(e) => {
                        warnings.push(format!("log resend of job {}: {e}", r.job_id));
                        self.resends.pop_front();
                    }
                }
                continue;
            }
            if polled {
                return;
            }
            polled = true;
            let events = self.supervisor.poll();
            if events.is_empty() {
                return;
            }
            for event in events {
                self.push_event(event, warnings);
            }
        }
    }

    fn push_event(&mut self, event: Event, warnings: &mut Vec<String>) {
        let orphan = match &event {
            Event::Log { job_id, .. } | Event::Exited { job_id, .. } | Event::Lost { job_id, .. } => {
                Some(*job_id).filter(|id| self.orphans.contains(id))
            }
            Event::Metric(m) => Some(m.job_id).filter(|id| self.orphans.contains(id)),
            Event::Artifact { job_id, .. } => Some(*job_id).filter(|id| self.orphans.contains(id)),
            _ => None,
        };
        if let Some(id) = orphan {
            if matches!(event, Event::Exited { .. } | Event::Lost { .. }) {
                self.orphan_ended(id, warnings);
            }
            return;
        }
        match event {
            Event::Log {
                job_id,
                stream,
                offset,
                bytes,
            } => self.push_log(job_id, stream, offset, &bytes),
            Event::Metric(JobMetric { job_id, offset, point }) => self.outbox.push_back(LinkMessage::Metric {
                job_id,
                ts_ms: self.now_ms,
                offset,
                point: *point,
            }),
            Event::MalformedMetric { job_id, offset, error } => warnings.push(format!(
                "job {job_id}: malformed metric line at stdout offset {offset}: {error}"
            )),
            Event::Artifact { job_id, announce, .. } => self.artifacts.announce(job_id, *announce, warnings),
            Event::MalformedArtifact { job_id, offset, error } => warnings.push(format!(
                "job {job_id}: malformed artifact line at stdout offset {offset}: {error}"
            )),
            Event::Exited {
                job_id,
                exit_code,
                signal,
                forced,
                ended_ms,
                reason,
                ..
            } => {
                // Whatever the job left is taken before it can be forgotten.
                self.artifacts.job_ended(job_id, warnings);
                self.outbox.push_back(LinkMessage::Exited {
                    job_id,
                    exit_code,
                    signal,
                    forced,
                    ended_ms,
                    reason: termination_reason(reason, signal),
                })
            }
            Event::Lost { job_id, message } => {
                warnings.push(format!("job {job_id} lost: {message}"));
                self.artifacts.job_ended(job_id, warnings);
                self.outbox.push_back(LinkMessage::Lost { job_id });
            }
            Event::Warning { job_id, message } => warnings.push(match job_id {
                Some(id) => format!("job {id}: {message}"),
                None => message,
            }),
        }
    }

    /// Queues `bytes` (at `offset` of the stream) as `Log` chunks of at most
    /// [`LOG_CHUNK_MAX`] bytes.
    fn push_log(&mut self, job_id: u64, stream: Stream, offset: u64, bytes: &[u8]) {
        let mut at = offset;
        for piece in bytes.chunks(LOG_CHUNK_MAX) {
            let chunk = LogChunk {
                job_id,
                stream: to_abi_stream(stream),
                offset: at,
                ts_ms: self.now_ms,
                bytes: heapless::Vec::from_slice(piece).expect("a piece fits LOG_CHUNK_MAX"),
            };
            self.outbox.push_back(LinkMessage::Log(chunk));
            at += piece.len() as u64;
        }
        let end = self.sent_upto.entry((job_id, stream)).or_insert(0);
        *end = (*end).max(at);
    }

    fn forget_acknowledged(&mut self, warnings: &mut Vec<String>) {
        let acked = self.pump.acked();
        let mut i = 0;
        while i < self.to_forget.len() {
            let (n, job_id) = self.to_forget[i];
            if n > acked {
                i += 1;
                continue;
            }
            self.to_forget.swap_remove(i);
            match self.supervisor.forget(job_id) {
                Ok(()) | Err(Error::NotFound(_)) => {
                    self.artifacts.forget_job(job_id);
                    self.sent_upto.remove(&(job_id, Stream::Stdout));
                    self.sent_upto.remove(&(job_id, Stream::Stderr));
                }
                Err(e) => warnings.push(format!("forgetting job {job_id}: {e}")),
            }
        }
    }
}

/// The job a message for opsd is about.
fn job_of(msg: &LinkMessage) -> Option<u64> {
    match msg {
        LinkMessage::Started { job_id, .. }
        | LinkMessage::Metric { job_id, .. }
        | LinkMessage::Exited { job_id, .. }
        | LinkMessage::Lost { job_id }
        | LinkMessage::SpawnFailed { job_id, .. } => Some(*job_id),
        LinkMessage::Log(chunk) => Some(chunk.job_id),
        _ => None,
    }
}

/// opsd's spec as the supervisor takes it (the fields that matter on the
/// host; priority, stall and retries are opsd's business).
pub fn to_supervisor_spec(spec: &abi::JobSpec) -> JobSpec {
    JobSpec {
        argv: spec.entrypoint.iter().map(|a| a.as_str().to_string()).collect(),
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_str().to_string()))
            .collect(),
        cwd: spec.cwd.as_ref().map(|c| c.as_str().to_string()),
        grace_ms: u64::from(spec.grace_ms),
        timeout_ms: spec.timeout_ms.map(u64::from),
    }
}

pub fn to_abi_stream(stream: Stream) -> abi::Stream {
    match stream {
        Stream::Stdout => abi::Stream::Stdout,
        Stream::Stderr => abi::Stream::Stderr,
    }
}

pub fn from_abi_stream(stream: abi::Stream) -> Stream {
    match stream {
        abi::Stream::Stdout => Stream::Stdout,
        abi::Stream::Stderr => Stream::Stderr,
    }
}

/// How the shim's reason reads for opsd: a job that "exited" through a
/// signal it did not ask for was signaled.
pub fn termination_reason(reason: ExitReason, signal: Option<i32>) -> TerminationReason {
    match reason {
        ExitReason::Exited if signal.is_some() => TerminationReason::Signaled,
        ExitReason::Exited => TerminationReason::Exited,
        ExitReason::Stopped => TerminationReason::Stopped,
        ExitReason::TimedOut => TerminationReason::TimedOut,
        ExitReason::SpawnError => TerminationReason::SpawnFailed,
    }
}

/// `s` cut to fit `N` bytes, at a character boundary.
pub(crate) fn truncated<const N: usize>(s: &str) -> heapless::String<N> {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    heapless::String::try_from(&s[..end]).expect("cut to fit")
}
