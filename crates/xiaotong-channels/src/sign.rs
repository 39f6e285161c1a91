//! Request signers, one per provider, each checked against the vectors in
//! the integration notes (§7) in the unit tests below.
//!
//! They are pure functions of their inputs (no clock, no randomness) so the
//! vectors can be replayed exactly.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::Sha1;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

/// RFC 3986 unreserved characters are kept; everything else is `%XX`
/// (upper-case hex), space is `%20`, `*` is `%2A`, `~` is kept.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes per RFC 3986 (the encoding Aliyun calls `percentEncode`).
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = match HmacSha1::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Sorted `k=v&…` with both sides percent-encoded (Aliyun V1 and V3).
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------- Aliyun V1

/// Aliyun RPC signature V1 string to sign:
/// `METHOD & pe("/") & pe(canonical query)`. `params` must already contain
/// the common parameters and must not contain `Signature`.
pub fn aliyun_v1_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!(
        "{}&{}&{}",
        method,
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// Aliyun RPC signature V1: `Base64(HMAC-SHA1(secret + "&", string_to_sign))`.
pub fn aliyun_v1_signature(
    access_key_secret: &str,
    method: &str,
    params: &[(String, String)],
) -> String {
    let sts = aliyun_v1_string_to_sign(method, params);
    B64.encode(hmac_sha1(
        format!("{access_key_secret}&").as_bytes(),
        sts.as_bytes(),
    ))
}

// ---------------------------------------------------------------- Aliyun V3

/// Inputs of an ACS3-HMAC-SHA256 signature.
#[derive(Debug, Clone)]
pub struct AcsRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Canonical URI (`/` for RPC APIs).
    pub path: &'a str,
    /// Query parameters (unencoded).
    pub query: &'a [(String, String)],
    /// Headers to sign: `host`, `content-type` (if sent) and every `x-acs-*`.
    pub headers: &'a [(String, String)],
    /// `hex(SHA256(body))`, equal to the `x-acs-content-sha256` header.
    pub hashed_payload: &'a str,
}

/// Canonical request and signed-header list for Aliyun V3.
pub fn aliyun_v3_canonical_request(req: &AcsRequest<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let cr = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        req.hashed_payload
    );
    (cr, signed_headers)
}

/// Aliyun V3 signature: returns `(hex(SHA256(canonical_request)), signature, signed_headers)`.
pub fn aliyun_v3_sign(access_key_secret: &str, req: &AcsRequest<'_>) -> (String, String, String) {
    let (cr, signed) = aliyun_v3_canonical_request(req);
    let hashed = sha256_hex(cr.as_bytes());
    let sts = format!("ACS3-HMAC-SHA256\n{hashed}");
    let sig = hex::encode(hmac_sha256(access_key_secret.as_bytes(), sts.as_bytes()));
    (hashed, sig, signed)
}

/// The `Authorization` header value for Aliyun V3.
pub fn aliyun_v3_authorization(
    access_key_id: &str,
    access_key_secret: &str,
    req: &AcsRequest<'_>,
) -> String {
    let (_, sig, signed) = aliyun_v3_sign(access_key_secret, req);
    format!("ACS3-HMAC-SHA256 Credential={access_key_id},SignedHeaders={signed},Signature={sig}")
}

// ---------------------------------------------------------------- Tencent TC3

/// Canonical request for TC3-HMAC-SHA256 (POST, URI `/`, empty query).
/// `headers` are `(name, value)`; both are lower-cased and trimmed.
/// Returns `(canonical_request, signed_headers)`.
pub fn tc3_canonical_request(
    method: &str,
    query: &str,
    headers: &[(String, String)],
    payload: &[u8],
) -> (String, String) {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_lowercase()))
        .collect();
    h.sort();
    let canonical_headers: String = h.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = h
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let cr = format!(
        "{method}\n/\n{query}\n{canonical_headers}\n{signed}\n{}",
        sha256_hex(payload)
    );
    (cr, signed)
}

/// The UTC `YYYY-MM-DD` date of a Unix timestamp (TC3 credential scope).
pub fn utc_date(timestamp: i64) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| "1970-01-01".to_owned())
}

