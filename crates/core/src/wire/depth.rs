//! A non-recursive structural check of MessagePack bytes, run before serde sees them.
//!
//! It walks the encoding with an explicit stack of remaining element counts, so a payload
//! nested 1,000 levels deep costs a bounded stack and is refused as soon as its depth passes
//! the limit. It also refuses anything that is not exactly one map with every length inside the
//! buffer, so the decoder behind it never meets a length larger than what arrived.

/// Why bytes are not one well-formed, shallow enough MessagePack map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeError {
    /// Nested deeper than the limit.
    TooDeep,
    /// Ends in the middle of a value, or a length points past the end.
    Truncated,
    /// Bytes remain after the top-level value.
    TrailingBytes,
    /// The reserved marker `0xc1`.
    BadMarker,
    /// The top-level value is not a map.
    NotAMap,
}

/// What one marker byte announces.
enum Token {
    /// A scalar with this many payload bytes after the marker (and its length field).
    Scalar(usize),
    /// A string, binary or extension value whose length field is this many bytes wide;
    /// `extra` bytes (an extension's type) follow the length field.
    Sized { width: usize, extra: usize },
    /// An array or map of this many elements (a map counts keys and values).
    Container(u64),
    /// An array or map whose element count field is this many bytes wide; `pairs` doubles it.
    SizedContainer { width: usize, pairs: bool },
}

fn token(marker: u8) -> Result<Token, ShapeError> {
    Ok(match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Token::Scalar(0),
        0x80..=0x8f => Token::Container(u64::from(marker & 0x0f) * 2),
        0x90..=0x9f => Token::Container(u64::from(marker & 0x0f)),
        0xa0..=0xbf => Token::Scalar(usize::from(marker & 0x1f)),
        0xc1 => return Err(ShapeError::BadMarker),
        0xc4 | 0xd9 => Token::Sized { width: 1, extra: 0 },
        0xc5 | 0xda => Token::Sized { width: 2, extra: 0 },
        0xc6 | 0xdb => Token::Sized { width: 4, extra: 0 },
        0xc7 => Token::Sized { width: 1, extra: 1 },
        0xc8 => Token::Sized { width: 2, extra: 1 },
        0xc9 => Token::Sized { width: 4, extra: 1 },
        0xca => Token::Scalar(4),
        0xcb => Token::Scalar(8),
        0xcc | 0xd0 => Token::Scalar(1),
        0xcd | 0xd1 => Token::Scalar(2),
        0xce | 0xd2 => Token::Scalar(4),
        0xcf | 0xd3 => Token::Scalar(8),
        0xd4 => Token::Scalar(2),
        0xd5 => Token::Scalar(3),
        0xd6 => Token::Scalar(5),
        0xd7 => Token::Scalar(9),
        0xd8 => Token::Scalar(17),
        0xdc => Token::SizedContainer {
            width: 2,
            pairs: false,
        },
        0xdd => Token::SizedContainer {
            width: 4,
            pairs: false,
        },
        0xde => Token::SizedContainer {
            width: 2,
            pairs: true,
        },
        0xdf => Token::SizedContainer {
            width: 4,
            pairs: true,
        },
    })
}

fn read_len(bytes: &[u8], at: usize, width: usize) -> Result<u64, ShapeError> {
    let field = bytes.get(at..at + width).ok_or(ShapeError::Truncated)?;
    Ok(field.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
}

/// Checks that `bytes` is exactly one MessagePack map nested at most `max_depth` levels.
pub fn check(bytes: &[u8], max_depth: usize) -> Result<(), ShapeError> {
    if !matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
        return Err(ShapeError::NotAMap);
    }
    // Elements still to read in each open container, innermost last.
    let mut open: Vec<u64> = Vec::with_capacity(max_depth);
    let mut at = 0;
    loop {
        let marker = *bytes.get(at).ok_or(ShapeError::Truncated)?;
        at += 1;
        let children = match token(marker)? {
            Token::Scalar(len) => {
                at += len;
                None
            }
            Token::Sized { width, extra } => {
                let len = read_len(bytes, at, width)?;
                let len = usize::try_from(len).map_err(|_| ShapeError::Truncated)?;
                at = at.saturating_add(width + extra).saturating_add(len);
                None
            }
            Token::Container(n) => Some(n),
            Token::SizedContainer { width, pairs } => {
                let n = read_len(bytes, at, width)?;
                at += width;
                Some(if pairs { n * 2 } else { n })
            }
        };
        if at > bytes.len() {
            return Err(ShapeError::Truncated);
        }
        match children {
            Some(n) if n > 0 => {
                if open.len() == max_depth {
                    return Err(ShapeError::TooDeep);
                }
                open.push(n);
                continue;
            }
            Some(_) if open.len() == max_depth => return Err(ShapeError::TooDeep),
            _ => {}
        }
        // A value is complete: count it against its container, closing every container it
        // completes in turn.
        loop {
            let Some(remaining) = open.last_mut() else {
                return if at == bytes.len() {
                    Ok(())
                } else {
                    Err(ShapeError::TrailingBytes)
                };
            };
            *remaining -= 1;
            if *remaining > 0 {
                break;
            }
            open.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(check(&[0x80], 16), Ok(()));
        assert_eq!(check(&[0x90], 16), Err(ShapeError::NotAMap));
        assert_eq!(check(&[], 16), Err(ShapeError::NotAMap));
        assert_eq!(check(&[0x80, 0x00], 16), Err(ShapeError::TrailingBytes));
        assert_eq!(check(&[0x81, 0xa1, b'a'], 16), Err(ShapeError::Truncated));
        assert_eq!(
            check(&[0x81, 0xa1, b'a', 0xc1], 16),
            Err(ShapeError::BadMarker)
        );
        assert_eq!(
            check(&[0x81, 0xa1, b'a', 0xc4, 0x02, 1], 16),
            Err(ShapeError::Truncated)
        );
        assert_eq!(check(&[0x81, 0xa1, b'a', 0xc4, 0x02, 1, 2], 16), Ok(()));
        // A map that claims 2^32-1 pairs but holds none.
        assert_eq!(
            check(&[0xdf, 0xff, 0xff, 0xff, 0xff], 16),
            Err(ShapeError::Truncated)
        );
        // An empty nested array closes both levels at once.
        assert_eq!(check(&[0x81, 0xa1, b'a', 0x90], 16), Ok(()));
    }

    fn nested(depth: usize) -> Vec<u8> {
        // {"a": [[[...[]...]]]} with `depth` levels in all.
        let mut bytes = vec![0x81, 0xa1, b'a'];
        bytes.extend(std::iter::repeat_n(0x91, depth.saturating_sub(2)));
        bytes.push(0x90);
        bytes
    }

    #[test]
    fn depth_limit() {
        assert_eq!(check(&nested(16), 16), Ok(()));
        assert_eq!(check(&nested(17), 16), Err(ShapeError::TooDeep));
        assert_eq!(check(&nested(1_000), 16), Err(ShapeError::TooDeep));
        assert_eq!(check(&nested(1_000_000), 16), Err(ShapeError::TooDeep));
    }
}
