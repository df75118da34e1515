//! Console commands: the table (`help` prints it) and the parser from a line
//! to a [`Command`]. Commands that report or list accept `--json` and then
//! print one JSON document per line (a convention for every later command
//! too).
//!
//! Parsing never allocates: a [`Command`] borrows its words from the line.
//! Every bad input is one [`ParseError`], whose `Display` is the text after
//! `error: ` on the console.
//!
//! `job ...` commands (docs/console.md, "job") are two words: `job start`,
//! `job ls`, ...; each has its own row in [`COMMANDS`].

use core::fmt;

use aether_abi::job::{self, JobKind, Stream};
use aether_abi::syscall::{
    ARG_MAX, ARGS_MAX, DEFAULT_PRIORITY, GroupChoice, NAME_MAX, PRIORITY_LEVELS, Pgid, Target, WatchdogAction,
    WatchdogKind,
};

/// One row of the command table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub name: &'static str,
    pub usage: &'static str,
    pub summary: &'static str,
}

pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "help",
        usage: "help [--json]",
        summary: "list the commands",
    },
    Spec {
        name: "uptime",
        usage: "uptime [--json]",
        summary: "time since boot (monotonic ns) and the boot time",
    },
    Spec {
        name: "mem",
        usage: "mem [--json]",
        summary: "physical frames and kernel heap, used and free",
    },
    Spec {
        name: "echo",
        usage: "echo [WORDS..]",
        summary: "print the words",
    },
    Spec {
        name: "shutdown",
        usage: "shutdown",
        summary: "power the machine off",
    },
    Spec {
        name: "ps",
        usage: "ps [--json]",
        summary: "the process table",
    },
    Spec {
        name: "run",
        usage: "run [--prio P] [--group new|PGID] PROG [ARGS..] [&]",
        summary: "start a program (priority 0..=31, default 16; & = in the background)",
    },
    Spec {
        name: "kill",
        usage: "kill [-g] [--grace MS] PID|PGID",
        summary: "stop a process (-g: a group), terminating it after the grace (default 1000 ms)",
    },
    Spec {
        name: "watchdog",
        usage: "watchdog PGID --heartbeat MS|--deadline MS --action warn|stop|kill [--grace MS] | watchdog PGID --off",
        summary: "arm or disarm a group's watchdog",
    },
    Spec {
        name: "watchdog log",
        usage: "watchdog log [--json]",
        summary: "the recorded watchdog firings",
    },
    Spec {
        name: "events",
        usage: "events [--after ID] [--follow] [--json]",
        summary: "the event bus (jobs, alerts, watchdogs, faults) after event ID; --follow waits for more (Ctrl-C ends)",
    },
    Spec {
        name: "metrics",
        usage: "metrics [JOB] [NAME] [--history [--steps A..B | --time FROM_MS..TO_MS]] [--json]",
        summary: "metric series (of job JOB, named NAME): last, min, max, best; --history: the kept points (of steps A..B, or reported between two unix ms)",
    },
    Spec {
        name: "alerts",
        usage: "alerts [--json] | alerts reload",
        summary: "the alert rules and their firing alerts; reload: read /ops/rules.conf again",
    },
    Spec {
        name: "artifacts",
        usage: "artifacts ls [JOB] [--json] | artifacts get|pin|unpin JOB/KIND/NAME[@latest|@best|@vN] [--json] | artifacts reload",
        summary: "stored artifact versions; get checks the sha256 and says where the bytes are; pin keeps a version; reload reads /ops/artifacts.conf",
    },
    Spec {
        name: "routes",
        usage: "routes [--json] | routes reload",
        summary: "the alert routes and receivers, with delivery counts; reload: read /ops/routes.conf again",
    },
    Spec {
        name: "job start",
        usage: "job start [--name N] [--native] [--grace MS] [--timeout MS] [--stall MS] [--retries N] -- CMD [ARGS..]",
        summary: "submit a job to opsd: a host command (--native: an AetherOS program); prints its id",
    },
    Spec {
        name: "job ls",
        usage: "job ls [--json]",
        summary: "the jobs opsd knows",
    },
    Spec {
        name: "job status",
        usage: "job status ID [--json]",
        summary: "a job's record: status, exit, latest metrics",
    },
    Spec {
        name: "job logs",
        usage: "job logs ID [--stderr] [--offset N] [--follow]",
        summary: "a job's stdout (or stderr) from byte N; --follow polls until the job ends",
    },
    Spec {
        name: "job stop",
        usage: "job stop ID",
        summary: "stop a job (SIGTERM, the grace, then SIGKILL)",
    },
    Spec {
        name: "job wait",
        usage: "job wait ID [--json]",
        summary: "block until a job has ended, then print its status",
    },
    Spec {
        name: "ls",
        usage: "ls [PATH] [--json]",
        summary: "a directory's entries (default /): kind, size, name",
    },
    Spec {
        name: "cat",
        usage: "cat PATH",
        summary: "print a file",
    },
    Spec {
        name: "stat",
        usage: "stat PATH [--json]",
        summary: "a file's inode: kind, size, blocks, extents, times",
    },
    Spec {
        name: "df",
        usage: "df [--json]",
        summary: "the disk's blocks and inodes, used and free",
    },
    Spec {
        name: "cache",
        usage: "cache [--json] | cache --drop",
        summary: "the page cache: pages, hits, misses, readahead used/wasted, evictions, dirty; --drop empties it",
    },
    Spec {
        name: "mkdir",
        usage: "mkdir PATH",
        summary: "make a directory",
    },
    Spec {
        name: "rm",
        usage: "rm PATH",
        summary: "remove a file or an empty directory",
    },
    Spec {
        name: "mv",
        usage: "mv FROM TO",
        summary: "rename (atomically; a file at TO is replaced)",
    },
    Spec {
        name: "write",
        usage: "write [--append] PATH [TEXT..]",
        summary: "write the text and a newline to a file (replacing it, or at its end), then fsync",
    },
    Spec {
        name: "sync",
        usage: "sync",
        summary: "everything written so far to the disk",
    },
];

/// The words that may follow `job`.
pub const JOB_SUBCOMMANDS: &str = "start, ls, status, logs, stop, wait";

/// The most words after `job start ... --`, the command included
/// ([`job::ARGS_MAX`]).
pub const JOB_ARGS_MAX: usize = job::ARGS_MAX;

/// The grace of `kill` and of the watchdog's `stop` action when none is given.
pub const DEFAULT_GRACE_MS: u32 = 1000;

/// The arguments after `run PROG` (at most [`ARGS_MAX`] words) or the argv
/// after `job start ... --` (at most [`JOB_ARGS_MAX`]), borrowed from the
/// line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgList<'a, const N: usize = ARGS_MAX> {
    words: [&'a str; N],
    len: usize,
}

impl<'a, const N: usize> ArgList<'a, N> {
    pub const fn new() -> Self {
        ArgList { words: [""; N], len: 0 }
    }