/// TC3 signature over a canonical request: returns `(hex(SHA256(CR)), signature)`.
pub fn tc3_signature(
    secret_key: &str,
    service: &str,
    timestamp: i64,
    canonical_request: &str,
) -> (String, String) {
    let date = utc_date(timestamp);
    let hashed = sha256_hex(canonical_request.as_bytes());
    let sts = format!("TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{hashed}");
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"tc3_request");
    (hashed, hex::encode(hmac_sha256(&k_signing, sts.as_bytes())))
}

/// The TC3 `Authorization` header for a POST with an empty query.
pub fn tc3_authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    timestamp: i64,
    headers: &[(String, String)],
    payload: &[u8],
) -> String {
    let (cr, signed) = tc3_canonical_request("POST", "", headers, payload);
    let (_, sig) = tc3_signature(secret_key, service, timestamp, &cr);
    let date = utc_date(timestamp);
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, SignedHeaders={signed}, Signature={sig}"
    )
}

// ---------------------------------------------------------------- robots

/// DingTalk custom robot 加签: `Base64(HMAC-SHA256(key = secret,
/// msg = ts_ms + "\n" + secret))`, not yet URL-encoded.
pub fn dingtalk_robot_sign(timestamp_ms: i64, secret: &str) -> String {
    let sts = format!("{timestamp_ms}\n{secret}");
    B64.encode(hmac_sha256(secret.as_bytes(), sts.as_bytes()))
}

/// Feishu custom bot signature: `Base64(HMAC-SHA256(key = ts_s + "\n" +
/// secret, msg = ""))` — key and message are the other way round from DingTalk.
pub fn feishu_bot_sign(timestamp_s: i64, secret: &str) -> String {
    let key = format!("{timestamp_s}\n{secret}");
    B64.encode(hmac_sha256(key.as_bytes(), b""))
}

// ---------------------------------------------------------------- webhook

/// Xiaotong webhook signature: `v1=` + `hex(HMAC-SHA256(secret, ts + "." + body))`.
/// See `docs/webhooks.md`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("v1={}", hex::encode(hmac_sha256(secret.as_bytes(), &msg)))
}

