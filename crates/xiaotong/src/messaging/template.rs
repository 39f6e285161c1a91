//! Templates: minijinja sources checked at save time (syntax with line
//! numbers, unknown variables) and rendered per recipient.

use super::model::{Content, Rendered};
use crate::error::{Error, FieldError, Result};
use minijinja::{Environment, Value};

/// Variables every template may use, with their fields.
pub const RECIPIENT_FIELDS: &[&str] = &["name", "kind", "number", "class", "department"];
pub const STUDENT_FIELDS: &[&str] = &["name", "number", "class"];
pub const SENDER_FIELDS: &[&str] = &["name"];
pub const SCHOOL_FIELDS: &[&str] = &["name"];
pub const MESSAGE_FIELDS: &[&str] = &["title", "kind", "published_at", "url"];

fn new_env<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env
}

/// The template fields of a content, with their names as the API spells them.
fn fields(c: &Content) -> Vec<(&'static str, &str)> {
    let mut v = vec![
        ("content.title", c.title.as_str()),
        ("content.body", c.body.as_str()),
    ];
    if let Some(s) = &c.sms_text {
        v.push(("content.sms_text", s));
    }
    if let Some(s) = &c.email_html {
        v.push(("content.email_html", s));
    }
    if let Some(s) = &c.email_text {
        v.push(("content.email_text", s));
    }
    if let Some(s) = &c.im_markdown {
        v.push(("content.im_markdown", s));
    }
    v
}

/// Checks every source of a content: syntax errors and variables that are
/// neither built in nor in `declared`, each reported with its line.
pub fn validate(c: &Content, declared: &[String]) -> Result<()> {
    let mut errors = Vec::new();
    if c.title.trim().is_empty() {
        errors.push(FieldError::new(
            "content.title",
            "标题不能为空 / the title is empty",
        ));
    }
    if c.title.chars().count() > 300 {
        errors.push(FieldError::new(
            "content.title",
            "标题最多 300 字 / at most 300 characters",
        ));
    }
    let env = new_env();
    for (field, src) in fields(c) {
        let tmpl = match env.template_from_str(src) {
            Ok(t) => t,
            Err(e) => {
                let line = e.line().unwrap_or(1);
                errors.push(FieldError::new(
                    field,
                    format!(
                        "第 {line} 行模板语法错误 / template syntax error on line {line}: {}",
                        e.detail().unwrap_or(&e.kind().to_string())
                    ),
                ));
                continue;
            }
        };
        let mut unknown: Vec<String> = tmpl
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !known_variable(v, declared))
            .collect();
        unknown.sort();
        for v in unknown {
            let line = line_of(src, &v);
            errors.push(FieldError::new(
                field,
                format!(
                    "第 {line} 行使用了未定义的变量 {v} / unknown variable `{v}` on line {line}"
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

fn known_variable(v: &str, declared: &[String]) -> bool {
    let mut parts = v.splitn(3, '.');
    let root = parts.next().unwrap_or_default();
    let field = parts.next();
    let allowed: &[&str] = match root {
        "recipient" => RECIPIENT_FIELDS,
        "student" => STUDENT_FIELDS,
        "sender" => SENDER_FIELDS,
        "school" => SCHOOL_FIELDS,
        "message" => MESSAGE_FIELDS,
        "vars" => return true,
        _ => return declared.iter().any(|d| d == root),
    };
    field.is_none_or(|f| allowed.contains(&f))
}

/// First line (1-based) where `name` appears inside a `{{ }}` or `{% %}` block.
fn line_of(src: &str, name: &str) -> usize {
    let mut in_block = false;
    for (i, line) in src.lines().enumerate() {
        let mut rest = line;
        loop {
            if in_block {
                let end = rest.find("}}").or_else(|| rest.find("%}"));
                let segment = &rest[..end.unwrap_or(rest.len())];
                if contains_word(segment, name) {
                    return i + 1;
                }
                match end {
                    Some(e) => {
                        in_block = false;
                        rest = &rest[e + 2..];
                    }
                    None => break,
                }
            } else {
                match rest.find("{{").or_else(|| rest.find("{%")) {
                    Some(s) => {
                        in_block = true;
                        rest = &rest[s + 2..];
                    }
                    None => break,
                }
            }
        }
    }
    1
}

fn contains_word(hay: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    hay.match_indices(word).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + word.len()..].chars().next();
        !before.is_some_and(|c| is_ident(c) || c == '.') && !after.is_some_and(is_ident)
    })
}

/// Everything a template sees for one recipient.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Context {
    pub recipient: serde_json::Value,
    pub student: serde_json::Value,
    pub sender: serde_json::Value,
    pub school: serde_json::Value,
    pub message: serde_json::Value,
    pub vars: serde_json::Value,
}

impl Context {
    fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        // Caller variables are visible by name and under `vars`.
        if let serde_json::Value::Object(vars) = &self.vars {
            for (k, v) in vars {
                map.insert(k.clone(), v.clone());
            }
        }
        map.insert("vars".into(), self.vars.clone());
        map.insert("recipient".into(), self.recipient.clone());
        map.insert("student".into(), self.student.clone());
        map.insert("sender".into(), self.sender.clone());
        map.insert("school".into(), self.school.clone());
        map.insert("message".into(), self.message.clone());
        Value::from_serialize(&map)
    }
}

/// A content compiled once and rendered for many recipients.
pub struct Compiled {
    env: Environment<'static>,
    has: [bool; 4],
}

