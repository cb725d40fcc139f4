//! JSON helpers of the sources: the API error message of an error body, and the elements of a
//! top-level JSON array read chunk by chunk (an export that is never all in memory).

use std::time::Duration;

use serde_json::Value;

/// Longest excerpt of a non-JSON error body kept in a message.
const EXCERPT: usize = 200;

/// The API's own error from an error body: Opendatasoft's `{"error_code", "message"}`, its quota
/// form `{"errorcode", "error", "reset_time"}`, or an excerpt of a non-JSON body (an HTML gateway
/// page: its `<title>`).
pub fn api_error_message(body: &[u8]) -> String {
    // A byte order mark (which some servers write) would make the JSON unreadable, and show.
    let body = super::without_bom(body);
    if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| map.get(*k))
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
        };
        let code = text(&["error_code", "errorcode", "code"]);
        let message = text(&["message", "error", "detail"]);
        let reset = text(&["reset_time"]);
        let mut out = match (code, message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code,
            (None, Some(message)) => message,
            (None, None) => excerpt(&String::from_utf8_lossy(body)),
        };
        if let Some(reset) = reset {
            out.push_str(&format!(" (the quota resets at {reset})"));
        }
        return out;
    }
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        return "empty body".to_owned();
    }
    if let Some(title) = html_title(&text) {
        return title;
    }
    excerpt(&text)
}

/// How long until the quota an API error body says is exhausted resets: its `reset_time` (RFC
/// 3339, Opendatasoft's 429 answers) from `now`; `None` without a readable one.
pub(crate) fn quota_reset_wait(body: &[u8], now: std::time::SystemTime) -> Option<Duration> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let reset = map.get("reset_time")?.as_str()?;
    let at = chrono::DateTime::parse_from_rfc3339(reset.trim()).ok()?;
    let at = std::time::UNIX_EPOCH
        .checked_add(Duration::from_secs(u64::try_from(at.timestamp()).ok()?))?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `<title>` of an HTML page.
fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    let title = text.get(start..end)?.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// `text` with whitespace collapsed, cut at [`EXCERPT`] characters.
fn excerpt(text: &str) -> String {
    let collapsed: Vec<&str> = text.split_whitespace().collect();
    let collapsed = collapsed.join(" ");
    if collapsed.chars().count() <= EXCERPT {
        collapsed
    } else {
        let cut: String = collapsed.chars().take(EXCERPT).collect();
        format!("{cut}…")
    }
}

/// Where the splitter is in the array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// Before the opening `[`.
    Start,
    /// Inside the array.
    Inside,
    /// After the closing `]`.
    End,
}

/// The largest element [`ArraySplitter`] holds: a record is a few KiB; an endless one (a string
/// that never closes) would otherwise grow until memory runs out.
const MAX_ELEMENT_BYTES: usize = 16 << 20;

/// Splits a top-level JSON array into the bytes of its elements as chunks arrive, so a large
/// export is parsed one record at a time. It only tracks nesting and strings; each element is
/// then parsed by `serde_json`, which reports any other syntax error.
#[derive(Debug)]
pub struct ArraySplitter {
    position: Position,
    depth: usize,
    in_string: bool,
    escaped: bool,
    element: Vec<u8>,
    offset: usize,
    count: usize,
}

impl Default for ArraySplitter {
    fn default() -> ArraySplitter {
        ArraySplitter::new()
    }
}

impl ArraySplitter {
    /// A splitter before the array's `[`.
    pub fn new() -> ArraySplitter {
        ArraySplitter {
            position: Position::Start,
            depth: 0,
            in_string: false,
            escaped: false,
            element: Vec::new(),
            offset: 0,
            count: 0,
        }
    }

    /// Feeds the next chunk; returns the elements it completed, in order. An error names the
    /// byte offset.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let mut done = Vec::new();
        for &byte in chunk {
            self.offset += 1;
            match self.position {
                Position::Start => match byte {
                    b'[' => self.position = Position::Inside,
                    b if b.is_ascii_whitespace() => {}
                    // A UTF-8 byte-order mark.
                    0xEF | 0xBB | 0xBF if self.offset <= 3 => {}
                    _ => {
                        return Err(format!(
                            "expected a JSON array, found {:?} at byte {}",
                            char::from(byte),
                            self.offset
                        ));
                    }
                },
                Position::End => {
                    if !byte.is_ascii_whitespace() {
                        return Err(format!(
                            "unexpected data after the end of the array at byte {}",
                            self.offset
                        ));
                    }
                }
                Position::Inside => {
                    if self.in_string {
                        self.element.push(byte);
                        if self.escaped {
                            self.escaped = false;
                        } else if byte == b'\\' {
                            self.escaped = true;
                        } else if byte == b'"' {
                            self.in_string = false;
                        }
                        continue;
                    }
                    match byte {
                        b',' | b']' if self.depth == 0 => {
                            let element = std::mem::take(&mut self.element);
                            if element.is_empty() {
                                // Only `[]` may close without an element.
                                if byte == b',' || self.count > 0 {
                                    return Err(format!(
                                        "an empty element in the array at byte {}",
                                        self.offset
                                    ));
                                }
                            } else {
                                self.count += 1;
                                done.push(element);
                            }
                            if byte == b']' {
                                self.position = Position::End;
                            }
                        }
                        b'"' => {
                            self.in_string = true;
                            self.element.push(byte);
                        }
                        b'{' | b'[' => {
                            self.depth += 1;
                            self.element.push(byte);
                        }
                        b'}' | b']' => {
                            self.depth = self.depth.checked_sub(1).ok_or_else(|| {
                                format!("unbalanced `{}` at byte {}", char::from(byte), self.offset)
                            })?;
                            self.element.push(byte);
                        }
                        b if b.is_ascii_whitespace() && self.element.is_empty() => {}
                        _ => self.element.push(byte),
                    }
                }
            }
        }
        if self.element.len() > MAX_ELEMENT_BYTES {
            return Err(format!(
                "an element of the array is over {} MiB at byte {}: not a list of records (or a \
                 string that never closes)",
                MAX_ELEMENT_BYTES >> 20,
                self.offset
            ));
        }
        Ok(done)
    }

    /// Checks that the array was closed: a body that ends earlier was cut short.
    pub fn finish(&self) -> Result<(), String> {
        match self.position {
            Position::End => Ok(()),
            Position::Start => Err("the body is empty: expected a JSON array".to_owned()),
            Position::Inside => Err(format!(
                "the body ends after {} bytes, inside the array (no closing `]`): it was cut short",
                self.offset
            )),
        }
    }
}