/// Verifies a Xiaotong webhook for receivers written in Rust: checks the
/// timestamp is within `tolerance_secs` of `now` and compares the signature
/// in constant time. `signature_header` may list several comma-separated
/// `v1=` values (during secret rotation); any match passes.
pub fn verify_webhook_signature(
    secret: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> bool {
    let Ok(ts) = timestamp_header.trim().parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > tolerance_secs {
        return false;
    }
    let mut msg = format!("{ts}.").into_bytes();
    msg.extend_from_slice(body);
    signature_header.split(',').any(|part| {
        let Some(hex_sig) = part.trim().strip_prefix("v1=") else {
            return false;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(&msg);
        mac.verify_slice(&sig).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn percent_encoding_rules() {
        assert_eq!(percent_encode("a b*c~d/é"), "a%20b%2Ac~d%2F%C3%A9");
    }

    /// Vector #3 (Aliyun doc 101343).
    #[test]
    fn aliyun_v1_vector_3() {
        let params = p(&[
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]);
        assert_eq!(
            aliyun_v1_signature("testSecret", "GET", &params),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
        assert_ne!(
            aliyun_v1_signature("testsecret", "GET", &params),
            "zJDF+Lrzhj/ThnlvIToysFRq6t4="
        );
        assert_eq!(
            percent_encode("zJDF+Lrzhj/ThnlvIToysFRq6t4="),
            "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"
        );
    }

    fn v3_headers(date: &str, nonce: &str) -> Vec<(String, String)> {
        p(&[
            ("host", "ecs.cn-shanghai.aliyuncs.com"),
            ("x-acs-action", "RunInstances"),
            ("x-acs-version", "2014-05-26"),
            ("x-acs-date", date),
            ("x-acs-signature-nonce", nonce),
            ("x-acs-content-sha256", &sha256_hex(b"")),
        ])
    }

    /// Vector #4 (Aliyun V3 doc), both header sets.
    #[test]
    fn aliyun_v3_vector_4() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let query = p(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let empty = sha256_hex(b"");
        let headers = v3_headers("2023-10-26T10:22:32Z", "3156853299f313e23d1673dc12e1703d");
        let req = AcsRequest {
            method: "POST",
            path: "/",
            query: &query,
            headers: &headers,
            hashed_payload: &empty,
        };
        let (hashed, sig, signed) = aliyun_v3_sign("YourAccessKeySecret", &req);
        assert_eq!(
            hashed,
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            sig,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            signed,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        let auth = aliyun_v3_authorization("YourAccessKeyId", "YourAccessKeySecret", &req);
        assert_eq!(
            auth,
            format!("ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders={signed},Signature={sig}")
        );

        let headers = v3_headers("2023-10-26T09:01:01Z", "d410180a5abf7fe235dd9b74aca91fc0");
        let req = AcsRequest {
            headers: &headers,
            ..req
        };
        let (_, sig, _) = aliyun_v3_sign("YourAccessKeySecret", &req);
        assert_eq!(
            sig,
            "e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"
        );
    }

    /// Vector #5 (Tencent TC3 doc).
    #[test]
    fn tencent_tc3_vector_5() {
        let body = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let payload_hash = sha256_hex(body);
        assert!(payload_hash.starts_with("35e9c5b0") && payload_hash.ends_with("f064"));
        let headers = p(&[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Host", "cvm.tencentcloudapi.com"),
        ]);
        let (cr, signed) = tc3_canonical_request("POST", "", &headers, body);
        assert_eq!(signed, "content-type;host");
        let (hashed, sig) =
            tc3_signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", "cvm", 1551113065, &cr);
        assert_eq!(
            hashed,
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            sig,
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
        assert_eq!(utc_date(1551113065), "2019-02-25");
        let auth = tc3_authorization(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "cvm",
            1551113065,
            &headers,
            body,
        );
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, \
             SignedHeaders=content-type;host, \
             Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    /// TC3 uses the UTC date: 2019-02-25 23:30 UTC is already the 26th in Beijing.
    #[test]
    fn tc3_date_is_utc() {
        assert_eq!(utc_date(1551137400), "2019-02-25");
    }

    /// Vector #7 (self-computed).
    #[test]
    fn dingtalk_vector_7() {
        let s = dingtalk_robot_sign(1700000000000, "SECtest");
        assert_eq!(s, "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g=");
        assert_eq!(
            percent_encode(&s),
            "aZLLrriXgn05YbwaGR7knYsLeJADjr9NwLaNNKpxh4g%3D"
        );
    }

    /// Vector #8 (self-computed).
    #[test]
    fn feishu_vector_8() {
        assert_eq!(
            feishu_bot_sign(1700000000, "SECtest"),
            "G7XpBpG8NgG02fJOAhX6FRAObIljmFoxVReo8I62pEk="
        );
    }

    /// The example in docs/webhooks.md.
    #[test]
    fn webhook_doc_example() {
        let body = br#"{"id":"d-1","text":"hello"}"#;
        let sig = webhook_signature("whsec_test", 1700000000, body);
        assert_eq!(sig, WEBHOOK_DOC_SIGNATURE);
        assert!(verify_webhook_signature(
            "whsec_test",
            "1700000000",
            &sig,
            body,
            1700000100,
            300
        ));
        assert!(verify_webhook_signature(
            "whsec_test",
            "1700000000",
            &format!("v1=00, {sig}"),
            body,
            1700000000,
            300
        ));
        assert!(!verify_webhook_signature(
            "whsec_test",
            "1700000000",
            &sig,
            body,
            1700000400,
            300
        ));
        assert!(!verify_webhook_signature(
            "other",
            "1700000000",
            &sig,
            body,
            1700000000,
            300
        ));
        assert!(!verify_webhook_signature(
            "whsec_test",
            "1700000000",
            &sig,
            b"{}",
            1700000000,
            300
        ));
        assert!(!verify_webhook_signature(
            "whsec_test",
            "x",
            &sig,
            body,
            1700000000,
            300
        ));
    }

    const WEBHOOK_DOC_SIGNATURE: &str =
        "v1=3607c47cfb6d789ef09d3e85ad02984f106cf69b7dea482070777bb87a861131";
}
