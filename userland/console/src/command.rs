//! Console commands: the table (`help` prints it) and the parser from a line
//! to a [`Command`]. Commands that report accept `--json` and then print one
//! JSON document per line (a convention for every later command too).

use core::fmt;

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
];

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
    /// The words after `echo`, as typed (with inner spacing collapsed by the
    /// caller's choice; see [`words`]).
    Echo {
        rest: &'a str,
    },
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError<'a> {
    Unknown(&'a str),
    UnexpectedArgument { command: &'static str, argument: &'a str },
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown(name) => write!(f, "unknown command '{name}' (try 'help')"),
            ParseError::UnexpectedArgument { command, argument } => {
                let usage = COMMANDS.iter().find(|s| s.name == *command).map_or("", |s| s.usage);
                write!(f, "{command}: unexpected argument '{argument}' (usage: {usage})")
            }
        }
    }
}

/// Splits on ASCII whitespace.
pub fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split_ascii_whitespace()
}

/// Accepts only an optional `--json` flag.
fn json_flag<'a>(command: &'static str, mut args: impl Iterator<Item = &'a str>) -> Result<bool, ParseError<'a>> {
    let mut json = false;
    for a in args.by_ref() {
        match a {
            "--json" if !json => json = true,
            _ => {
                return Err(ParseError::UnexpectedArgument { command, argument: a });
            }
        }
    }
    Ok(json)
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
        other => Err(ParseError::Unknown(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn parses_every_command_in_the_table() {
        for spec in COMMANDS {
            assert!(parse(spec.name).is_ok(), "{}", spec.name);
        }
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
}