    /// Appends `word`; false (and unchanged) when full.
    fn push(&mut self, word: &'a str) -> bool {
        match self.words.get_mut(self.len) {
            Some(slot) => {
                *slot = word;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn as_slice(&self) -> &[&'a str] {
        &self.words[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for ArgList<'_, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// `run`: what to spawn and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run<'a> {
    /// At most [`NAME_MAX`] bytes.
    pub program: &'a str,
    /// Each at most [`ARG_MAX`] bytes.
    pub args: ArgList<'a>,
    /// 0 (highest) ..= 31; [`DEFAULT_PRIORITY`] unless `--prio`.
    pub priority: u8,
    /// [`GroupChoice::New`] (the default: a job is its own group) or
    /// [`GroupChoice::Join`].
    pub group: GroupChoice,
    /// A trailing `&`: do not wait for it.
    pub background: bool,
}

/// `watchdog PGID ...`: arm or disarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchdogSetting {
    Arm { kind: WatchdogKind, action: WatchdogAction },
    Off,
}

/// `job start`: a [`job::JobSpec`] in words borrowed from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobStart<'a> {
    /// `--name`, or the command's basename cut to [`job::NAME_MAX`] bytes.
    pub name: &'a str,
    /// [`JobKind::Host`], or [`JobKind::Native`] with `--native`.
    pub kind: JobKind,
    /// [`job::DEFAULT_GRACE_MS`] unless `--grace`.
    pub grace_ms: u32,
    /// At least 1 when given.
    pub timeout_ms: Option<u32>,
    pub stall_ms: Option<u32>,
    pub max_retries: u8,
    /// Everything after `--`: the command first, then its arguments (each at
    /// most [`job::ARG_MAX`] bytes; never empty).
    pub argv: ArgList<'a, JOB_ARGS_MAX>,
}

/// `job SUBCOMMAND ...`.
// `Start` carries the whole argv (32 borrowed words) on purpose: parsing
// does not allocate.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobCommand<'a> {
    Start(JobStart<'a>),
    List {
        json: bool,
    },
    Status {
        job_id: u64,
        json: bool,
    },
    Logs {
        job_id: u64,
        stream: Stream,
        offset: u64,
        follow: bool,
    },
    Stop {
        job_id: u64,
    },
    Wait {
        job_id: u64,
        json: bool,
    },
}

// `Job` is the big one (see [`JobCommand`]).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// An empty or blank line.
    Nothing,
    Help {
        json: bool,
    },
    Uptime {
        json: bool,
    },
    Mem {
        json: bool,
    },
    /// The words after `echo`, as typed (inner spacing kept).
    Echo {
        rest: &'a str,
    },
    Shutdown,
    Ps {
        json: bool,
    },
    Run(Run<'a>),
    /// `kill PID` ([`Target::Process`]) or `kill -g PGID` ([`Target::Group`]).
    Kill {
        target: Target,
        grace_ms: u32,
    },
    Watchdog {
        pgid: Pgid,
        setting: WatchdogSetting,
    },
    /// `watchdog log`: the kernel's record of watchdog firings.
    WatchdogLog {
        json: bool,
    },
    /// The event bus, from event `after + 1`.
    Events {
        after: u64,
        follow: bool,
        json: bool,
    },
    Metrics {
        job_id: Option<u64>,
        name: Option<&'a str>,
        history: bool,
        /// `--steps A..B` (inclusive).
        steps: Option<(u64, u64)>,
        /// `--time FROM_MS..TO_MS` (unix ms, inclusive).
        time: Option<(u64, u64)>,
        json: bool,
    },
    Alerts {
        json: bool,
    },
    AlertsReload,
    Routes {
        json: bool,
    },
    ArtifactsList {
        job_id: Option<u64>,
        json: bool,
    },
    /// `get` (`pin: None`), `pin` or `unpin` of one version.
    Artifact {
        spec: ArtifactSpec<'a>,
        pin: Option<bool>,
        json: bool,
    },
    ArtifactsReload,
    RoutesReload,
    /// `job start|ls|status|logs|stop|wait ...`: requests to opsd.
    Job(JobCommand<'a>),
    Ls {
        path: &'a str,
        json: bool,
    },
    Cat {
        path: &'a str,
    },
    Stat {
        path: &'a str,
        json: bool,
    },
    Df {
        json: bool,
    },
    Cache {
        json: bool,
    },
    /// `cache --drop`.
    DropCache,
    Mkdir {
        path: &'a str,
    },
    Rm {
        path: &'a str,
    },
    Mv {
        from: &'a str,
        to: &'a str,
    },
    /// The text as typed after the path (inner spacing kept).
    Write {
        path: &'a str,
        append: bool,
        text: &'a str,
    },
    Sync,
}

/// `JOB/KIND/NAME[@SELECTOR]` (the selector `latest` when left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArtifactSpec<'a> {
    pub job_id: u64,
    pub kind: &'a str,
    pub name: &'a str,
    pub selector: &'a str,
}

/// What is wrong with an option's or a positional argument's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueProblem {
    /// Not all decimal digits (or empty).
    NotANumber,
    /// `-` followed by digits.
    Negative,
    /// Above `max` (`u32::MAX` for most values, `u64::MAX` for job ids
    /// and offsets).
    TooBig { max: u64 },
    /// A number outside `min..=max` (`max == u32::MAX`: only a minimum).
    OutOfRange { min: u32, max: u32 },
    /// Not one of the words (or forms) listed.
    Expected(&'static str),
}

impl fmt::Display for ValueProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueProblem::NotANumber => f.write_str("expected a decimal number"),
            ValueProblem::Negative => f.write_str("must not be negative"),
            ValueProblem::TooBig { max } => write!(f, "too large (the most is {max})"),
            ValueProblem::OutOfRange { min, max: u32::MAX } => write!(f, "must be at least {min}"),
            ValueProblem::OutOfRange { min, max } => write!(f, "must be {min}..={max}"),
            ValueProblem::Expected(what) => write!(f, "expected {what}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    Unknown(&'a str),
    /// A word the command does not take (an extra positional, a second `--json`).
    UnexpectedArgument {
        command: &'static str,
        argument: &'a str,
    },
    /// A word starting with `-` that is no option of the command.
    UnknownOption {
        command: &'static str,
        option: &'a str,
    },
    /// An option that takes a value came last or before another option.
    MissingValue {
        command: &'static str,
        option: &'static str,
    },
    /// `what` is an option (`--prio`) or a positional (`PID`).
    BadValue {
        command: &'static str,
        what: &'static str,
        value: &'a str,
        problem: ValueProblem,
    },
    Duplicate {
        command: &'static str,
        option: &'static str,
    },
    /// A required positional or option is absent.
    Missing {
        command: &'static str,
        what: &'static str,
    },
    /// Two options that exclude each other.
    Conflict {
        command: &'static str,
        first: &'static str,
        second: &'static str,
    },
    /// `option` only makes sense with `needs`.
    Requires {
        command: &'static str,
        option: &'static str,
        needs: &'static str,
    },
    /// The program name is longer than [`NAME_MAX`].
    ProgramTooLong {
        len: usize,
    },
    /// Argument `index` (from 1) is longer than [`ARG_MAX`].
    ArgTooLong {
        index: usize,
        len: usize,
    },
    /// More than [`ARGS_MAX`] arguments.
    TooManyArgs {
        count: usize,
    },
    /// `job` alone.
    MissingSubcommand {
        command: &'static str,
    },
    /// `job bogus`.
    UnknownSubcommand {
        command: &'static str,
        sub: &'a str,
    },
    /// A word of `job start` before `--` that is no option: the command
    /// must come after `--`.
    BeforeSeparator {
        command: &'static str,
        word: &'a str,
    },
    /// `job start --name` longer than [`job::NAME_MAX`].
    JobNameTooLong {
        len: usize,
    },
    /// `argv[index]` of `job start` (0 = the command) is longer than
    /// [`job::ARG_MAX`].
    JobArgTooLong {
        index: usize,
        len: usize,
    },
    /// More than [`JOB_ARGS_MAX`] words after `job start ... --`.
    JobTooManyArgs {
        count: usize,
    },
}

fn usage(command: &str) -> &'static str {
    COMMANDS.iter().find(|s| s.name == command).map_or("", |s| s.usage)
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParseError::Unknown(name) => write!(f, "unknown command '{name}' (try 'help')"),
            ParseError::UnexpectedArgument { command, argument } => {
                write!(
                    f,
                    "{command}: unexpected argument '{argument}' (usage: {})",
                    usage(command)
                )
            }
            ParseError::UnknownOption { command, option } => {
                write!(f, "{command}: unknown option '{option}' (usage: {})", usage(command))
            }
            ParseError::MissingValue { command, option } => write!(f, "{command}: {option} needs a value"),
            ParseError::BadValue {
                command,
                what,
                value,
                problem,
            } => write!(f, "{command}: bad {what} '{value}': {problem}"),
            ParseError::Duplicate { command, option } => write!(f, "{command}: {option} given twice"),
            ParseError::Missing { command, what } => {
                write!(f, "{command}: missing {what} (usage: {})", usage(command))
            }
            ParseError::Conflict { command, first, second } => {
                write!(f, "{command}: {first} and {second} exclude each other")
            }
            ParseError::Requires { command, option, needs } => {
                write!(f, "{command}: {option} only applies with {needs}")
            }
            ParseError::ProgramTooLong { len } => {
                write!(
                    f,
                    "run: program name is {len} bytes, the limit is {NAME_MAX} (NAME_MAX)"
                )
            }
            ParseError::ArgTooLong { index, len } => {
                write!(
                    f,
                    "run: argument {index} is {len} bytes, the limit is {ARG_MAX} (ARG_MAX)"
                )
            }
            ParseError::TooManyArgs { count } => {
                write!(f, "run: {count} arguments, the limit is {ARGS_MAX} (ARGS_MAX)")
            }
            ParseError::MissingSubcommand { command } => {
                write!(f, "{command}: missing subcommand ({JOB_SUBCOMMANDS}; try 'help')")
            }
            ParseError::UnknownSubcommand { command, sub } => {
                let subs = if command == "artifacts" {
                    "ls, get, pin, unpin, reload"
                } else {
                    JOB_SUBCOMMANDS
                };
                write!(f, "{command}: unknown subcommand '{sub}' ({subs}; try 'help')")
            }
            ParseError::BeforeSeparator { command, word } => write!(
                f,
                "{command}: '{word}' before '--': options first, then '-- CMD [ARGS..]' (usage: {})",
                usage(command)
            ),
            ParseError::JobNameTooLong { len } => write!(
                f,
                "job start: --name is {len} bytes, the limit is {} (NAME_MAX)",
                job::NAME_MAX
            ),
            ParseError::JobArgTooLong { index, len } => write!(
                f,
                "job start: argv[{index}] is {len} bytes, the limit is {} (ARG_MAX)",
                job::ARG_MAX
            ),
            ParseError::JobTooManyArgs { count } => write!(
                f,
                "job start: {count} words after '--', the limit is {JOB_ARGS_MAX} (ARGS_MAX, the command included)"
            ),
        }
    }
}

/// Splits on ASCII whitespace.
pub fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split_ascii_whitespace()
}

/// Accepts only an optional `--json` flag.
fn json_flag<'a>(command: &'static str, args: impl Iterator<Item = &'a str>) -> Result<bool, ParseError<'a>> {
    let mut json = false;
    for a in args {
        match a {
            "--json" if !json => json = true,
            _ => return Err(ParseError::UnexpectedArgument { command, argument: a }),
        }
    }
    Ok(json)
}

