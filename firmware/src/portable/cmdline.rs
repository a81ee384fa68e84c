//! Splitting the semihosting command line into arguments.
//!
//! QEMU hands the program its `-semihosting-config arg=...` values joined by single
//! spaces (SYS_GET_CMDLINE), so an argument that itself holds a space must be quoted.
//! The rule, which `ci/qemu-run` applies when it builds QEMU's command line, is a
//! small subset of POSIX shell quoting:
//!
//! - arguments are separated by one or more spaces;
//! - a double-quoted span `"..."` may contain spaces; inside it `\"` stands for `"`
//!   and `\\` for `\`;
//! - outside quotes a backslash takes the next byte literally;
//! - `""` is an empty argument.
//!
//! Splitting happens in place in the caller's buffer (unescaping only ever shortens
//! text), so no allocation is needed.

/// Most arguments the firmware accepts on its command line.
pub const MAX_ARGS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// A `"` was opened and never closed.
    UnclosedQuote,
    /// The line ends in a lone backslash.
    TrailingBackslash,
    /// More than [`MAX_ARGS`] arguments.
    TooMany,
    /// An argument is not valid UTF-8.
    NotUtf8,
}

impl SplitError {
    pub fn as_str(self) -> &'static str {
        match self {
            SplitError::UnclosedQuote => "unclosed double quote",
            SplitError::TrailingBackslash => "trailing backslash",
            SplitError::TooMany => "too many arguments",
            SplitError::NotUtf8 => "argument is not UTF-8",
        }
    }
}

/// The arguments of one command line, as byte ranges of the buffer it was split in.
pub struct Args<'a> {
    buf: &'a str,
    ranges: [(u16, u16); MAX_ARGS],
    len: usize,
}

impl<'a> Args<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        if i >= self.len {
            return None;
        }
        let (start, end) = self.ranges[i];
        self.buf.get(start as usize..end as usize)
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len).filter_map(move |i| self.get(i))
    }
}

/// Splits `line` in place and returns its arguments. `line` must be shorter than 64 KiB.
pub fn split(line: &mut [u8]) -> Result<Args<'_>, SplitError> {
    let mut ranges = [(0u16, 0u16); MAX_ARGS];
    let mut count = 0;
    let mut read = 0;
    let mut write = 0;
    let n = line.len().min(u16::MAX as usize);
    loop {
        while read < n && line[read] == b' ' {
            read += 1;
        }
        if read >= n {
            break;
        }
        if count == MAX_ARGS {
            return Err(SplitError::TooMany);
        }
        let start = write;
        let mut quoted = false;
        while read < n && (quoted || line[read] != b' ') {
            let byte = line[read];
            read += 1;
            match byte {
                b'"' => quoted = !quoted,
                b'\\' if quoted => {
                    // Only `\"` and `\\` are escapes inside quotes, as in the shell.
                    if read < n && (line[read] == b'"' || line[read] == b'\\') {
                        line[write] = line[read];
                        read += 1;
                    } else {
                        line[write] = b'\\';
                    }
                    write += 1;
                }
                b'\\' => {
                    if read >= n {
                        return Err(SplitError::TrailingBackslash);
                    }
                    line[write] = line[read];
                    read += 1;
                    write += 1;
                }
                _ => {
                    line[write] = byte;
                    write += 1;
                }
            }
        }
        if quoted {
            return Err(SplitError::UnclosedQuote);
        }
        ranges[count] = (start as u16, write as u16);
        count += 1;
    }
    let buf = core::str::from_utf8(&line[..write]).map_err(|_| SplitError::NotUtf8)?;
    Ok(Args {
        buf,
        ranges,
        len: count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Result<Vec<String>, SplitError> {
        let mut buf = line.as_bytes().to_vec();
        let args = split(&mut buf)?;
        Ok(args.iter().map(String::from).collect())
    }

    #[test]
    fn splits_on_runs_of_spaces() {
        assert_eq!(words("  a  bc d ").unwrap(), ["a", "bc", "d"]);
        assert!(words("").unwrap().is_empty());
        assert!(words("    ").unwrap().is_empty());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            words(r#"--message "hello world" x"#).unwrap(),
            ["--message", "hello world", "x"]
        );
        assert_eq!(words(r#""a \"q\" \\ \n""#).unwrap(), [r#"a "q" \ \n"#]);
        assert_eq!(words(r#"a\ b"#).unwrap(), ["a b"]);
        assert_eq!(words(r#"pre"mid dle"post"#).unwrap(), ["premid dlepost"]);
        assert_eq!(words(r#""" x"#).unwrap(), ["", "x"]);
        assert_eq!(
            words("\"h\u{e9}llo \u{1F600}\"").unwrap(),
            ["h\u{e9}llo \u{1F600}"]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(words(r#"a "b"#), Err(SplitError::UnclosedQuote));
        assert_eq!(words(r"a\"), Err(SplitError::TrailingBackslash));
        let many = "x ".repeat(MAX_ARGS + 1);
        assert_eq!(words(&many), Err(SplitError::TooMany));
        let mut bad = vec![b'a', 0xff];
        assert_eq!(split(&mut bad).err(), Some(SplitError::NotUtf8));
    }
}
