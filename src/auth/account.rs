//! What makes an acceptable username, email address and password; shared by registration
//! and the command line.

use super::password::MAX_PASSWORD_BYTES;

/// 3–64 characters of letters, digits, `.`, `_`, `-` (no `@`, so it never reads as an email).
pub fn valid_username(username: &str) -> Result<(), &'static str> {
    let length = username.chars().count();
    let charset = username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !(3..=64).contains(&length) || !charset {
        return Err("username must be 3-64 letters, digits, '.', '_' or '-'");
    }
    Ok(())
}

/// One `@` with something on both sides, no spaces or control characters, at most 254 bytes.
pub fn valid_email(email: &str) -> Result<(), &'static str> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
    if !ok {
        return Err("invalid email address");
    }
    Ok(())
}

/// At least `min` characters and at most `MAX_PASSWORD_BYTES` bytes; no composition rules.
pub fn valid_password(password: &str, min: usize) -> Result<(), &'static str> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err("password too long");
    }
    if password.chars().count() < min {
        return Err("password too short");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("ozzie").is_ok());
        assert!(valid_username("a.b-c_d").is_ok());
        for bad in ["ab", "has space", "x@y", &"a".repeat(65), "ünï"] {
            assert!(valid_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_and_passwords() {
        assert!(valid_email("Ozzie@Example.com").is_ok());
        for bad in ["", "no-at", "@x", "x@", "a@b@c", "a b@c"] {
            assert!(valid_email(bad).is_err(), "{bad}");
        }
        assert!(valid_password("12345678", 8).is_ok());
        assert!(
            valid_password("ääääääää", 8).is_ok(),
            "length counts characters"
        );
        assert!(valid_password("1234567", 8).is_err());
        assert!(valid_password(&"x".repeat(1025), 8).is_err());
    }
}
