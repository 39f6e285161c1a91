//! Argon2id password hashing, off the async runtime.

use crate::error::{Error, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

pub fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Other(anyhow::anyhow!("password hashing failed: {e}")))
}

pub fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| Error::Other(anyhow::anyhow!("hashing task failed: {e}")))?
}

pub async fn verify(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Password policy: at least 8 characters with a letter and a digit.
pub fn check_policy(password: &str) -> Result<()> {
    let long = password.chars().count() >= 8;
    let letter = password.chars().any(|c| c.is_alphabetic());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    if !(long && letter && digit) || password.len() > 200 {
        return Err(Error::validation(
            "new_password",
            "must be 8 to 200 characters and contain a letter and a digit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_blocking("Secret123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_blocking("Secret123", &h));
        assert!(!verify_blocking("secret123", &h));
        assert!(!verify_blocking("Secret123", "not a hash"));
    }

    #[test]
    fn policy_rejects_weak_passwords() {
        assert!(check_policy("short1").is_err());
        assert!(check_policy("onlyletters").is_err());
        assert!(check_policy("12345678").is_err());
        assert!(check_policy("Demo@2026").is_ok());
    }
}
