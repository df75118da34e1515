//! Service calls: a framed syscall number whose requests a user process
//! answers instead of the kernel (opsd answers `JOB`). The kernel only
//! carries bytes: a client's request is copied in once and queued for the
//! service's server; the server takes it (`serve_next`), answers
//! (`serve_reply`), and the client, blocked meanwhile, gets the answer.
//! Bounded everywhere: a request and an answer are at most the sizes the
//! server declared, a service queues at most [`QUEUE`] calls. If the server
//! ends, its pending calls fail with `NoSuchService`; if a client ends, its
//! answer is dropped.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use aether_abi::syscall::{Errno, Pid};

use super::{Block, Kernel, State};

/// Calls a service queues before clients get `LimitReached`.
pub const QUEUE: usize = 64;
/// The largest request or answer a server may declare.
pub const MESSAGE_MAX: usize = 64 * 1024;

pub struct Service {
    pub server: Pid,
    pub request_max: usize,
    pub response_max: usize,
    /// Calls not yet taken by the server, oldest first.
    queue: VecDeque<u64>,
}

pub struct Call {
    client: Pid,
    service: u64,
    request: Vec<u8>,
    /// Set when the server answered (or the service went away).
    answer: Option<Result<Vec<u8>, Errno>>,
}

#[derive(Default)]
pub struct Services {
    by_number: BTreeMap<u64, Service>,
    calls: BTreeMap<u64, Call>,
    next_call: u64,
}

impl Services {
    pub fn new() -> Self {
        Services::default()
    }
}

impl Kernel {
    /// The current process becomes the server of service `number`.
    pub fn serve_register(&mut self, number: u64, request_max: usize, response_max: usize) -> Result<(), Errno> {
        if request_max == 0 || request_max > MESSAGE_MAX || response_max == 0 || response_max > MESSAGE_MAX {
            return Err(Errno::InvalidArgument);
        }
        let me = self.current;
        if let Some(s) = self.services.by_number.get(&number)
            && self.tasks.get(&s.server).is_some_and(|t| t.is_alive())
        {
            return Err(Errno::LimitReached);
        }
        self.services.by_number.insert(
            number,
            Service {
                server: me,
                request_max,
                response_max,
                queue: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Whether the current process serves `number` (a capability: the link
    /// belongs to the `JOB` server).
    pub fn serves(&self, number: u64) -> bool {
        self.services
            .by_number
            .get(&number)
            .is_some_and(|s| s.server == self.current)
    }

    /// The limits of service `number` (for the client's buffer checks).
    pub fn service_limits(&self, number: u64) -> Result<(usize, usize), Errno> {
        let s = self.services.by_number.get(&number).ok_or(Errno::NoSuchService)?;
        Ok((s.request_max, s.response_max))
    }

    /// Queues a request from the current process; the call's id.
    pub fn call_start(&mut self, number: u64, request: Vec<u8>) -> Result<u64, Errno> {
        let me = self.current;
        let s = self.services.by_number.get_mut(&number).ok_or(Errno::NoSuchService)?;
        if request.len() > s.request_max {
            return Err(Errno::TooLarge);
        }
        if s.queue.len() >= QUEUE {
            return Err(Errno::LimitReached);
        }
        let id = self.services.next_call;
        self.services.next_call += 1;
        s.queue.push_back(id);
        let server = s.server;
        self.services.calls.insert(
            id,
            Call {
                client: me,
                service: number,
                request,
                answer: None,
            },
        );
        if self
            .tasks
            .get(&server)
            .is_some_and(|t| t.state == State::Blocked(Block::Serve))
        {
            self.wake(server);
        }
        Ok(id)
    }

    /// The answer of call `id` if there is one yet (the call is then gone).
    pub fn call_poll(&mut self, id: u64) -> Option<Result<Vec<u8>, Errno>> {
        let done = self.services.calls.get(&id).is_some_and(|c| c.answer.is_some());
        if !done {
            return None;
        }
        self.services.calls.remove(&id).and_then(|c| c.answer)
    }

    /// The next request for the current process's service `number`:
    /// `(call id, request)`, or None when none is queued.
    pub fn serve_take(&mut self, number: u64) -> Result<Option<(u64, Vec<u8>)>, Errno> {
        let me = self.current;
        let s = self.services.by_number.get_mut(&number).ok_or(Errno::NoSuchService)?;
        if s.server != me {
            return Err(Errno::NoSuchService);
        }
        while let Some(id) = s.queue.pop_front() {
            // A call whose client ended meanwhile is skipped.
            if let Some(c) = self.services.calls.get_mut(&id) {
                return Ok(Some((id, core::mem::take(&mut c.request))));
            }
        }
        Ok(None)
    }

    /// The current process answers call `id`.
    pub fn serve_reply(&mut self, id: u64, answer: Vec<u8>) -> Result<(), Errno> {
        let me = self.current;
        let call = self.services.calls.get(&id).ok_or(Errno::InvalidArgument)?;
        let s = self.services.by_number.get(&call.service).ok_or(Errno::NoSuchService)?;
        if s.server != me || call.answer.is_some() {
            return Err(Errno::InvalidArgument);
        }
        if answer.len() > s.response_max {
            return Err(Errno::TooLarge);
        }
        let client = call.client;
        if let Some(c) = self.services.calls.get_mut(&id) {
            c.answer = Some(Ok(answer));
        }
        if self
            .tasks
            .get(&client)
            .is_some_and(|t| t.state == State::Blocked(Block::Call))
        {
            self.wake(client);
        }
        Ok(())
    }

    /// A process ended: the services it served fail their calls, and its
    /// own calls are forgotten.
    pub fn services_forget(&mut self, pid: Pid) {
        let gone: Vec<u64> = self
            .services
            .by_number
            .iter()
            .filter(|(_, s)| s.server == pid)
            .map(|(&n, _)| n)
            .collect();
        for n in &gone {
            self.services.by_number.remove(n);
        }
        let mut wake = Vec::new();
        self.services.calls.retain(|_, c| {
            if c.client == pid {
                return false;
            }
            if gone.contains(&c.service) && c.answer.is_none() {
                c.answer = Some(Err(Errno::NoSuchService));
                wake.push(c.client);
            }
            true
        });
        for client in wake {
            if self
                .tasks
                .get(&client)
                .is_some_and(|t| t.state == State::Blocked(Block::Call))
            {
                self.wake(client);
            }
        }
    }
}