/// The raw text of each element of the array at `path` (object keys from the top) in `body`, in
/// order, so a rejected record keeps exactly the bytes the source sent. `body` must already be
/// known to be valid JSON (parsed once with `serde_json`); an unexpected shape is an error.
pub fn raw_elements<'a>(body: &'a [u8], path: &[&str]) -> Result<Vec<&'a [u8]>, String> {
    let mut scan = Scanner {
        bytes: body,
        pos: 0,
    };
    for key in path {
        scan.member(key)?;
    }
    scan.elements()
}

/// A cursor over valid JSON that skips values without building them.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at byte {}",
                char::from(byte),
                self.pos + 1
            ))
        }
    }

    /// Skips a string (the cursor on its opening quote); returns its raw content.
    fn string(&mut self) -> Result<&'a [u8], String> {
        self.expect(b'"')?;
        let start = self.pos;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'\\' => self.pos += 1,
                b'"' => return Ok(&self.bytes[start..self.pos - 1]),
                _ => {}
            }
        }
        Err("unterminated string".to_owned())
    }

    /// Skips one value; returns its span.
    fn value(&mut self) -> Result<&'a [u8], String> {
        self.whitespace();
        let start = self.pos;
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Ok(&self.bytes[start..self.pos]);
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
                return Err("unterminated object or array".to_owned());
            }
            Some(first) => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b']' | b'}') && !b.is_ascii_whitespace())
                {
                    self.pos += 1;
                }
                // A closing bracket where a value belongs (`[}]`): no value, and no progress.
                if self.pos == start {
                    return Err(format!(
                        "unexpected `{}` at byte {start} where a value belongs",
                        char::from(first)
                    ));
                }
            }
            None => return Err("unexpected end of the body".to_owned()),
        }
        Ok(&self.bytes[start..self.pos])
    }

    /// Moves into the current object's member `key`, onto its value.
    fn member(&mut self, key: &str) -> Result<(), String> {
        self.expect(b'{')?;
        loop {
            self.whitespace();
            if self.peek() == Some(b'}') {
                return Err(format!("no `{key}` member"));
            }
            let name = self.string()?;
            self.expect(b':')?;
            if name == key.as_bytes() {
                return Ok(());
            }
            self.value()?;
            self.whitespace();
            if self.peek() == Some(b',') {
                self.pos += 1;
            }
        }
    }

    /// The elements of the array at the cursor.
    fn elements(&mut self) -> Result<Vec<&'a [u8]>, String> {
        self.expect(b'[')?;
        let mut out = Vec::new();
        loop {
            self.whitespace();
            match self.peek() {
                Some(b']') => return Ok(out),
                Some(b',') => self.pos += 1,
                Some(_) => out.push(self.value()?),
                None => return Err("unterminated array".to_owned()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ArraySplitter, MAX_ELEMENT_BYTES, api_error_message, raw_elements};

    #[test]
    fn an_error_body_after_a_byte_order_mark_is_read() {
        let body = "\u{feff}{\"error_code\": \"ODSQLError\", \"message\": \"Unknown field\"}";
        assert_eq!(
            api_error_message(body.as_bytes()),
            "ODSQLError: Unknown field"
        );
        let page = "\u{feff}<html><head><title>Bad Gateway</title></head></html>";
        assert_eq!(api_error_message(page.as_bytes()), "Bad Gateway");
        assert_eq!(api_error_message("\u{feff}busy".as_bytes()), "busy");
    }

    #[test]
    fn an_endless_element_is_refused_at_its_limit() {
        let mut splitter = ArraySplitter::new();
        assert_eq!(
            splitter.push(br#"[{"a": 1}, ""#).expect("a record"),
            [br#"{"a": 1}"#]
        );
        let chunk = vec![b'x'; 1 << 20];
        let mut fed = 0;
        let error = loop {
            match splitter.push(&chunk) {
                Ok(done) => assert!(done.is_empty()),
                Err(error) => break error,
            }
            fed += chunk.len();
            assert!(fed <= MAX_ELEMENT_BYTES, "not refused");
        };
        assert!(
            error.starts_with("an element of the array is over 16 MiB"),
            "{error}"
        );
    }

    #[test]
    fn a_bracket_where_a_value_belongs_is_an_error_not_an_endless_loop() {
        let error = raw_elements(br#"{"results":[}]}"#, &["results"]).expect_err("invalid");
        assert_eq!(error, "unexpected `}` at byte 12 where a value belongs");
        let elements =
            raw_elements(br#"{"results":[1, {"a":"]"}, "x"]}"#, &["results"]).expect("valid");
        assert_eq!(elements, [&b"1"[..], &br#"{"a":"]"}"#[..], &br#""x""#[..]]);
    }
}