/// `PATH [--json]` (`PATH` optional when `default` is given).
fn path_and_json<'a>(
    command: &'static str,
    default: Option<&'static str>,
    args: impl Iterator<Item = &'a str>,
) -> Result<(&'a str, bool), ParseError<'a>> {
    let (mut path, mut json) = (None, false);
    for a in args {
        match a {
            "--json" if !json => json = true,
            _ if is_option(a) => return Err(ParseError::UnknownOption { command, option: a }),
            _ if path.is_none() => path = Some(a),
            _ => return Err(ParseError::UnexpectedArgument { command, argument: a }),
        }
    }
    match path.or(default) {
        Some(p) => Ok((p, json)),
        None => Err(ParseError::Missing { command, what: "PATH" }),
    }
}

/// Exactly `n` positionals, no options.
fn positionals<'a, const N: usize>(
    command: &'static str,
    names: [&'static str; N],
    args: impl Iterator<Item = &'a str>,
) -> Result<[&'a str; N], ParseError<'a>> {
    let mut out = [""; N];
    let mut n = 0;
    for a in args {
        if is_option(a) {
            return Err(ParseError::UnknownOption { command, option: a });
        }
        if n == N {
            return Err(ParseError::UnexpectedArgument { command, argument: a });
        }
        out[n] = a;
        n += 1;
    }
    if n < N {
        return Err(ParseError::Missing {
            command,
            what: names[n],
        });
    }
    Ok(out)
}

/// `write [--append] PATH [TEXT..]`: the text is the rest of the line
/// after the path, as typed.
fn parse_write(rest: &str) -> Result<Command<'_>, ParseError<'_>> {
    const CMD: &str = "write";
    let mut rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let mut append = false;
    let (path, text) = loop {
        let (word, after) = rest.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((rest, ""));
        match word {
            "" => {
                return Err(ParseError::Missing {
                    command: CMD,
                    what: "PATH",
                });
            }
            "--append" if !append => append = true,
            "--append" => {
                return Err(ParseError::Duplicate {
                    command: CMD,
                    option: "--append",
                });
            }
            w if is_option(w) => {
                return Err(ParseError::UnknownOption {
                    command: CMD,
                    option: w,
                });
            }
            w => break (w, after.trim_start_matches(|c: char| c.is_ascii_whitespace())),
        }
        rest = after.trim_start_matches(|c: char| c.is_ascii_whitespace());
    };
    Ok(Command::Write { path, append, text })
}

/// `-` followed by one or more digits: a negative number, not an option.
fn is_negative_number(w: &str) -> bool {
    w.strip_prefix('-')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A word that names an option (as opposed to a value or positional).
fn is_option(w: &str) -> bool {
    w.starts_with('-') && w.len() > 1 && !is_negative_number(w)
}

/// A decimal number of at most `max`: digits only (no sign, no spaces, no
/// `0x`).
fn number_upto(value: &str, max: u64) -> Result<u64, ValueProblem> {
    if is_negative_number(value) {
        return Err(ValueProblem::Negative);
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueProblem::NotANumber);
    }
    let mut n: u64 = 0;
    for b in value.bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .filter(|n| *n <= max)
            .ok_or(ValueProblem::TooBig { max })?;
    }
    Ok(n)
}

/// A decimal `u32`.
fn number(value: &str) -> Result<u32, ValueProblem> {
    let n = number_upto(value, u64::from(u32::MAX))?;
    u32::try_from(n).map_err(|_| ValueProblem::TooBig {
        max: u64::from(u32::MAX),
    })
}

/// A number in `min..=max`.
fn ranged(value: &str, min: u32, max: u32) -> Result<u32, ValueProblem> {
    let n = number(value)?;
    if n < min || n > max {
        return Err(ValueProblem::OutOfRange { min, max });
    }
    Ok(n)
}

/// Walks a command's words, handing out option values.
struct Words<'a, I: Iterator<Item = &'a str>> {
    command: &'static str,
    iter: core::iter::Peekable<I>,
}

impl<'a, I: Iterator<Item = &'a str>> Words<'a, I> {
    fn new(command: &'static str, iter: I) -> Self {
        Words {
            command,
            iter: iter.peekable(),
        }
    }

    fn next(&mut self) -> Option<&'a str> {
        self.iter.next()
    }

    /// The value of `option`: the next word, unless there is none or it is
    /// another option.
    fn value(&mut self, option: &'static str) -> Result<&'a str, ParseError<'a>> {
        match self.iter.peek() {
            Some(w) if !is_option(w) => Ok(self.iter.next().unwrap_or_default()),
            _ => Err(ParseError::MissingValue {
                command: self.command,
                option,
            }),
        }
    }

    /// The value of `option` as a number in `min..=max`.
    fn number(&mut self, option: &'static str, min: u32, max: u32) -> Result<u32, ParseError<'a>> {
        let value = self.value(option)?;
        ranged(value, min, max).map_err(|problem| self.bad(option, value, problem))
    }

    fn bad(&self, what: &'static str, value: &'a str, problem: ValueProblem) -> ParseError<'a> {
        ParseError::BadValue {
            command: self.command,
            what,
            value,
            problem,
        }
    }

    /// Fails if `slot` is already set, for `option`.
    fn once<T>(&self, slot: &Option<T>, option: &'static str) -> Result<(), ParseError<'a>> {
        match slot {
            Some(_) => Err(ParseError::Duplicate {
                command: self.command,
                option,
            }),
            None => Ok(()),
        }
    }

    /// The one positional id (`PID`, `PGID`): a number of at least 1.
    fn id(&self, what: &'static str, value: &'a str) -> Result<u32, ParseError<'a>> {
        ranged(value, 1, u32::MAX).map_err(|problem| self.bad(what, value, problem))
    }

    /// A job id: a `u64` of at least 1.
    fn job_id(&self, value: &'a str) -> Result<u64, ParseError<'a>> {
        match number_upto(value, u64::MAX) {
            Ok(0) => Err(self.bad("ID", value, ValueProblem::OutOfRange { min: 1, max: u32::MAX })),
            Ok(n) => Ok(n),
            Err(problem) => Err(self.bad("ID", value, problem)),
        }
    }

    /// The value of `option` as a `u64`.
    fn number64(&mut self, option: &'static str) -> Result<u64, ParseError<'a>> {
        let value = self.value(option)?;
        number_upto(value, u64::MAX).map_err(|problem| self.bad(option, value, problem))
    }

    /// A flag given at most once.
    fn flag(&self, slot: &mut Option<()>, option: &'static str) -> Result<(), ParseError<'a>> {
        self.once(slot, option)?;
        *slot = Some(());
        Ok(())
    }
}

/// The highest priority number (the lowest priority).
const PRIORITY_MAX: u32 = PRIORITY_LEVELS as u32 - 1;

fn parse_run<'a>(args: impl Iterator<Item = &'a str>) -> Result<Command<'a>, ParseError<'a>> {
    let mut w = Words::new("run", args);
    let mut priority = None;
    let mut group = None;
    // Options, up to the program name.
    let program = loop {
        let Some(word) = w.next() else {
            return Err(ParseError::Missing {
                command: "run",
                what: "PROG",
            });
        };
        match word {
            "--prio" => {
                w.once(&priority, "--prio")?;
                priority = Some(w.number("--prio", 0, PRIORITY_MAX)?);
            }
            "--group" => {
                w.once(&group, "--group")?;
                let value = w.value("--group")?;
                group = Some(if value == "new" {
                    GroupChoice::New
                } else {
                    let problem = |p| match p {
                        ValueProblem::NotANumber => ValueProblem::Expected("'new' or a PGID"),
                        p => p,
                    };
                    GroupChoice::Join(ranged(value, 1, u32::MAX).map_err(|p| w.bad("--group", value, problem(p)))?)
                });
            }
            "&" => {
                return Err(ParseError::Missing {
                    command: "run",
                    what: "PROG",
                });
            }
            _ if word.starts_with('-') => {
                return Err(ParseError::UnknownOption {
                    command: "run",
                    option: word,
                });
            }
            _ => break word,
        }
    };
    if program.len() > NAME_MAX {
        return Err(ParseError::ProgramTooLong { len: program.len() });
    }
    // Everything after the program is an argument, but a final lone `&`.
    let mut rest = w.iter;
    let mut list = ArgList::new();
    let mut count = 0;
    let mut background = false;
    while let Some(arg) = rest.next() {
        if arg == "&" && rest.peek().is_none() {
            background = true;
            break;
        }
        count += 1;
        if arg.len() > ARG_MAX {
            return Err(ParseError::ArgTooLong {
                index: count,
                len: arg.len(),
            });
        }
        if !list.push(arg) {
            // Count them all for the message (the `&` is no argument).
            let more = rest.filter(|a| *a != "&").count();
            return Err(ParseError::TooManyArgs { count: count + more });
        }
    }
    Ok(Command::Run(Run {
        program,
        args: list,
        // In 0..=31 by the parse.
        priority: priority.map_or(DEFAULT_PRIORITY, |p| p as u8),
        group: group.unwrap_or(GroupChoice::New),
        background,
    }))
}

fn parse_kill<'a>(args: impl Iterator<Item = &'a str>) -> Result<Command<'a>, ParseError<'a>> {
    let mut w = Words::new("kill", args);
    let mut group = None;
    let mut grace = None;
    let mut id = None;
    let mut extra = None;
    while let Some(word) = w.next() {
        match word {
            "-g" => {
                w.once(&group, "-g")?;
                group = Some(());
            }
            "--grace" => {
                w.once(&grace, "--grace")?;
                grace = Some(w.number("--grace", 0, u32::MAX)?);
            }
            _ if is_option(word) => {
                return Err(ParseError::UnknownOption {
                    command: "kill",
                    option: word,
                });
            }
            // Reported after the id is checked: `kill -9 3` is about the -9.
            _ if id.is_some() => extra = extra.or(Some(word)),
            _ => id = Some(word),
        }
    }
    let what = if group.is_some() { "PGID" } else { "PID" };
    let id = id.ok_or(ParseError::Missing { command: "kill", what })?;
    let id = w.id(what, id)?;
    if let Some(argument) = extra {
        return Err(ParseError::UnexpectedArgument {
            command: "kill",
            argument,
        });
    }
    Ok(Command::Kill {
        target: if group.is_some() {
            Target::Group(id)
        } else {
            Target::Process(id)
        },
        grace_ms: grace.unwrap_or(DEFAULT_GRACE_MS),
    })
}

#[derive(Clone, Copy)]
enum ActionWord {
    Warn,
    Stop,
    Kill,
}

