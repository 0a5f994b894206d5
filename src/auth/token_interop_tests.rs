//! Tokens tollgate signs, checked by jwt-simple (an independent JWT implementation) with
//! nothing but the public parameters published in the JWKS.

use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike, ES256PublicKey, Ed25519PublicKey, EdDSAPublicKeyLike, JWTClaims,
    RS256PublicKey, RSAPublicKeyLike, UnixTimeStamp, VerificationOptions,
};
use serde::Deserialize;

use super::{AUDIENCE, ISSUER, NOW, claims};
use crate::auth::keys::Algorithm;
use crate::auth::keys::tests::{ALGORITHMS, jwk_bytes, jwks, keyring};

/// The claims jwt-simple does not model itself.
#[derive(Debug, Deserialize)]
struct SessionClaim {
    sid: String,
}

fn options(kid: &str) -> VerificationOptions {
    VerificationOptions {
        required_key_id: Some(kid.to_owned()),
        required_signature_type: Some("at+jwt".to_owned()),
        allowed_issuers: Some([ISSUER.to_owned()].into()),
        allowed_audiences: Some([AUDIENCE.to_owned()].into()),
        artificial_time: Some(UnixTimeStamp::from_secs(NOW)),
        ..VerificationOptions::default()
    }
}

#[test]
fn jwt_simple_verifies_our_tokens_with_only_the_jwks_parameters() {
    for alg in ALGORITHMS {
        let keyring = keyring(alg);
        let claims = claims();
        let token = keyring.sign(&claims).expect("sign");
        let jwks = jwks(&keyring);
        let jwk = &jwks["keys"][0];
        let options = Some(options(keyring.kid()));
        let verified: JWTClaims<SessionClaim> = match alg {
            Algorithm::Rs256 => {
                let key =
                    RS256PublicKey::from_components(&jwk_bytes(jwk, "n"), &jwk_bytes(jwk, "e"))
                        .expect("RSA key from n, e");
                key.verify_token(&token, options)
            }
            Algorithm::Es256 => {
                let point = [&[0x04][..], &jwk_bytes(jwk, "x"), &jwk_bytes(jwk, "y")].concat();
                let key = ES256PublicKey::from_bytes(&point).expect("P-256 key from x, y");
                key.verify_token(&token, options)
            }
            Algorithm::EdDsa => {
                let key = Ed25519PublicKey::from_bytes(&jwk_bytes(jwk, "x")).expect("Ed25519 key");
                key.verify_token(&token, options)
            }
        }
        .unwrap_or_else(|e| panic!("{alg}: jwt-simple refused our token: {e}"));

        assert_eq!(verified.issuer.as_deref(), Some(ISSUER), "{alg}");
        assert_eq!(
            verified.subject.as_deref(),
            Some(claims.sub.as_str()),
            "{alg}"
        );
        let audiences = verified.audiences.expect("aud").into_set();
        assert_eq!(audiences, [AUDIENCE.to_owned()].into(), "{alg}");
        assert_eq!(
            verified.issued_at.map(|t| t.as_secs()),
            Some(claims.iat),
            "{alg}"
        );
        assert_eq!(
            verified.invalid_before.map(|t| t.as_secs()),
            Some(claims.nbf),
            "{alg}"
        );
        assert_eq!(
            verified.expires_at.map(|t| t.as_secs()),
            Some(claims.exp),
            "{alg}"
        );
        assert_eq!(
            verified.jwt_id.as_deref(),
            Some(claims.jti.as_str()),
            "{alg}"
        );
        assert_eq!(verified.custom.sid, claims.sid, "{alg}");
    }
}

#[test]
fn jwt_simple_refuses_our_token_once_tampered() {
    // Guards the test above: jwt-simple really checks the signature with these parameters.
    let keyring = keyring(Algorithm::EdDsa);
    let token = keyring.sign(&claims()).expect("sign");
    let (input, signature) = token.rsplit_once('.').expect("parts");
    let first = if signature.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{input}.{first}{}", &signature[1..]);
    let jwks = jwks(&keyring);
    let key = Ed25519PublicKey::from_bytes(&jwk_bytes(&jwks["keys"][0], "x")).expect("key");
    let result = key.verify_token::<SessionClaim>(&tampered, Some(options(keyring.kid())));
    assert!(result.is_err());
}
