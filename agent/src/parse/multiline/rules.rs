//! Which lines belong to one multi-line record: the rule of each `--multiline` mode, as a small
//! state machine over the lines of one stream. Shapes follow what the runtimes print: the JVM's
//! `Throwable.printStackTrace` (`\tat …`, `Caused by: …`, `\t... N more`), CPython's traceback
//! printer (`Traceback (most recent call last):`, indented frames, the exception line, chained
//! tracebacks) and the Go runtime's panic output (`panic: …`, `goroutine N [running]:`, frames
//! and `\t/path/file.go:N +0x…` lines).

use regex::bytes::Regex;

/// How the lines of a container are joined.
#[derive(Debug, Clone)]
pub enum MultilineRule {
    /// Java stack traces: `at`, `Caused by:`, `Suppressed:` and `... N more` lines continue the
    /// line before them.
    Java,
    /// Python tracebacks, from `Traceback (most recent call last):` to the exception line.
    Python,
    /// Go panics, from `panic:` (or `fatal error:`) through the goroutine dumps.
    Go,
    /// A line matching the expression starts a record; other lines continue it.
    StartRegex(Regex),
}

/// Where a group of lines is in its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing can continue the group: it is shipped at once.
    Complete,
    /// Any continuation line of the rule may follow (Java, start-regex).
    Open,
    /// In a Python traceback's frames.
    PythonFrames,
    /// After a Python exception line: only a chained traceback continues.
    PythonException,
    /// Between chained Python tracebacks.
    PythonChain,
    /// In a Go panic's output.
    GoPanic,
}

const PYTHON_TRACEBACK: &[u8] = b"Traceback (most recent call last):";
const PYTHON_CHAINS: [&[u8]; 2] = [
    b"During handling of the above exception, another exception occurred:",
    b"The above exception was the direct cause of the following exception:",
];
const GO_STARTS: [&[u8]; 2] = [b"panic: ", b"fatal error: "];
const GO_CONTINUATIONS: [&[u8]; 5] = [
    b"goroutine ",
    b"\t",
    b"[signal ",
    b"created by ",
    b"panic: ",
];

impl MultilineRule {
    /// Parses a `--multiline` value: `java`, `python` or `go`.
    pub fn parse_language(value: &str) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "java" => Ok(MultilineRule::Java),
            "python" => Ok(MultilineRule::Python),
            "go" => Ok(MultilineRule::Go),
            other => Err(format!("{other:?} is not java, python, go or off")),
        }
    }

    /// Parses a pod's `logrelay.io/multiline` annotation: `java`, `python`, `go`,
    /// `start-regex=<expression>`, or `off` (`None`).
    pub fn parse_setting(value: &str) -> Result<Option<Self>, String> {
        match value.trim() {
            "off" => Ok(None),
            other => match other.strip_prefix("start-regex=") {
                Some(pattern) => Self::start_regex(pattern).map(Some),
                None => Self::parse_language(other).map(Some),
            },
        }
    }

    /// A start-regex rule (`--multiline-start-regex`).
    pub fn start_regex(pattern: &str) -> Result<Self, String> {
        Regex::new(pattern)
            .map(MultilineRule::StartRegex)
            .map_err(|err| err.to_string())
    }

    /// The phase of a group whose first line is `first`.
    pub fn start(&self, first: &[u8]) -> Phase {
        match self {
            MultilineRule::Java | MultilineRule::StartRegex(_) => Phase::Open,
            MultilineRule::Python if trim_end(first) == PYTHON_TRACEBACK => Phase::PythonFrames,
            MultilineRule::Go if GO_STARTS.iter().any(|s| first.starts_with(s)) => Phase::GoPanic,
            MultilineRule::Python | MultilineRule::Go => Phase::Complete,
        }
    }

    /// The phase after `line` joins a group in `phase`, or `None` when `line` starts a new group.
    pub fn next(&self, phase: Phase, line: &[u8]) -> Option<Phase> {
        let line = trim_end(line);
        match (self, phase) {
            (_, Phase::Complete) => None,
            (MultilineRule::Java, _) => java_continues(line).then_some(Phase::Open),
            (MultilineRule::StartRegex(start), _) => (!start.is_match(line)).then_some(Phase::Open),
            (_, Phase::PythonFrames) if starts_indented(line) => Some(Phase::PythonFrames),
            (_, Phase::PythonFrames) => Some(Phase::PythonException),
            (_, Phase::PythonException | Phase::PythonChain)
                if line.is_empty() || PYTHON_CHAINS.contains(&line) =>
            {
                Some(Phase::PythonChain)
            }
            (_, Phase::PythonChain) if line == PYTHON_TRACEBACK => Some(Phase::PythonFrames),
            (_, Phase::GoPanic) => go_continues(line).then_some(Phase::GoPanic),
            _ => None,
        }
    }
}