fn parse_watchdog<'a>(args: impl Iterator<Item = &'a str>) -> Result<Command<'a>, ParseError<'a>> {
    const CMD: &str = "watchdog";
    let mut w = Words::new(CMD, args);
    let mut pgid = None;
    let mut kind: Option<(&'static str, WatchdogKind)> = None;
    let mut action = None;
    let mut grace = None;
    let mut off = None;
    let mut extra = None;
    while let Some(word) = w.next() {
        match word {
            "--heartbeat" | "--deadline" => {
                let (option, other) = if word == "--heartbeat" {
                    ("--heartbeat", "--deadline")
                } else {
                    ("--deadline", "--heartbeat")
                };
                match kind {
                    Some((seen, _)) if seen == option => {
                        return Err(ParseError::Duplicate { command: CMD, option });
                    }
                    Some(_) => {
                        return Err(ParseError::Conflict {
                            command: CMD,
                            first: other,
                            second: option,
                        });
                    }
                    None => {}
                }
                let ms = w.number(option, 1, u32::MAX)?;
                kind = Some((
                    option,
                    if option == "--heartbeat" {
                        WatchdogKind::Heartbeat { period_ms: ms }
                    } else {
                        WatchdogKind::Deadline { within_ms: ms }
                    },
                ));
            }
            "--action" => {
                w.once(&action, "--action")?;
                let value = w.value("--action")?;
                action = Some(match value {
                    "warn" => ActionWord::Warn,
                    "stop" => ActionWord::Stop,
                    "kill" => ActionWord::Kill,
                    _ => return Err(w.bad("--action", value, ValueProblem::Expected("warn, stop or kill"))),
                });
            }
            "--grace" => {
                w.once(&grace, "--grace")?;
                grace = Some(w.number("--grace", 0, u32::MAX)?);
            }
            "--off" => {
                w.once(&off, "--off")?;
                off = Some(());
            }
            _ if is_option(word) => {
                return Err(ParseError::UnknownOption {
                    command: CMD,
                    option: word,
                });
            }
            _ if pgid.is_some() => extra = extra.or(Some(word)),
            _ => pgid = Some(word),
        }
    }
    let pgid = pgid.ok_or(ParseError::Missing {
        command: CMD,
        what: "PGID",
    })?;
    let pgid = w.id("PGID", pgid)?;
    if let Some(argument) = extra {
        return Err(ParseError::UnexpectedArgument { command: CMD, argument });
    }
    if off.is_some() {
        let other = if let Some((option, _)) = kind {
            Some(option)
        } else if action.is_some() {
            Some("--action")
        } else if grace.is_some() {
            Some("--grace")
        } else {
            None
        };
        if let Some(second) = other {
            return Err(ParseError::Conflict {
                command: CMD,
                first: "--off",
                second,
            });
        }
        return Ok(Command::Watchdog {
            pgid,
            setting: WatchdogSetting::Off,
        });
    }
    let (_, kind) = kind.ok_or(ParseError::Missing {
        command: CMD,
        what: "--heartbeat MS or --deadline MS",
    })?;
    let action = match action {
        None => {
            return Err(ParseError::Missing {
                command: CMD,
                what: "--action warn|stop|kill",
            });
        }
        Some(ActionWord::Stop) => WatchdogAction::Stop {
            grace_ms: grace.unwrap_or(DEFAULT_GRACE_MS),
        },
        Some(_) if grace.is_some() => {
            return Err(ParseError::Requires {
                command: CMD,
                option: "--grace",
                needs: "--action stop",
            });
        }
        Some(ActionWord::Warn) => WatchdogAction::Warn,
        Some(ActionWord::Kill) => WatchdogAction::Kill,
    };
    Ok(Command::Watchdog {
        pgid,
        setting: WatchdogSetting::Arm { kind, action },
    })
}

fn parse_job_start<'a>(args: impl Iterator<Item = &'a str>) -> Result<JobCommand<'a>, ParseError<'a>> {
    const CMD: &str = "job start";
    let mut w = Words::new(CMD, args);
    let mut name = None;
    let mut native = None;
    let mut grace = None;
    let mut timeout = None;
    let mut stall = None;
    let mut retries = None;
    // Options, up to `--`.
    loop {
        let Some(word) = w.next() else {
            return Err(ParseError::Missing {
                command: CMD,
                what: "'-- CMD'",
            });
        };
        match word {
            "--" => break,
            "--name" => {
                w.once(&name, "--name")?;
                let value = w.value("--name")?;
                if value.len() > job::NAME_MAX {
                    return Err(ParseError::JobNameTooLong { len: value.len() });
                }
                name = Some(value);
            }
            "--native" => w.flag(&mut native, "--native")?,
            "--grace" => {
                w.once(&grace, "--grace")?;
                grace = Some(w.number("--grace", 0, u32::MAX)?);
            }
            "--timeout" => {
                w.once(&timeout, "--timeout")?;
                timeout = Some(w.number("--timeout", 1, u32::MAX)?);
            }
            "--stall" => {
                w.once(&stall, "--stall")?;
                stall = Some(w.number("--stall", 1, u32::MAX)?);
            }
            "--retries" => {
                w.once(&retries, "--retries")?;
                retries = Some(w.number("--retries", 0, u32::from(u8::MAX))?);
            }
            _ if is_option(word) => {
                return Err(ParseError::UnknownOption {
                    command: CMD,
                    option: word,
                });
            }
            _ => return Err(ParseError::BeforeSeparator { command: CMD, word }),
        }
    }
    // Everything after `--` is argv, options of the command included.
    let mut rest = w.iter;
    let mut argv = ArgList::<JOB_ARGS_MAX>::new();
    let mut index = 0;
    while let Some(arg) = rest.next() {
        if arg.len() > job::ARG_MAX {
            return Err(ParseError::JobArgTooLong { index, len: arg.len() });
        }
        if !argv.push(arg) {
            return Err(ParseError::JobTooManyArgs {
                count: index + 1 + rest.count(),
            });
        }
        index += 1;
    }
    let Some(cmd) = argv.as_slice().first() else {
        return Err(ParseError::Missing {
            command: CMD,
            what: "CMD after '--'",
        });
    };
    Ok(JobCommand::Start(JobStart {
        name: name.unwrap_or_else(|| job::default_name(cmd)),
        kind: if native.is_some() {
            JobKind::Native
        } else {
            JobKind::Host
        },
        grace_ms: grace.unwrap_or(job::DEFAULT_GRACE_MS),
        timeout_ms: timeout,
        stall_ms: stall,
        // In 0..=255 by the parse.
        max_retries: retries.and_then(|r| u8::try_from(r).ok()).unwrap_or(0),
        argv,
    }))
}

/// `job status|stop|wait ID [--json]` (`--json` only where `json_ok`):
/// the id and the flag.
fn parse_job_id<'a>(
    command: &'static str,
    json_ok: bool,
    args: impl Iterator<Item = &'a str>,
) -> Result<(u64, bool), ParseError<'a>> {
    let mut w = Words::new(command, args);
    let mut json = None;
    let mut id = None;
    let mut extra = None;
    while let Some(word) = w.next() {
        match word {
            "--json" if json_ok => w.flag(&mut json, "--json")?,
            _ if is_option(word) => return Err(ParseError::UnknownOption { command, option: word }),
            _ if id.is_some() => extra = extra.or(Some(word)),
            _ => id = Some(word),
        }
    }
    let id = id.ok_or(ParseError::Missing { command, what: "ID" })?;
    let id = w.job_id(id)?;
    if let Some(argument) = extra {
        return Err(ParseError::UnexpectedArgument { command, argument });
    }
    Ok((id, json.is_some()))
}

fn parse_job_logs<'a>(args: impl Iterator<Item = &'a str>) -> Result<JobCommand<'a>, ParseError<'a>> {
    const CMD: &str = "job logs";
    let mut w = Words::new(CMD, args);
    let mut stderr = None;
    let mut offset = None;
    let mut follow = None;
    let mut id = None;
    let mut extra = None;
    while let Some(word) = w.next() {
        match word {
            "--stderr" => w.flag(&mut stderr, "--stderr")?,
            "--follow" => w.flag(&mut follow, "--follow")?,
            "--offset" => {
                w.once(&offset, "--offset")?;
                offset = Some(w.number64("--offset")?);
            }
            _ if is_option(word) => {
                return Err(ParseError::UnknownOption {
                    command: CMD,
                    option: word,
                });
            }
            _ if id.is_some() => extra = extra.or(Some(word)),
            _ => id = Some(word),
        }
    }
    let id = id.ok_or(ParseError::Missing {
        command: CMD,
        what: "ID",
    })?;
    let job_id = w.job_id(id)?;
    if let Some(argument) = extra {
        return Err(ParseError::UnexpectedArgument { command: CMD, argument });
    }
    Ok(JobCommand::Logs {
        job_id,
        stream: if stderr.is_some() {
            Stream::Stderr
        } else {
            Stream::Stdout
        },
        offset: offset.unwrap_or(0),
        follow: follow.is_some(),
    })
}

fn parse_artifacts(rest: &str) -> Result<Command<'_>, ParseError<'_>> {
    let mut args = words(rest);
    // `artifacts` alone lists them.
    let sub = args.next().unwrap_or("ls");
    match sub {
        "reload" => positionals("artifacts reload", [], args).map(|[]| Command::ArtifactsReload),
        "ls" => {
            let (mut job_id, mut json) = (None, false);
            for a in args {
                match a {
                    "--json" if !json => json = true,
                    _ if is_option(a) => {
                        return Err(ParseError::UnknownOption {
                            command: "artifacts ls",
                            option: a,
                        });
                    }
                    _ if job_id.is_none() => {
                        job_id = Some(number_upto(a, u64::MAX).map_err(|problem| ParseError::BadValue {
                            command: "artifacts ls",
                            what: "JOB",
                            value: a,
                            problem,
                        })?)
                    }
                    _ => {
                        return Err(ParseError::UnexpectedArgument {
                            command: "artifacts ls",
                            argument: a,
                        });
                    }
                }
            }
            Ok(Command::ArtifactsList { job_id, json })
        }
        "get" | "pin" | "unpin" => {
            let command = match sub {
                "get" => "artifacts get",
                "pin" => "artifacts pin",
                _ => "artifacts unpin",
            };
            let (mut spec, mut json) = (None, false);
            for a in args {
                match a {
                    "--json" if !json => json = true,
                    _ if is_option(a) => return Err(ParseError::UnknownOption { command, option: a }),
                    _ if spec.is_none() => spec = Some(parse_artifact_spec(command, a)?),
                    _ => return Err(ParseError::UnexpectedArgument { command, argument: a }),
                }
            }
            let spec = spec.ok_or(ParseError::Missing {
                command,
                what: "JOB/KIND/NAME",
            })?;
            let pin = match sub {
                "get" => None,
                "pin" => Some(true),
                _ => Some(false),
            };
            Ok(Command::Artifact { spec, pin, json })
        }
        _ => Err(ParseError::UnknownSubcommand {
            command: "artifacts",
            sub,
        }),
    }
}

fn parse_artifact_spec<'a>(command: &'static str, word: &'a str) -> Result<ArtifactSpec<'a>, ParseError<'a>> {
    let bad = |problem| ParseError::BadValue {
        command,
        what: "JOB/KIND/NAME[@VERSION]",
        value: word,
        problem,
    };
    let (path, selector) = word.split_once('@').unwrap_or((word, "latest"));
    let mut parts = path.split('/');
    let (Some(job), Some(kind), Some(name), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad(ValueProblem::Expected(
            "JOB/KIND/NAME with an optional @latest, @best or @vN",
        )));
    };
    let job_id = number_upto(job, u64::MAX).map_err(bad)?;
    if kind.is_empty() || name.is_empty() || selector.is_empty() {
        return Err(bad(ValueProblem::Expected(
            "JOB/KIND/NAME with an optional @latest, @best or @vN",
        )));
    }
    Ok(ArtifactSpec {
        job_id,
        kind,
        name,
        selector,
    })
}

fn parse_events<'a>(args: impl Iterator<Item = &'a str>) -> Result<Command<'a>, ParseError<'a>> {
    let mut w = Words::new("events", args);
    let (mut after, mut follow, mut json) = (None, None, None);
    while let Some(word) = w.next() {
        match word {
            "--after" => {
                w.once(&after, "--after")?;
                after = Some(w.number64("--after")?);
            }
            "--follow" => w.flag(&mut follow, "--follow")?,
            "--json" => w.flag(&mut json, "--json")?,
            _ if is_option(word) => {
                return Err(ParseError::UnknownOption {
                    command: "events",
                    option: word,
                });
            }
            _ => {
                return Err(ParseError::UnexpectedArgument {
                    command: "events",
                    argument: word,
                });
            }
        }
    }
    Ok(Command::Events {
        after: after.unwrap_or(0),
        follow: follow.is_some(),
        json: json.is_some(),
    })
}

