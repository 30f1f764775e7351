//! Who is calling: the access key and region from the SigV4 `Authorization` header, and the
//! account they act in. Signatures are not verified.

/// Prefix of the access key ids the simulator issues; the account id follows it.
pub const ISSUED_KEY_PREFIX: &str = "ASIASIM";

/// The parsed credential scope of a SigV4 Authorization header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key id.
    pub access_key: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
pub fn parse_authorization(header: &str) -> Option<Caller> {
    let rest = header.trim().strip_prefix("AWS4-HMAC-SHA256")?;
    let cred = rest
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("Credential="))?;
    let mut parts = cred.split('/');
    let access_key = parts.next()?.to_owned();
    let _date = parts.next()?;
    let region = parts.next()?.to_owned();
    let service = parts.next()?.to_owned();
    if access_key.is_empty() || region.is_empty() {
        return None;
    }
    Some(Caller {
        access_key,
        region,
        service,
    })
}

/// The access key id issued for `account` (20 characters, like a real `ASIA...` key).
pub fn issued_access_key(account: &str) -> String {
    format!("{ISSUED_KEY_PREFIX}{account}X")
}

/// The account an issued access key belongs to; `None` for keys the simulator did not issue.
pub fn account_of_issued_key(access_key: &str) -> Option<&str> {
    let rest = access_key.strip_prefix(ISSUED_KEY_PREFIX)?;
    let id = rest.get(..12)?;
    (id.bytes().all(|b| b.is_ascii_digit()) && rest.len() == 13).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sigv4_scope() {
        let c = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261122/eu-west-1/ecs/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .expect("parsed");
        assert_eq!(c.access_key, "AKIDEXAMPLE");
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.service, "ecs");
        assert_eq!(parse_authorization("Basic abc"), None);
    }

    #[test]
    fn issued_keys_round_trip() {
        let k = issued_access_key("123456789012");
        assert_eq!(k.len(), 20);
        assert_eq!(account_of_issued_key(&k), Some("123456789012"));
        assert_eq!(account_of_issued_key("AKIDEXAMPLE"), None);
        assert_eq!(account_of_issued_key("ASIASIM12345678901"), None);
    }
}
