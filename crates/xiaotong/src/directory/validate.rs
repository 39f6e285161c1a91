//! Field validation and normalization shared by the API and bulk import.

use pinyin::ToPinyin;
use regex::Regex;
use std::sync::OnceLock;

/// Mainland mobile number: optional +86, 11 digits starting 1[3-9].
pub fn normalize_phone(s: &str) -> Option<String> {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = digits
        .strip_prefix("+86")
        .or_else(|| digits.strip_prefix("0086"))
        .unwrap_or(&digits);
    let ok = digits.len() == 11
        && digits.starts_with('1')
        && matches!(digits.as_bytes()[1], b'3'..=b'9')
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.to_string())
}

pub fn mask_phone(p: &str) -> String {
    if p.len() == 11 {
        format!("{}****{}", &p[..3], &p[7..])
    } else {
        "****".into()
    }
}

fn email_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$").expect("valid regex")
    })
}

pub fn normalize_email(s: &str) -> Option<String> {
    let e = s.trim().to_lowercase();
    (e.len() <= 254 && email_re().is_match(&e)).then_some(e)
}

/// Resident ID number (GB 11643-1999): 17 digits and a checksum digit or X.
pub fn normalize_id_number(s: &str) -> Option<String> {
    let id = s.trim().to_uppercase();
    let b = id.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return None;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17]
        .iter()
        .zip(W)
        .map(|(d, w)| (d - b'0') as u32 * w)
        .sum();
    (C[(sum % 11) as usize] == b[17]).then_some(id)
}

pub fn valid_number(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn valid_username(s: &str) -> bool {
    (3..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

pub fn parse_gender(s: &str) -> Option<&'static str> {
    match s.trim().to_lowercase().as_str() {
        "男" | "m" | "male" => Some("male"),
        "女" | "f" | "female" => Some("female"),
        _ => None,
    }
}

pub const KINDS: &[&str] = &["staff", "teacher", "student", "parent", "third_party"];

pub fn parse_kind(s: &str) -> Option<&'static str> {
    Some(match s.trim().to_lowercase().as_str() {
        "学生" | "student" => "student",
        "教师" | "老师" | "teacher" => "teacher",
        "职工" | "教职工" | "员工" | "staff" => "staff",
        "家长" | "parent" => "parent",
        "第三方" | "第三方人员" | "third_party" | "third-party" => "third_party",
        _ => return None,
    })
}

/// Full pinyin without tones ("zhangsan") and initials ("zs"), lower case.
/// Characters without a reading are kept as they are, lower-cased.
pub fn pinyin_of(name: &str) -> (String, String) {
    let mut full = String::new();
    let mut initials = String::new();
    for (c, py) in name.chars().zip(name.to_pinyin()) {
        match py {
            Some(p) => {
                full.push_str(p.plain());
                initials.push_str(p.first_letter());
            }
            None if c.is_alphanumeric() => {
                for l in c.to_lowercase() {
                    full.push(l);
                    initials.push(l);
                }
            }
            None => {}
        }
    }
    (full, initials)
}

/// Everything a person is found by, lower-cased, for a single `LIKE '%q%'`.
pub fn search_key(
    name: &str,
    pinyin: &str,
    initials: &str,
    number: Option<&str>,
    username: Option<&str>,
    email: Option<&str>,
) -> String {
    let mut k = format!("{name}|{pinyin}|{initials}");
    for part in [number, username, email].into_iter().flatten() {
        k.push('|');
        k.push_str(part);
    }
    let k = k.to_lowercase();
    // Stay within the column: cut at a character boundary.
    k.chars().take(700).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("138-0013-8000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_phone("+8613800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(normalize_phone("12800138000"), None);
        assert_eq!(normalize_phone("1380013800"), None);
        assert_eq!(mask_phone("13800138000"), "138****8000");
    }

    #[test]
    fn id_numbers_check_the_checksum() {
        assert_eq!(
            normalize_id_number("11010519491231002x").as_deref(),
            Some("11010519491231002X")
        );
        assert_eq!(normalize_id_number("110105194912310021"), None);
        assert_eq!(normalize_id_number("1101051949123100"), None);
    }

    #[test]
    fn pinyin_and_initials() {
        assert_eq!(pinyin_of("张三"), ("zhangsan".into(), "zs".into()));
        assert_eq!(pinyin_of("李A"), ("lia".into(), "la".into()));
    }

    #[test]
    fn emails_kinds_genders() {
        assert_eq!(
            normalize_email(" A.B@Example.com ").as_deref(),
            Some("a.b@example.com")
        );
        assert_eq!(normalize_email("nope@"), None);
        assert_eq!(parse_kind("学生"), Some("student"));
        assert_eq!(parse_kind("x"), None);
        assert_eq!(parse_gender("女"), Some("female"));
    }
}