fn parse_metrics<'a>(args: impl Iterator<Item = &'a str>) -> Result<Command<'a>, ParseError<'a>> {
    const CMD: &str = "metrics";
    let mut w = Words::new(CMD, args);
    let (mut job_id, mut name, mut history, mut json) = (None, None, None, None);
    let (mut steps, mut time) = (None, None);
    while let Some(word) = w.next() {
        match word {
            "--history" => w.flag(&mut history, "--history")?,
            "--steps" | "--time" => {
                let option = if word == "--steps" { "--steps" } else { "--time" };
                if steps.is_some() || time.is_some() {
                    return Err(ParseError::Conflict {
                        command: CMD,
                        first: "--steps",
                        second: "--time",
                    });
                }
                let value = w.value(option)?;
                let bad = |problem| ParseError::BadValue {
                    command: CMD,
                    what: option,
                    value,
                    problem,
                };
                let (a, b) = value.split_once("..").ok_or(bad(ValueProblem::Expected("A..B")))?;
                let a = number_upto(a, u64::MAX).map_err(bad)?;
                let b = number_upto(b, u64::MAX).map_err(bad)?;
                if a > b {
                    return Err(bad(ValueProblem::Expected("A..B with A <= B")));
                }
                if option == "--steps" {
                    steps = Some((a, b));
                } else {
                    time = Some((a, b));
                }
            }
            "--json" => w.flag(&mut json, "--json")?,
            _ if is_option(word) => {
                return Err(ParseError::UnknownOption {
                    command: CMD,
                    option: word,
                });
            }
            // The first positional is the job if it is a number.
            _ if job_id.is_none() && name.is_none() && word.bytes().all(|b| b.is_ascii_digit()) => {
                job_id = Some(number_upto(word, u64::MAX).map_err(|problem| w.bad("JOB", word, problem))?);
            }
            _ if name.is_none() => name = Some(word),
            _ => {
                return Err(ParseError::UnexpectedArgument {
                    command: CMD,
                    argument: word,
                });
            }
        }
    }
    if (steps.is_some() || time.is_some()) && history.is_none() {
        return Err(ParseError::Requires {
            command: CMD,
            option: if steps.is_some() { "--steps" } else { "--time" },
            needs: "--history",
        });
    }
    if history.is_some() && (job_id.is_none() || name.is_none()) {
        return Err(ParseError::Requires {
            command: CMD,
            option: "--history",
            needs: "JOB and NAME",
        });
    }
    Ok(Command::Metrics {
        job_id,
        name,
        history: history.is_some(),
        steps,
        time,
        json: json.is_some(),
    })
}

fn parse_job(rest: &str) -> Result<Command<'_>, ParseError<'_>> {
    let mut args = words(rest);
    let Some(sub) = args.next() else {
        return Err(ParseError::MissingSubcommand { command: "job" });
    };
    let cmd = match sub {
        "start" => parse_job_start(args)?,
        "ls" => JobCommand::List {
            json: json_flag("job ls", args)?,
        },
        "status" => {
            let (job_id, json) = parse_job_id("job status", true, args)?;
            JobCommand::Status { job_id, json }
        }
        "logs" => parse_job_logs(args)?,
        "stop" => JobCommand::Stop {
            job_id: parse_job_id("job stop", false, args)?.0,
        },
        "wait" => {
            let (job_id, json) = parse_job_id("job wait", true, args)?;
            JobCommand::Wait { job_id, json }
        }
        _ => return Err(ParseError::UnknownSubcommand { command: "job", sub }),
    };
    Ok(Command::Job(cmd))
}