const SMS: usize = 0;
const EMAIL_HTML: usize = 1;
const EMAIL_TEXT: usize = 2;
const IM: usize = 3;

impl Compiled {
    pub fn new(c: &Content) -> Result<Compiled> {
        let mut env = new_env();
        let mut add = |name: &'static str, field: &str, src: &str| {
            env.add_template_owned(name, src.to_string())
                .map_err(|e| Error::Validation(vec![FieldError::new(field, e.to_string())]))
        };
        add("title", "content.title", &c.title)?;
        add("body", "content.body", &c.body)?;
        let mut has = [false; 4];
        let variants = [
            ("sms", "content.sms_text", &c.sms_text),
            // The .html name turns on escaping of what variables put in.
            ("email.html", "content.email_html", &c.email_html),
            ("email_text", "content.email_text", &c.email_text),
            ("im", "content.im_markdown", &c.im_markdown),
        ];
        for (i, (name, field, src)) in variants.into_iter().enumerate() {
            if let Some(src) = src {
                add(name, field, src)?;
                has[i] = true;
            }
        }
        Ok(Compiled { env, has })
    }

    fn render_one(&self, name: &str, v: &Value) -> String {
        match self.env.get_template(name) {
            // Runtime errors (a filter failing on odd data) leave the raw
            // source rather than lose the message.
            Ok(t) => t.render(v).unwrap_or_else(|_| t.source().to_string()),
            Err(_) => String::new(),
        }
    }

    /// Renders every variant for one recipient.
    pub fn render(&self, ctx: &Context) -> Rendered {
        let v = ctx.to_value();
        let opt = |i: usize, name: &str| self.has[i].then(|| self.render_one(name, &v));
        let title = self.render_one("title", &v).trim().to_string();
        let body = self.render_one("body", &v);
        let body_html = markdown_html(&body);
        Rendered {
            email_html: opt(EMAIL_HTML, "email.html")
                .map(|h| sanitize(&h))
                .unwrap_or_else(|| body_html.clone()),
            text: opt(EMAIL_TEXT, "email_text").unwrap_or_else(|| body.clone()),
            sms_text: opt(SMS, "sms"),
            im_markdown: opt(IM, "im").unwrap_or_else(|| body.clone()),
            title,
            body_html,
        }
    }
}

/// Markdown to HTML, sanitized (no scripts, no event handlers, safe links).
pub fn markdown_html(md: &str) -> String {
    use pulldown_cmark::{html, Options, Parser};
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let mut out = String::with_capacity(md.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(md, opts));
    sanitize(&out)
}

pub fn sanitize(html: &str) -> String {
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer"))
        .clean(html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(body: &str) -> Content {
        Content {
            title: "通知".into(),
            body: body.into(),
            ..Default::default()
        }
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = validate(&content("第一行\n第二行 {{ recipient.name \n"), &[]).unwrap_err();
        let Error::Validation(f) = err else { panic!() };
        assert_eq!(f[0].field, "content.body");
        assert!(f[0].message.contains("line 2"), "{}", f[0].message);
    }

    #[test]
    fn unknown_variables_are_refused_with_their_line() {
        let err = validate(
            &content("您好 {{ recipient.name }}\n\n{{ exam_room }} 考场\n{{ recipient.salary }}"),
            &[],
        )
        .unwrap_err();
        let Error::Validation(f) = err else { panic!() };
        let msgs: Vec<_> = f.iter().map(|e| e.message.clone()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].contains("`exam_room` on line 3"), "{msgs:?}");
        assert!(msgs[1].contains("`recipient.salary` on line 4"), "{msgs:?}");
        // Declared caller variables are fine.
        validate(
            &content("{{ recipient.name }} {{ exam_room }}"),
            &["exam_room".into()],
        )
        .unwrap();
    }

    #[test]
    fn renders_per_recipient_and_sanitizes() {
        let c = Content {
            title: "{{ student.name }} 的成绩".into(),
            body: "**{{ recipient.name }}** 家长您好 <script>alert(1)</script> [链接](javascript:alert(1))".into(),
            sms_text: Some("{{ recipient.name }}: {{ score }}".into()),
            ..Default::default()
        };
        let compiled = Compiled::new(&c).unwrap();
        let out = compiled.render(&Context {
            recipient: serde_json::json!({"name": "李四"}),
            student: serde_json::json!({"name": "张三"}),
            vars: serde_json::json!({"score": 98}),
            ..Default::default()
        });
        assert_eq!(out.title, "张三 的成绩");
        assert!(
            out.body_html.contains("<strong>李四</strong>"),
            "{}",
            out.body_html
        );
        assert!(!out.body_html.contains("<script"), "{}", out.body_html);
        assert!(!out.body_html.contains("javascript:"), "{}", out.body_html);
        assert_eq!(out.sms_text.as_deref(), Some("李四: 98"));
    }

    #[test]
    fn email_html_escapes_variables() {
        let c = Content {
            title: "t".into(),
            body: "b".into(),
            email_html: Some("<p>{{ recipient.name }}</p>".into()),
            ..Default::default()
        };
        let out = Compiled::new(&c).unwrap().render(&Context {
            recipient: serde_json::json!({"name": "<img src=x onerror=alert(1)>"}),
            ..Default::default()
        });
        assert!(!out.email_html.contains("<img"), "{}", out.email_html);
    }
}