/// A JVM stack trace's continuation lines (`Throwable.printStackTrace`, with `\t` indentation;
/// loggers may indent with spaces).
fn java_continues(line: &[u8]) -> bool {
    let body = trim_start(line);
    (starts_indented(line) && (body.starts_with(b"at ") || body.starts_with(b"... ")))
        || body.starts_with(b"Caused by: ")
        || body.starts_with(b"Suppressed: ")
}

/// A Go panic's continuation lines: blank lines, goroutine headers, frames (`pkg.func(args)`)
/// and their `\tfile:line +0xNN` lines.
fn go_continues(line: &[u8]) -> bool {
    line.is_empty()
        || GO_CONTINUATIONS.iter().any(|s| line.starts_with(s))
        || (!starts_indented(line) && line.contains(&b'(') && line.ends_with(b")"))
}

fn starts_indented(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

fn trim_start(line: &[u8]) -> &[u8] {
    let skip = line
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    &line[skip..]
}

fn trim_end(line: &[u8]) -> &[u8] {
    let keep = line.len()
        - line
            .iter()
            .rev()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
    &line[..keep]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_continuations_are_frames_causes_and_elisions() {
        for line in [
            "\tat com.example.A.b(A.java:1)",
            "    at com.example.A.b(A.java:1)",
            "Caused by: java.io.IOException: broken pipe",
            "\tSuppressed: java.lang.Exception: close failed",
            "\t... 12 more",
            "\t... 5 common frames omitted",
        ] {
            assert_eq!(
                MultilineRule::Java.next(Phase::Open, line.as_bytes()),
                Some(Phase::Open),
                "{line:?}"
            );
        }
        for line in ["INFO at startup", "at the end", "java.lang.Error: x", ""] {
            assert_eq!(
                MultilineRule::Java.next(Phase::Open, line.as_bytes()),
                None,
                "{line:?}"
            );
        }
    }

    #[test]
    fn python_plain_lines_and_go_plain_lines_are_complete_at_once() {
        assert_eq!(MultilineRule::Python.start(b"hello"), Phase::Complete);
        assert_eq!(MultilineRule::Go.start(b"hello"), Phase::Complete);
        assert_eq!(
            MultilineRule::Go.start(b"fatal error: all goroutines are asleep - deadlock!"),
            Phase::GoPanic
        );
    }

    #[test]
    fn a_python_traceback_ends_after_its_exception_line_unless_chained() {
        let rule = MultilineRule::Python;
        let phase = rule.start(b"Traceback (most recent call last):\r");
        assert_eq!(phase, Phase::PythonFrames);
        let phase = rule.next(phase, b"  File \"x.py\", line 1").expect("frame");
        let phase = rule
            .next(phase, b"ValueError: bad")
            .expect("exception line");
        assert_eq!(rule.next(phase, b"INFO next"), None);
        let chained = rule.next(phase, b"").expect("blank before a chain");
        assert_eq!(rule.next(chained, b"INFO next"), None);
    }

    #[test]
    fn annotation_values_name_a_language_a_start_regex_or_off() {
        assert!(matches!(
            MultilineRule::parse_setting("python"),
            Ok(Some(MultilineRule::Python))
        ));
        assert!(matches!(MultilineRule::parse_setting(" off "), Ok(None)));
        let Ok(Some(MultilineRule::StartRegex(start))) =
            MultilineRule::parse_setting(r"start-regex=^\[\d+\]")
        else {
            panic!("a start regex");
        };
        assert!(start.is_match(b"[12] begins"));
        assert!(MultilineRule::parse_setting("start-regex=(").is_err());
        assert!(MultilineRule::parse_setting("cobol").is_err());
    }

    #[test]
    fn language_names_and_regexes_are_checked() {
        assert!(MultilineRule::parse_language("Java").is_ok());
        assert!(MultilineRule::parse_language("ruby").is_err());
        assert!(MultilineRule::start_regex("(").is_err());
    }
}