pub fn parse(line: &str) -> Result<Command<'_>, ParseError<'_>> {
    let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
    let (name, rest) = line.split_once(|c: char| c.is_ascii_whitespace()).unwrap_or((line, ""));
    let args = words(rest);
    match name {
        "" => Ok(Command::Nothing),
        "help" => Ok(Command::Help {
            json: json_flag("help", args)?,
        }),
        "uptime" => Ok(Command::Uptime {
            json: json_flag("uptime", args)?,
        }),
        "mem" => Ok(Command::Mem {
            json: json_flag("mem", args)?,
        }),
        "echo" => Ok(Command::Echo {
            rest: rest.trim_start(),
        }),
        "shutdown" => match words(rest).next() {
            None => Ok(Command::Shutdown),
            Some(a) => Err(ParseError::UnexpectedArgument {
                command: "shutdown",
                argument: a,
            }),
        },
        "ps" => Ok(Command::Ps {
            json: json_flag("ps", args)?,
        }),
        "run" => parse_run(args),
        "kill" => parse_kill(args),
        "watchdog" if words(rest).next() == Some("log") => Ok(Command::WatchdogLog {
            json: json_flag("watchdog log", words(rest).skip(1))?,
        }),
        "watchdog" => parse_watchdog(args),
        "events" => parse_events(args),
        "metrics" => parse_metrics(args),
        "alerts" if words(rest).next() == Some("reload") => {
            positionals("alerts reload", [], words(rest).skip(1)).map(|[]| Command::AlertsReload)
        }
        "alerts" => Ok(Command::Alerts {
            json: json_flag("alerts", args)?,
        }),
        "artifacts" => parse_artifacts(rest),
        "routes" if words(rest).next() == Some("reload") => {
            positionals("routes reload", [], words(rest).skip(1)).map(|[]| Command::RoutesReload)
        }
        "routes" => Ok(Command::Routes {
            json: json_flag("routes", args)?,
        }),
        "job" => parse_job(rest),
        "ls" => path_and_json("ls", Some("/"), args).map(|(path, json)| Command::Ls { path, json }),
        "cat" => positionals("cat", ["PATH"], args).map(|[path]| Command::Cat { path }),
        "stat" => path_and_json("stat", None, args).map(|(path, json)| Command::Stat { path, json }),
        "df" => Ok(Command::Df {
            json: json_flag("df", args)?,
        }),
        "cache" if rest.split_ascii_whitespace().eq(["--drop"]) => Ok(Command::DropCache),
        "cache" => Ok(Command::Cache {
            json: json_flag("cache", args)?,
        }),
        "mkdir" => positionals("mkdir", ["PATH"], args).map(|[path]| Command::Mkdir { path }),
        "rm" => positionals("rm", ["PATH"], args).map(|[path]| Command::Rm { path }),
        "mv" => positionals("mv", ["FROM", "TO"], args).map(|[from, to]| Command::Mv { from, to }),
        "write" => parse_write(rest),
        "sync" => positionals("sync", [], args).map(|[]| Command::Sync),
        other => Err(ParseError::Unknown(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::{String, ToString};

    /// The error message for `line` (which must fail).
    fn err(line: &str) -> String {
        match parse(line) {
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn file_commands_parse_and_refuse_bad_arguments() {
        assert_eq!(parse("ls"), Ok(Command::Ls { path: "/", json: false }));
        assert_eq!(
            parse("ls /data --json"),
            Ok(Command::Ls {
                path: "/data",
                json: true
            })
        );
        assert!(
            err("ls /a /b").starts_with("ls: unexpected argument '/b'"),
            "{}",
            err("ls /a /b")
        );
        assert_eq!(parse("cat /f"), Ok(Command::Cat { path: "/f" }));
        assert!(err("cat").starts_with("cat: missing PATH"), "{}", err("cat"));
        assert!(
            err("cat --x /f").starts_with("cat: unknown option '--x'"),
            "{}",
            err("cat --x /f")
        );
        assert_eq!(parse("stat /f --json"), Ok(Command::Stat { path: "/f", json: true }));
        assert!(err("stat").starts_with("stat: missing PATH"), "{}", err("stat"));
        assert_eq!(parse("mv /a /b"), Ok(Command::Mv { from: "/a", to: "/b" }));
        assert!(err("mv /a").starts_with("mv: missing TO"), "{}", err("mv /a"));
        assert!(
            err("mv /a /b /c").starts_with("mv: unexpected argument '/c'"),
            "{}",
            err("mv /a /b /c")
        );
        assert_eq!(parse("sync"), Ok(Command::Sync));
        assert_eq!(parse("cache --drop"), Ok(Command::DropCache));
        assert!(err("cache --drop --json").starts_with("cache: unexpected argument '--drop'"));
        assert!(
            err("sync now").starts_with("sync: unexpected argument 'now'"),
            "{}",
            err("sync now")
        );
        assert_eq!(
            parse("write /f  hello   world"),
            Ok(Command::Write {
                path: "/f",
                append: false,
                text: "hello   world"
            })
        );
        assert_eq!(
            parse("write --append /f x"),
            Ok(Command::Write {
                path: "/f",
                append: true,
                text: "x"
            })
        );
        assert_eq!(
            parse("write /f"),
            Ok(Command::Write {
                path: "/f",
                append: false,
                text: ""
            })
        );
        assert!(err("write").starts_with("write: missing PATH"), "{}", err("write"));
        assert!(
            err("write --force /f").starts_with("write: unknown option '--force'"),
            "{}",
            err("write --force /f")
        );
    }

    fn run_of(line: &str) -> Run<'_> {
        match parse(line) {
            Ok(Command::Run(r)) => r,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn every_command_in_the_table_is_known() {
        for spec in COMMANDS {
            match parse(spec.name) {
                Ok(_) | Err(ParseError::Missing { .. }) => {}
                Err(e) => panic!("{}: {e}", spec.name),
            }
            assert!(spec.usage.starts_with(spec.name), "{spec:?}");
        }
        let mut names: std::vec::Vec<_> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len(), "names are unique");
        assert_eq!(parse("  uptime  "), Ok(Command::Uptime { json: false }));
        assert_eq!(parse("mem --json"), Ok(Command::Mem { json: true }));
        assert_eq!(parse("help --json"), Ok(Command::Help { json: true }));
        assert_eq!(parse("shutdown"), Ok(Command::Shutdown));
        assert_eq!(parse(""), Ok(Command::Nothing));
        assert_eq!(parse(" \t "), Ok(Command::Nothing));
    }

    #[test]
    fn echo_keeps_its_words() {
        assert_eq!(parse("echo hello  world"), Ok(Command::Echo { rest: "hello  world" }));
        assert_eq!(parse("echo"), Ok(Command::Echo { rest: "" }));
        assert_eq!(parse("echo --json"), Ok(Command::Echo { rest: "--json" }));
    }

    #[test]
    fn unknown_commands_and_bad_arguments_are_errors_with_context() {
        let e = parse("frobnicate now").unwrap_err();
        assert_eq!(e, ParseError::Unknown("frobnicate"));
        assert_eq!(e.to_string(), "unknown command 'frobnicate' (try 'help')");
        let e = parse("uptime --jsn").unwrap_err();
        assert_eq!(
            e.to_string(),
            "uptime: unexpected argument '--jsn' (usage: uptime [--json])"
        );
        assert!(parse("mem --json --json").is_err());
        assert!(parse("shutdown now").is_err());
        assert_eq!(
            parse("HELP"),
            Err(ParseError::Unknown("HELP")),
            "commands are case-sensitive"
        );
    }

    #[test]
    fn ps_and_watchdog_log_take_only_json() {
        assert_eq!(parse("ps"), Ok(Command::Ps { json: false }));
        assert_eq!(parse("ps --json"), Ok(Command::Ps { json: true }));
        assert_eq!(parse(" watchdog\tlog --json "), Ok(Command::WatchdogLog { json: true }));
        assert_eq!(err("ps -a"), "ps: unexpected argument '-a' (usage: ps [--json])");
        assert_eq!(
            err("watchdog log --json --json"),
            "watchdog log: unexpected argument '--json' (usage: watchdog log [--json])"
        );
        assert!(parse("ps 1").is_err());
    }

    #[test]
    fn events_metrics_and_alerts_parse_and_refuse_bad_arguments() {
        assert_eq!(
            parse("events"),
            Ok(Command::Events {
                after: 0,
                follow: false,
                json: false
            })
        );
        assert_eq!(
            parse("events --follow --after 12 --json"),
            Ok(Command::Events {
                after: 12,
                follow: true,
                json: true
            })
        );
        assert!(
            err("events --after").starts_with("events: --after"),
            "{}",
            err("events --after")
        );
        assert!(err("events --after x").contains("x"));
        assert!(err("events --follow --follow").contains("--follow"));
        assert!(err("events 3").starts_with("events: unexpected argument '3'"));
        assert_eq!(
            parse("metrics"),
            Ok(Command::Metrics {
                job_id: None,
                name: None,
                history: false,
                steps: None,
                time: None,
                json: false
            })
        );
        assert_eq!(
            parse("metrics 3 val_loss --history --json"),
            Ok(Command::Metrics {
                job_id: Some(3),
                name: Some("val_loss"),
                history: true,
                steps: None,
                time: None,
                json: true
            })
        );
        assert_eq!(
            parse("metrics loss"),
            Ok(Command::Metrics {
                job_id: None,
                name: Some("loss"),
                history: false,
                steps: None,
                time: None,
                json: false
            })
        );
        assert!(err("metrics --history").contains("--history only applies with JOB and NAME"));
        assert!(matches!(
            parse("metrics 1 loss --history --steps 10..20"),
            Ok(Command::Metrics {
                steps: Some((10, 20)),
                time: None,
                ..
            })
        ));
        assert!(matches!(
            parse("metrics 1 loss --history --time 5..6"),
            Ok(Command::Metrics { time: Some((5, 6)), .. })
        ));
        for bad in [
            "metrics 1 loss --steps 1..2",
            "metrics 1 loss --history --steps 3..1",
            "metrics 1 loss --history --steps 1-2",
            "metrics 1 loss --history --steps",
            "metrics 1 loss --history --steps 1..2 --time 1..2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(err("metrics 3 a b").starts_with("metrics: unexpected argument 'b'"));
        assert!(err("metrics 99999999999999999999").contains("JOB"));
        assert!(err("metrics --bogus").starts_with("metrics: unknown option '--bogus'"));
        assert_eq!(parse("alerts"), Ok(Command::Alerts { json: false }));
        assert_eq!(parse("alerts --json"), Ok(Command::Alerts { json: true }));
        assert_eq!(parse("alerts reload"), Ok(Command::AlertsReload));
        assert!(err("alerts reload now").starts_with("alerts reload: unexpected argument 'now'"));
        assert!(err("alerts x").starts_with("alerts: unexpected argument 'x'"));
        assert_eq!(parse("routes --json"), Ok(Command::Routes { json: true }));
        assert_eq!(
            parse("artifacts ls 3 --json"),
            Ok(Command::ArtifactsList {
                job_id: Some(3),
                json: true
            })
        );
        assert_eq!(
            parse("artifacts get 7/model/ckpt@best"),
            Ok(Command::Artifact {
                spec: ArtifactSpec {
                    job_id: 7,
                    kind: "model",
                    name: "ckpt",
                    selector: "best"
                },
                pin: None,
                json: false
            })
        );
        assert!(matches!(
            parse("artifacts pin 7/model/ckpt"),
            Ok(Command::Artifact {
                spec: ArtifactSpec { selector: "latest", .. },
                pin: Some(true),
                ..
            })
        ));
        assert_eq!(parse("artifacts reload"), Ok(Command::ArtifactsReload));
        assert_eq!(
            parse("artifacts"),
            Ok(Command::ArtifactsList {
                job_id: None,
                json: false
            })
        );
        for bad in [
            "artifacts rm x",
            "artifacts get",
            "artifacts get 7/model",
            "artifacts get x/model/ckpt",
            "artifacts get 7/model/ckpt@",
            "artifacts ls x",
            "artifacts ls 1 2",
            "artifacts get 1/a/b 1/a/c",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(err("artifacts get 7/model").contains("JOB/KIND/NAME"));
        assert!(err("artifacts rm x").contains("(ls, get, pin, unpin, reload;"));
        assert_eq!(parse("routes reload"), Ok(Command::RoutesReload));
        assert!(err("routes reload x").starts_with("routes reload: unexpected argument 'x'"));
    }

    #[test]
    fn run_defaults_to_a_new_group_at_the_default_priority_in_the_foreground() {
        let r = run_of("run hello");
        assert_eq!(r.program, "hello");
        assert!(r.args.is_empty());
        assert_eq!(r.priority, DEFAULT_PRIORITY);
        assert_eq!(r.priority, 16);
        assert_eq!(r.group, GroupChoice::New);
        assert!(!r.background);
    }

    #[test]
    fn run_options_in_any_order_and_args_after_the_program() {
        let r = run_of("run --group 7 --prio 0 hello a  b --prio 3");
        assert_eq!(r.priority, 0);
        assert_eq!(r.group, GroupChoice::Join(7));
        assert_eq!(r.program, "hello");
        assert_eq!(r.args.as_slice(), ["a", "b", "--prio", "3"], "options stop at PROG");
        let r = run_of("run --prio 31 --group new spin --polite");
        assert_eq!((r.priority, r.group), (31, GroupChoice::New));
        assert_eq!(r.args.as_slice(), ["--polite"]);
    }

    #[test]
    fn run_trailing_ampersand_is_background_only_as_the_last_lone_word() {
        let r = run_of("run sleeper 2 50 &");
        assert!(r.background);
        assert_eq!(r.args.as_slice(), ["2", "50"]);
        let r = run_of("run spin &");
        assert!(r.background && r.args.is_empty());
        let r = run_of("run hello a & b");
        assert!(!r.background);
        assert_eq!(r.args.as_slice(), ["a", "&", "b"]);
        let r = run_of("run hello & &");
        assert!(r.background);
        assert_eq!(r.args.as_slice(), ["&"]);
        let r = run_of("run hello a&");
        assert!(!r.background);
        assert_eq!(r.args.as_slice(), ["a&"]);
        assert_eq!(err("run &"), format!("run: missing PROG (usage: {})", usage("run")));
        assert!(err("run --prio 1 &").starts_with("run: missing PROG"));
    }

    #[test]
    fn run_limits_are_parse_errors_naming_the_limit() {
        let name = "p".repeat(NAME_MAX);
        assert_eq!(run_of(&format!("run {name}")).program, name);
        assert_eq!(
            err(&format!("run {name}x")),
            "run: program name is 33 bytes, the limit is 32 (NAME_MAX)"
        );
        let arg = "a".repeat(ARG_MAX);
        assert_eq!(run_of(&format!("run hello {arg}")).args.as_slice(), [arg.as_str()]);
        assert_eq!(
            err(&format!("run hello x {arg}b")),
            "run: argument 2 is 65 bytes, the limit is 64 (ARG_MAX)"
        );
        let eight = "1 2 3 4 5 6 7 8";
        let line = format!("run hello {eight} &");
        let r = run_of(&line);
        assert_eq!(r.args.len(), ARGS_MAX);
        assert!(r.background);
        assert_eq!(
            err(&format!("run hello {eight} 9 10")),
            "run: 10 arguments, the limit is 8 (ARGS_MAX)"
        );
        assert_eq!(
            err(&format!("run hello {eight} 9 &")),
            "run: 9 arguments, the limit is 8 (ARGS_MAX)"
        );
    }

    #[test]
    fn run_rejects_bad_options_and_values() {
        assert_eq!(err("run"), format!("run: missing PROG (usage: {})", usage("run")));
        assert_eq!(err("run --prio 32 hello"), "run: bad --prio '32': must be 0..=31");
        assert_eq!(
            err("run --prio x hello"),
            "run: bad --prio 'x': expected a decimal number"
        );
        assert_eq!(err("run --prio -1 hello"), "run: bad --prio '-1': must not be negative");
        assert_eq!(
            err("run --prio 99999999999 hello"),
            "run: bad --prio '99999999999': too large (the most is 4294967295)"
        );
        assert_eq!(
            err("run --prio +3 hello"),
            "run: bad --prio '+3': expected a decimal number"
        );
        assert_eq!(err("run --prio"), "run: --prio needs a value");
        assert_eq!(err("run --prio --group new hello"), "run: --prio needs a value");
        assert_eq!(err("run --prio 1 --prio 2 hello"), "run: --prio given twice");
        assert_eq!(err("run --group new --group 3 hello"), "run: --group given twice");
        assert_eq!(
            err("run --group old hello"),
            "run: bad --group 'old': expected 'new' or a PGID"
        );
        assert_eq!(err("run --group 0 hello"), "run: bad --group '0': must be at least 1");
        assert_eq!(
            err("run --group -4 hello"),
            "run: bad --group '-4': must not be negative"
        );
        assert_eq!(err("run --group"), "run: --group needs a value");
        assert_eq!(
            err("run --nice 3 hello"),
            format!("run: unknown option '--nice' (usage: {})", usage("run"))
        );
        assert!(err("run -x hello").starts_with("run: unknown option '-x'"));
    }

    #[test]
    fn kill_a_process_or_a_group_with_a_grace() {
        assert_eq!(
            parse("kill 5"),
            Ok(Command::Kill {
                target: Target::Process(5),
                grace_ms: DEFAULT_GRACE_MS
            })
        );
        assert_eq!(DEFAULT_GRACE_MS, 1000);
        assert_eq!(
            parse("kill --grace 0 5"),
            Ok(Command::Kill {
                target: Target::Process(5),
                grace_ms: 0
            })
        );
        assert_eq!(
            parse("kill -g 3"),
            Ok(Command::Kill {
                target: Target::Group(3),
                grace_ms: 1000
            })
        );
        let g = Ok(Command::Kill {
            target: Target::Group(3),
            grace_ms: 250,
        });
        assert_eq!(parse("kill -g --grace 250 3"), g);
        assert_eq!(parse("kill --grace 250 -g 3"), g);
        assert_eq!(parse("kill 3 -g --grace 250"), g);
        assert_eq!(
            parse(&format!("kill --grace {} {}", u32::MAX, u32::MAX)),
            Ok(Command::Kill {
                target: Target::Process(u32::MAX),
                grace_ms: u32::MAX
            })
        );
    }

    #[test]
    fn kill_rejects_bad_input() {
        assert_eq!(err("kill"), format!("kill: missing PID (usage: {})", usage("kill")));
        assert!(err("kill -g").starts_with("kill: missing PGID (usage: "));
        assert!(err("kill --grace 5").starts_with("kill: missing PID"));
        assert_eq!(err("kill abc"), "kill: bad PID 'abc': expected a decimal number");
        assert_eq!(err("kill -5"), "kill: bad PID '-5': must not be negative");
        assert_eq!(err("kill 0"), "kill: bad PID '0': must be at least 1");
        assert_eq!(err("kill -g 0x10"), "kill: bad PGID '0x10': expected a decimal number");
        assert_eq!(
            err("kill 4294967296"),
            "kill: bad PID '4294967296': too large (the most is 4294967295)"
        );
        assert_eq!(
            err("kill 1 2"),
            format!("kill: unexpected argument '2' (usage: {})", usage("kill"))
        );
        assert_eq!(
            err("kill --grace 5"),
            format!("kill: missing PID (usage: {})", usage("kill"))
        );
        assert_eq!(err("kill --grace"), "kill: --grace needs a value");
        assert_eq!(err("kill --grace -g 3"), "kill: --grace needs a value");
        assert_eq!(err("kill --grace -1 3"), "kill: bad --grace '-1': must not be negative");
        assert_eq!(
            err("kill --grace 1s 3"),
            "kill: bad --grace '1s': expected a decimal number"
        );
        assert_eq!(err("kill --grace 1 --grace 2 3"), "kill: --grace given twice");
        assert_eq!(err("kill -g -g 3"), "kill: -g given twice");
        assert!(
            err("kill -9 3").starts_with("kill: bad PID '-9'"),
            "-9 reads as a number"
        );
        assert_eq!(
            err("kill --force 3"),
            format!("kill: unknown option '--force' (usage: {})", usage("kill"))
        );
    }

    #[test]
    fn watchdog_arms_heartbeat_and_deadline_with_each_action() {
        assert_eq!(
            parse("watchdog 4 --heartbeat 200 --action kill"),
            Ok(Command::Watchdog {
                pgid: 4,
                setting: WatchdogSetting::Arm {
                    kind: WatchdogKind::Heartbeat { period_ms: 200 },
                    action: WatchdogAction::Kill
                }
            })
        );
        assert_eq!(
            parse("watchdog 4 --deadline 500 --action warn"),
            Ok(Command::Watchdog {
                pgid: 4,
                setting: WatchdogSetting::Arm {
                    kind: WatchdogKind::Deadline { within_ms: 500 },
                    action: WatchdogAction::Warn
                }
            })
        );
        let stop = |grace_ms| {
            Ok(Command::Watchdog {
                pgid: 9,
                setting: WatchdogSetting::Arm {
                    kind: WatchdogKind::Heartbeat { period_ms: 50 },
                    action: WatchdogAction::Stop { grace_ms },
                },
            })
        };
        assert_eq!(parse("watchdog 9 --heartbeat 50 --action stop"), stop(1000));
        assert_eq!(parse("watchdog 9 --heartbeat 50 --action stop --grace 0"), stop(0));
        assert_eq!(parse("watchdog --grace 20 --action stop --heartbeat 50 9"), stop(20));
        assert_eq!(
            parse("watchdog 4 --off"),
            Ok(Command::Watchdog {
                pgid: 4,
                setting: WatchdogSetting::Off
            })
        );
        assert_eq!(
            parse("watchdog --off 4"),
            Ok(Command::Watchdog {
                pgid: 4,
                setting: WatchdogSetting::Off
            })
        );
    }

    #[test]
    fn watchdog_rejects_bad_input() {
        let u = usage("watchdog");
        assert_eq!(err("watchdog"), format!("watchdog: missing PGID (usage: {u})"));
        assert_eq!(
            err("watchdog 4"),
            format!("watchdog: missing --heartbeat MS or --deadline MS (usage: {u})")
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 100"),
            format!("watchdog: missing --action warn|stop|kill (usage: {u})")
        );
        assert_eq!(
            err("watchdog --heartbeat 100 --action kill"),
            format!("watchdog: missing PGID (usage: {u})")
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 100 --deadline 5 --action kill"),
            "watchdog: --heartbeat and --deadline exclude each other"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 100 --heartbeat 5 --action kill"),
            "watchdog: --heartbeat given twice"
        );
        assert_eq!(
            err("watchdog 4 --deadline 1 --deadline 5"),
            "watchdog: --deadline given twice"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 0 --action kill"),
            "watchdog: bad --heartbeat '0': must be at least 1"
        );
        assert_eq!(
            err("watchdog 4 --deadline soon --action kill"),
            "watchdog: bad --deadline 'soon': expected a decimal number"
        );
        assert_eq!(err("watchdog 4 --heartbeat"), "watchdog: --heartbeat needs a value");
        assert_eq!(
            err("watchdog 4 --heartbeat 1 --action explode"),
            "watchdog: bad --action 'explode': expected warn, stop or kill"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 1 --action"),
            "watchdog: --action needs a value"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 1 --action kill --action warn"),
            "watchdog: --action given twice"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 1 --action kill --grace 5"),
            "watchdog: --grace only applies with --action stop"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 1 --action warn --grace 5"),
            "watchdog: --grace only applies with --action stop"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 1 --action stop --grace -5"),
            "watchdog: bad --grace '-5': must not be negative"
        );
        assert_eq!(
            err("watchdog 4 --off --action kill"),
            "watchdog: --off and --action exclude each other"
        );
        assert_eq!(
            err("watchdog 4 --heartbeat 3 --off"),
            "watchdog: --off and --heartbeat exclude each other"
        );
        assert_eq!(
            err("watchdog 4 --off --grace 3"),
            "watchdog: --off and --grace exclude each other"
        );
        assert_eq!(err("watchdog 4 --off --off"), "watchdog: --off given twice");
        assert_eq!(
            err("watchdog x --off"),
            "watchdog: bad PGID 'x': expected a decimal number"
        );
        assert_eq!(
            err("watchdog -3 --off"),
            "watchdog: bad PGID '-3': must not be negative"
        );
        assert_eq!(err("watchdog 0 --off"), "watchdog: bad PGID '0': must be at least 1");
        assert_eq!(
            err("watchdog 4 5 --off"),
            format!("watchdog: unexpected argument '5' (usage: {u})")
        );
        assert_eq!(
            err("watchdog 4 --period 5"),
            format!("watchdog: unknown option '--period' (usage: {u})")
        );
    }

    #[test]
    fn numbers_are_plain_decimal_u32() {
        assert_eq!(number("0"), Ok(0));
        assert_eq!(number("007"), Ok(7));
        assert_eq!(number("4294967295"), Ok(u32::MAX));
        let too_big = Err(ValueProblem::TooBig {
            max: u64::from(u32::MAX),
        });
        assert_eq!(number("4294967296"), too_big);
        assert_eq!(number("99999999999999999999999"), too_big);
        assert_eq!(number_upto("18446744073709551615", u64::MAX), Ok(u64::MAX));
        assert_eq!(
            number_upto("18446744073709551616", u64::MAX),
            Err(ValueProblem::TooBig { max: u64::MAX })
        );
        assert_eq!(number(""), Err(ValueProblem::NotANumber));
        assert_eq!(number("-"), Err(ValueProblem::NotANumber));
        assert_eq!(number("-0"), Err(ValueProblem::Negative));
        assert_eq!(number("+1"), Err(ValueProblem::NotANumber));
        assert_eq!(number("1_000"), Err(ValueProblem::NotANumber));
        assert_eq!(number("1e3"), Err(ValueProblem::NotANumber));
        assert_eq!(number("١"), Err(ValueProblem::NotANumber), "only ASCII digits");
    }

    fn job_of(line: &str) -> JobCommand<'_> {
        match parse(line) {
            Ok(Command::Job(j)) => j,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn start_of(line: &str) -> JobStart<'_> {
        match job_of(line) {
            JobCommand::Start(s) => s,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn job_start_defaults_and_argv_after_the_separator() {
        let s = start_of("job start -- python3 train.py --lr 0.1 -- x");
        assert_eq!(s.argv.as_slice(), ["python3", "train.py", "--lr", "0.1", "--", "x"]);
        assert_eq!(s.name, "python3");
        assert_eq!(s.kind, JobKind::Host);
        assert_eq!(s.grace_ms, job::DEFAULT_GRACE_MS);
        assert_eq!(s.grace_ms, 10_000);
        assert_eq!((s.timeout_ms, s.stall_ms, s.max_retries), (None, None, 0));
        assert_eq!(start_of("job start -- /usr/bin/python3 t.py").name, "python3");
        assert_eq!(start_of("job start -- ./bin/ t").name, "bin");
        assert_eq!(start_of("job start -- /").name, "/");
        let long = format!("/opt/{}", "n".repeat(100));
        let line = format!("job start -- {long}");
        assert_eq!(start_of(&line).name, "n".repeat(job::NAME_MAX), "cut to NAME_MAX");
    }

    #[test]
    fn job_start_options_in_any_order() {
        let s = start_of(
            "job start --retries 3 --native --stall 500 --name train-1 --timeout 60000 --grace 0 -- sleeper 1 50",
        );
        assert_eq!(s.name, "train-1");
        assert_eq!(s.kind, JobKind::Native);
        assert_eq!(s.grace_ms, 0);
        assert_eq!(s.timeout_ms, Some(60_000));
        assert_eq!(s.stall_ms, Some(500));
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.argv.as_slice(), ["sleeper", "1", "50"]);
        let line = format!("job start --retries 255 --grace {} -- x", u32::MAX);
        let s = start_of(&line);
        assert_eq!((s.max_retries, s.grace_ms), (255, u32::MAX));
        assert_eq!(
            start_of("job start --name -5 -- x").name,
            "-5",
            "a negative number is a value"
        );
    }

    #[test]
    fn job_start_rejects_bad_input() {
        let u = usage("job start");
        assert_eq!(err("job start"), format!("job start: missing '-- CMD' (usage: {u})"));
        assert_eq!(
            err("job start --name t"),
            format!("job start: missing '-- CMD' (usage: {u})")
        );
        assert_eq!(
            err("job start python3 x.py"),
            format!("job start: 'python3' before '--': options first, then '-- CMD [ARGS..]' (usage: {u})")
        );
        assert!(err("job start --native python3 -- x").starts_with("job start: 'python3' before '--'"));
        assert_eq!(
            err("job start --"),
            format!("job start: missing CMD after '--' (usage: {u})")
        );
        assert_eq!(
            err("job start --name t --   "),
            format!("job start: missing CMD after '--' (usage: {u})")
        );
        assert_eq!(
            err("job start --prio 3 -- x"),
            format!("job start: unknown option '--prio' (usage: {u})")
        );
        assert!(err("job start -n t -- x").starts_with("job start: unknown option '-n'"));
        assert_eq!(err("job start --name -- x"), "job start: --name needs a value");
        assert_eq!(err("job start --name"), "job start: --name needs a value");
        assert_eq!(err("job start --grace -- x"), "job start: --grace needs a value");
        assert_eq!(err("job start --name a --name b -- x"), "job start: --name given twice");
        assert_eq!(
            err("job start --native --native -- x"),
            "job start: --native given twice"
        );
        assert_eq!(
            err("job start --grace 1 --grace 2 -- x"),
            "job start: --grace given twice"
        );
        assert_eq!(
            err("job start --timeout 1 --timeout 2 -- x"),
            "job start: --timeout given twice"
        );
        assert_eq!(
            err("job start --stall 1 --stall 2 -- x"),
            "job start: --stall given twice"
        );
        assert_eq!(
            err("job start --retries 1 --retries 2 -- x"),
            "job start: --retries given twice"
        );
        assert_eq!(
            err("job start --grace 1s -- x"),
            "job start: bad --grace '1s': expected a decimal number"
        );
        assert_eq!(
            err("job start --grace -1 -- x"),
            "job start: bad --grace '-1': must not be negative"
        );
        assert_eq!(
            err("job start --timeout 0 -- x"),
            "job start: bad --timeout '0': must be at least 1"
        );
        assert_eq!(
            err("job start --stall 0 -- x"),
            "job start: bad --stall '0': must be at least 1"
        );
        assert_eq!(
            err("job start --timeout 4294967296 -- x"),
            "job start: bad --timeout '4294967296': too large (the most is 4294967295)"
        );
        assert_eq!(
            err("job start --retries 256 -- x"),
            "job start: bad --retries '256': must be 0..=255"
        );
        assert_eq!(
            err("job start --retries many -- x"),
            "job start: bad --retries 'many': expected a decimal number"
        );
    }

    #[test]
    fn job_start_limits_name_the_limit() {
        let name = "n".repeat(job::NAME_MAX);
        assert_eq!(start_of(&format!("job start --name {name} -- x")).name, name);
        assert_eq!(
            err(&format!("job start --name {name}x -- x")),
            "job start: --name is 65 bytes, the limit is 64 (NAME_MAX)"
        );
        let arg = "a".repeat(job::ARG_MAX);
        assert_eq!(
            start_of(&format!("job start -- x {arg}")).argv.as_slice(),
            ["x", arg.as_str()]
        );
        assert_eq!(
            err(&format!("job start -- x y {arg}b")),
            "job start: argv[2] is 257 bytes, the limit is 256 (ARG_MAX)"
        );
        assert_eq!(
            err(&format!("job start -- {arg}b")),
            "job start: argv[0] is 257 bytes, the limit is 256 (ARG_MAX)"
        );
        let words: std::vec::Vec<String> = (0..JOB_ARGS_MAX).map(|i| i.to_string()).collect();
        let full = words.join(" ");
        let line = format!("job start -- {full}");
        let s = start_of(&line);
        assert_eq!(s.argv.len(), JOB_ARGS_MAX);
        assert_eq!(s.argv.as_slice().last(), Some(&"31"));
        assert_eq!(
            err(&format!("job start -- {full} a b")),
            "job start: 34 words after '--', the limit is 32 (ARGS_MAX, the command included)"
        );
    }

    #[test]
    fn job_ls_status_stop_wait() {
        assert_eq!(job_of("job ls"), JobCommand::List { json: false });
        assert_eq!(job_of("job  ls\t--json"), JobCommand::List { json: true });
        assert_eq!(job_of("job status 7"), JobCommand::Status { job_id: 7, json: false });
        assert_eq!(
            job_of("job status --json 7"),
            JobCommand::Status { job_id: 7, json: true }
        );
        assert_eq!(
            job_of("job status 7 --json"),
            JobCommand::Status { job_id: 7, json: true }
        );
        assert_eq!(
            job_of("job status 18446744073709551615"),
            JobCommand::Status {
                job_id: u64::MAX,
                json: false
            }
        );
        assert_eq!(job_of("job stop 3"), JobCommand::Stop { job_id: 3 });
        assert_eq!(job_of("job wait 3"), JobCommand::Wait { job_id: 3, json: false });
        assert_eq!(job_of("job wait 3 --json"), JobCommand::Wait { job_id: 3, json: true });
    }

    #[test]
    fn job_ids_and_flags_are_checked() {
        assert_eq!(
            err("job ls 1"),
            "job ls: unexpected argument '1' (usage: job ls [--json])"
        );
        assert_eq!(
            err("job ls --json --json"),
            "job ls: unexpected argument '--json' (usage: job ls [--json])"
        );
        let u = usage("job status");
        assert_eq!(err("job status"), format!("job status: missing ID (usage: {u})"));
        assert_eq!(err("job status --json"), format!("job status: missing ID (usage: {u})"));
        assert_eq!(err("job status x"), "job status: bad ID 'x': expected a decimal number");
        assert_eq!(err("job status -1"), "job status: bad ID '-1': must not be negative");
        assert_eq!(err("job status 0"), "job status: bad ID '0': must be at least 1");
        assert_eq!(
            err("job status 18446744073709551616"),
            "job status: bad ID '18446744073709551616': too large (the most is 18446744073709551615)"
        );
        assert_eq!(
            err("job status 1 2"),
            format!("job status: unexpected argument '2' (usage: {u})")
        );
        assert_eq!(err("job status 1 --json --json"), "job status: --json given twice");
        assert_eq!(
            err("job status 1 --all"),
            format!("job status: unknown option '--all' (usage: {u})")
        );
        assert_eq!(
            err("job stop 1 --json"),
            "job stop: unknown option '--json' (usage: job stop ID)"
        );
        assert_eq!(err("job stop"), "job stop: missing ID (usage: job stop ID)");
        assert_eq!(err("job wait"), "job wait: missing ID (usage: job wait ID [--json])");
        assert_eq!(err("job wait 0"), "job wait: bad ID '0': must be at least 1");
    }

    #[test]
    fn job_logs_options() {
        assert_eq!(
            job_of("job logs 4"),
            JobCommand::Logs {
                job_id: 4,
                stream: Stream::Stdout,
                offset: 0,
                follow: false
            }
        );
        assert_eq!(
            job_of("job logs --follow --offset 1024 4 --stderr"),
            JobCommand::Logs {
                job_id: 4,
                stream: Stream::Stderr,
                offset: 1024,
                follow: true
            }
        );
        assert_eq!(
            job_of("job logs 4 --offset 18446744073709551615"),
            JobCommand::Logs {
                job_id: 4,
                stream: Stream::Stdout,
                offset: u64::MAX,
                follow: false
            }
        );
        let u = usage("job logs");
        assert_eq!(err("job logs"), format!("job logs: missing ID (usage: {u})"));
        assert_eq!(err("job logs --stderr"), format!("job logs: missing ID (usage: {u})"));
        assert_eq!(err("job logs 4 --offset"), "job logs: --offset needs a value");
        assert_eq!(err("job logs 4 --offset --follow"), "job logs: --offset needs a value");
        assert_eq!(
            err("job logs 4 --offset -3"),
            "job logs: bad --offset '-3': must not be negative"
        );
        assert_eq!(
            err("job logs 4 --offset 1k"),
            "job logs: bad --offset '1k': expected a decimal number"
        );
        assert_eq!(
            err("job logs 4 --offset 1 --offset 2"),
            "job logs: --offset given twice"
        );
        assert_eq!(err("job logs 4 --stderr --stderr"), "job logs: --stderr given twice");
        assert_eq!(err("job logs 4 --follow --follow"), "job logs: --follow given twice");
        assert_eq!(
            err("job logs 4 --stdout"),
            format!("job logs: unknown option '--stdout' (usage: {u})")
        );
        assert_eq!(
            err("job logs 4 5"),
            format!("job logs: unexpected argument '5' (usage: {u})")
        );
        assert_eq!(
            err("job logs zero"),
            "job logs: bad ID 'zero': expected a decimal number"
        );
    }

    #[test]
    fn job_needs_a_known_subcommand() {
        assert_eq!(
            err("job"),
            "job: missing subcommand (start, ls, status, logs, stop, wait; try 'help')"
        );
        assert_eq!(err("job   "), err("job"));
        assert_eq!(
            err("job bogus"),
            "job: unknown subcommand 'bogus' (start, ls, status, logs, stop, wait; try 'help')"
        );
        assert!(err("job LS").starts_with("job: unknown subcommand 'LS'"));
        assert!(err("job --json").starts_with("job: unknown subcommand '--json'"));
        assert_eq!(err("jobs"), "unknown command 'jobs' (try 'help')");
    }

    #[test]
    fn every_error_is_one_line() {
        for line in [
            "nope",
            "run",
            "run --prio 99 x",
            "kill",
            "kill x",
            "watchdog",
            "watchdog 1 --off --grace 1",
            "ps x",
            "events y",
            "shutdown now",
            "job",
            "job bogus",
            "job start",
            "job start x",
            "job start --",
            "job start --retries 300 -- x",
            "job logs 1 --offset x",
            "job status 0",
        ] {
            let e = err(line);
            assert!(!e.contains('\n') && !e.is_empty(), "{line}: {e:?}");
        }
    }
}
