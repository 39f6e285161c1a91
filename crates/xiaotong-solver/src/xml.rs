//! A tiny element tree over quick-xml that remembers where each element starts.

use crate::error::{Error, Result};
use quick_xml::events::Event;
use quick_xml::Reader;

/// One XML element with its text content and children.
#[derive(Debug, Clone, Default)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
    pub line: u32,
    pub column: u32,
}

/// Maps byte offsets to 1-based line and column numbers.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        LineIndex { starts }
    }

    pub fn locate(&self, text: &str, offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let column = text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line as u32 + 1, column as u32 + 1)
    }
}

impl Element {
    /// First child with this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Trimmed text of the first child with this name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    pub fn syntax(&self, message: impl Into<String>) -> Error {
        Error::Syntax {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }

    /// Parse the trimmed text of a child as a number.
    pub fn child_parse<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.child(name) {
            None => Ok(None),
            Some(c) => {
                let t = c.text.trim();
                if t.is_empty() {
                    return Ok(None);
                }
                t.parse::<T>()
                    .map(Some)
                    .map_err(|_| c.syntax(format!("<{name}>: \"{t}\" is not a valid number")))
            }
        }
    }
}

/// Parse a whole document into its root element.
pub fn parse(text: &str) -> Result<Element> {
    let index = LineIndex::new(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let err_at = |offset: usize, message: String| {
        let (line, column) = index.locate(text, offset);
        Error::Xml {
            line,
            column,
            message,
        }
    };
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader
            .read_event()
            .map_err(|e| err_at(reader.buffer_position() as usize, e.to_string()))?;
        match event {
            Event::Start(e) => {
                let (line, column) = index.locate(text, before);
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                stack.push(Element {
                    name,
                    line,
                    column,
                    ..Element::default()
                });
            }
            Event::Empty(e) => {
                let (line, column) = index.locate(text, before);
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let el = Element {
                    name,
                    line,
                    column,
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => {
                        if root.is_some() {
                            return Err(err_at(before, "more than one root element".into()));
                        }
                        root = Some(el)
                    }
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| err_at(before, "unexpected end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => {
                        if root.is_some() {
                            return Err(err_at(before, "more than one root element".into()));
                        }
                        root = Some(el)
                    }
                }
            }
            Event::Text(t) => {
                let s = t
                    .unescape()
                    .map_err(|e| err_at(before, format!("bad text: {e}")))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&s),
                    None => {
                        if !s.trim().is_empty() {
                            return Err(err_at(before, "text outside the root element".into()));
                        }
                    }
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(Error::Xml {
            line: open.line,
            column: open.column,
            message: format!("element <{}> is never closed", open.name),
        });
    }
    root.ok_or_else(|| err_at(text.len(), "no root element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_line_and_column() {
        let err = parse("<a>\n  <b></c>\n</a>").unwrap_err();
        match err {
            Error::Xml { line, .. } => assert_eq!(line, 2),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn builds_tree() {
        let root = parse("<a><b>x &amp; y</b><c/></a>").unwrap();
        assert_eq!(root.child_text("b"), Some("x & y"));
        assert!(root.child("c").is_some());
    }
}
