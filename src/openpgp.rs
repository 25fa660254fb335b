//! openpgp: the OpenPGP primitives berth needs, on sequoia-openpgp.
//!
//! Input: key files, certificates and messages as bytes. Output: plaintext in
//! [`SecretBytes`], ciphertext, recipient ids, and errors written for the
//! operator (what went wrong, then a `help:` line).
//!
//! Invariants:
//! - plaintext and secret key material never reach Debug, Display or an error;
//! - every function here blocks (public-key crypto): async callers use
//!   `spawn_blocking`;
//! - policy is sequoia's `StandardPolicy` at the current time, except that
//!   the runner may decrypt with an expired or revoked key of its own: old
//!   secrets must stay readable while they are being re-encrypted.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{anyhow, Context};
use sequoia_openpgp as sq;
use sq::cert::CertParser;
use sq::crypto::{Password, SessionKey};
use sq::packet::key::{SecretParts, UnspecifiedRole};
use sq::packet::{Key, Tag, PKESK, SKESK};
use sq::parse::stream::{DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper};
use sq::parse::{PacketParser, PacketParserResult, Parse};
use sq::policy::StandardPolicy;
use sq::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message, Recipient};
use sq::types::{RevocationStatus, SymmetricAlgorithm};
use sq::{Cert, KeyHandle, Packet};
use zeroize::Zeroizing;

use crate::error::Hint;

/// How [`message_recipients`] names a PKESK whose recipient is hidden
/// (`gpg --throw-keyids`): any of the runner's keys may open it.
pub const ANONYMOUS_RECIPIENT: &str = "anonymous";

/// Plaintext secret bytes: zeroized on drop; Debug and Display print
/// `<redacted>` so a stray `{:?}` in a log line cannot leak a secret.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The plaintext. Named so that every use is easy to find in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretBytes {}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes::new(bytes)
    }
}

/// Why the runner's key could not be loaded. Names the origin and the
/// certificate, never key material or the passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The file could not be read.
    Read { origin: String, detail: String },
    /// The bytes are not OpenPGP keys (or the armour is damaged).
    Parse { origin: String, detail: String },
    /// Only public certificates: the private half is missing.
    NoSecretKey { origin: String, certs: Vec<String> },
    /// Secret keys, but none that may decrypt (e.g. only a signing key).
    NoDecryptionKey { origin: String, certs: Vec<String> },
    /// The certificate is not valid under the standard policy.
    Invalid {
        origin: String,
        fingerprint: String,
        detail: String,
    },
    /// The key is passphrase-protected and no passphrase was given.
    PassphraseRequired { origin: String, fingerprint: String },
    /// The passphrase does not unlock the key.
    WrongPassphrase { origin: String, fingerprint: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Read { origin, detail } => write!(
                f,
                "cannot read `{origin}`: {detail}"
            ),
            KeyError::Parse { origin, detail } => write!(
                f,
                "`{origin}` is not an OpenPGP private key: {detail}"
            ),
            KeyError::NoSecretKey { origin, certs } => write!(
                f,
                "`{origin}` holds no secret key, only the public certificate(s) {}",
                certs.join(", ")
            ),
            KeyError::NoDecryptionKey { origin, certs } => write!(
                f,
                "`{origin}` holds no secret encryption key (certificate(s) {}): it cannot decrypt secrets",
                certs.join(", ")
            ),
            KeyError::Invalid {
                origin,
                fingerprint,
                detail,
            } => write!(
                f,
                "key {fingerprint} in `{origin}` is not valid: {detail}"
            ),
            KeyError::PassphraseRequired {
                origin,
                fingerprint,
            } => write!(
                f,
                "key {fingerprint} in `{origin}` is passphrase-protected and no passphrase was given"
            ),
            KeyError::WrongPassphrase {
                origin,
                fingerprint,
            } => write!(
                f,
                "the passphrase does not unlock key {fingerprint} in `{origin}`"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl KeyError {
    /// What to do about it (the printer's `help:` line).
    pub fn help(&self) -> Option<String> {
        match self {
            KeyError::Read { .. } => Some("check the path and its permissions".into()),
            KeyError::Parse { .. } => Some("export it with `gpg --export-secret-keys --armor FINGERPRINT`".into()),
            KeyError::NoSecretKey { .. } => Some("export the private key with `gpg --export-secret-keys --armor FINGERPRINT`".into()),
            KeyError::NoDecryptionKey { .. } => Some("export the key including its encryption subkey (`gpg --export-secret-keys --armor FINGERPRINT`)".into()),
            KeyError::Invalid { .. } => Some("check it with `sq inspect` or `gpg --list-packets`, or use another key".into()),
            KeyError::PassphraseRequired { .. } => Some("set BERTH_KEY_PASSPHRASE".into()),
            KeyError::WrongPassphrase { .. } => Some("check BERTH_KEY_PASSPHRASE (a trailing newline counts)".into()),
        }
    }
}

/// Why a message could not be decrypted. The caller prefixes the file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptError {
    /// Not an encrypted OpenPGP message (plaintext, damaged armour, a key…).
    NotOpenPgp(String),
    /// Encrypted, but to none of the runner's keys.
    NotForThisKey {
        recipients: Vec<String>,
        runner: Vec<String>,
    },
    /// Damaged after encryption: truncated, or the integrity check failed.
    Corrupt(String),
    /// Encrypted with a password, to no key.
    PasswordOnly,
    Other(String),
}

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecryptError::NotOpenPgp(detail) => write!(
                f,
                "not an encrypted OpenPGP message: {detail}"
            ),
            DecryptError::NotForThisKey { recipients, runner } => {
                let keys = if recipients.len() == 1 { "key" } else { "keys" };
                write!(
                    f,
                    "encrypted to {} {keys} ({}), none of them the runner's key ({})",
                    recipients.len(),
                    recipients.join(", "),
                    runner.join(", ")
                )
            }
            DecryptError::Corrupt(detail) => write!(
                f,
                "the message is damaged: {detail}"
            ),
            DecryptError::PasswordOnly => f.write_str(
                "encrypted with a password, not to a key; berth decrypts only messages encrypted to the runner's key",
            ),
            DecryptError::Other(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for DecryptError {}

impl DecryptError {
    /// What to do about it (the printer's `help:` line).
    pub fn help(&self) -> Option<String> {
        match self {
            DecryptError::NotOpenPgp (_) => Some("encrypt it with `berth secret encrypt` (or `gpg --encrypt`)".into()),
            DecryptError::NotForThisKey { .. } => Some("re-encrypt it to the runner with `berth secret rekey` (run by someone who can decrypt it), or use the right --key-file".into()),
            DecryptError::Corrupt(_) => Some("it was truncated or modified after encryption; restore it from git or encrypt the secret again".into()),
            DecryptError::PasswordOnly => Some("encrypt it with `berth secret encrypt`".into()),
            _ => None,
        }
    }
}

/// The runner's private key(s), loaded once per run, with every decryption
/// key already unlocked so the passphrase is needed only here.
pub struct RunnerKey {
    certs: Vec<Cert>,
    /// Unlocked decryption (sub)keys, with the index of their cert.
    keys: Vec<(usize, Key<SecretParts, UnspecifiedRole>)>,
}

impl fmt::Debug for RunnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerKey")
            .field("fingerprints", &self.fingerprints())
            .finish_non_exhaustive()
    }
}

impl RunnerKey {
    /// Loads binary or ASCII-armoured secret keys; a file may hold several.
    /// `origin` names where they came from for errors ("--key-file /x/y",
    /// "$BERTH_KEY"). Public-only certificates in the same file are ignored.
    pub fn from_bytes(
        bytes: &[u8],
        origin: &str,
        passphrase: Option<&SecretBytes>,
    ) -> Result<Self, KeyError> {
        let parse_error = |e: anyhow::Error| KeyError::Parse {
            origin: origin.to_string(),
            detail: format!("{e:#}"),
        };
        let mut all = Vec::new();
        for cert in CertParser::from_bytes(bytes).map_err(parse_error)? {
            all.push(cert.map_err(parse_error)?);
        }
        if all.is_empty() {
            return Err(KeyError::Parse {
                origin: origin.to_string(),
                detail: "it holds no OpenPGP key".to_string(),
            });
        }
        let (secret, public): (Vec<Cert>, Vec<Cert>) = all.into_iter().partition(|c| c.is_tsk());
        if secret.is_empty() {
            return Err(KeyError::NoSecretKey {
                origin: origin.to_string(),
                certs: public.iter().map(|c| c.fingerprint().to_hex()).collect(),
            });
        }

        // Unlock the encryption-capable secret keys: the only ones used,
        // and a gpg export may hold a stub (unusable) primary key.
        let policy = StandardPolicy::new();
        let password = passphrase.map(|p| Password::from(p.expose()));
        let mut keys = Vec::new();
        for (index, cert) in secret.iter().enumerate() {
            let fingerprint = cert.fingerprint().to_hex();
            let valid = cert
                .with_policy(&policy, None)
                .map_err(|e| KeyError::Invalid {
                    origin: origin.to_string(),
                    fingerprint: fingerprint.clone(),
                    detail: format!("{e:#}"),
                })?;
            for ka in valid
                .keys()
                .secret()
                .for_storage_encryption()
                .for_transport_encryption()
            {
                let key = ka.key().clone();
                let key = if key.secret().is_encrypted() {
                    let Some(password) = &password else {
                        return Err(KeyError::PassphraseRequired {
                            origin: origin.to_string(),
                            fingerprint,
                        });
                    };
                    key.decrypt_secret(password)
                        .map_err(|_| KeyError::WrongPassphrase {
                            origin: origin.to_string(),
                            fingerprint: fingerprint.clone(),
                        })?
                } else {
                    key
                };
                keys.push((index, key));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoDecryptionKey {
                origin: origin.to_string(),
                certs: secret.iter().map(|c| c.fingerprint().to_hex()).collect(),
            });
        }
        Ok(RunnerKey {
            certs: secret,
            keys,
        })
    }

    pub fn from_file(path: &Path, passphrase: Option<&SecretBytes>) -> Result<Self, KeyError> {
        let origin = path.display().to_string();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| KeyError::Read {
            origin: origin.clone(),
            detail: e.to_string(),
        })?);
        Self::from_bytes(&bytes, &origin, passphrase)
    }

    /// Primary fingerprints, uppercase hex, in file order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.certs
            .iter()
            .map(|c| c.fingerprint().to_hex())
            .collect()
    }

    /// Whether `recipient` (a KeyID or fingerprint) names one of our keys.
    fn opens(&self, recipient: &str) -> bool {
        recipient == ANONYMOUS_RECIPIENT
            || recipient
                .parse::<KeyHandle>()
                .is_ok_and(|h| self.keys.iter().any(|(_, k)| h.aliases(k.key_handle())))
    }
}

/// What the packets before the encrypted data say.
struct Envelope {
    recipients: Vec<String>,
    passwords: bool,
    encrypted: bool,
}

/// Reads the top-level packets up to the encrypted data, without decrypting.
fn envelope(bytes: &[u8]) -> Result<Envelope, String> {
    let mut envelope = Envelope {
        recipients: Vec::new(),
        passwords: false,
        encrypted: false,
    };
    let mut ppr = PacketParser::from_bytes(bytes).map_err(|e| format!("{e:#}"))?;
    while let PacketParserResult::Some(pp) = ppr {
        match &pp.packet {
            Packet::PKESK(pkesk) => envelope.recipients.push(recipient_id(pkesk)),
            Packet::SKESK(_) => envelope.passwords = true,
            Packet::Marker(_) => {}
            p if matches!(p.tag(), Tag::SEIP | Tag::AED) => {
                envelope.encrypted = true;
                break;
            }
            _ => break,
        }
        ppr = pp.next().map_err(|e| format!("{e:#}"))?.1;
    }
    Ok(envelope)
}

fn recipient_id(pkesk: &PKESK) -> String {
    match pkesk.recipient() {
        Some(handle) => handle.to_hex(),
        None => ANONYMOUS_RECIPIENT.to_string(),
    }
}

/// Whether bytes look like an encrypted OpenPGP message (binary or
/// armoured), for a friendly "not encrypted" error. A signed or literal-only
/// OpenPGP message carries its plaintext in the clear, so it is not one.
pub fn is_message(bytes: &[u8]) -> bool {
    envelope(bytes).is_ok_and(|e| e.encrypted || !e.recipients.is_empty() || e.passwords)
}

/// Key IDs / fingerprints (uppercase hex) of the PKESK recipients, in
/// message order, without decrypting. A hidden recipient is
/// [`ANONYMOUS_RECIPIENT`].
pub fn message_recipients(message: &[u8]) -> Result<Vec<String>, DecryptError> {
    let envelope = envelope(message).map_err(DecryptError::NotOpenPgp)?;
    if !envelope.encrypted && envelope.recipients.is_empty() && !envelope.passwords {
        return Err(DecryptError::NotOpenPgp(
            "no encrypted data in it".to_string(),
        ));
    }
    Ok(envelope.recipients)
}

/// Decrypts a message encrypted to the runner's key. Signatures inside the
/// message are not checked: who encrypted a secret is not what berth trusts
/// (the commit signature is).
pub fn decrypt(message: &[u8], key: &RunnerKey) -> Result<SecretBytes, DecryptError> {
    let envelope = envelope(message).map_err(DecryptError::NotOpenPgp)?;
    if envelope.recipients.is_empty() {
        return Err(if envelope.passwords {
            DecryptError::PasswordOnly
        } else if envelope.encrypted {
            DecryptError::Corrupt("encrypted data without any recipient".to_string())
        } else {
            DecryptError::NotOpenPgp("an OpenPGP message, but not encrypted".to_string())
        });
    }
    if !envelope.recipients.iter().any(|r| key.opens(r)) {
        return Err(DecryptError::NotForThisKey {
            recipients: envelope.recipients,
            runner: key.fingerprints(),
        });
    }

    let policy = StandardPolicy::new();
    let mut state = DecryptState::default();
    let result = (|| -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let helper = Helper {
            key,
            state: &mut state,
        };
        let mut decryptor =
            DecryptorBuilder::from_bytes(message)?.with_policy(&policy, None, helper)?;
        Ok(read_zeroizing(&mut decryptor)?)
    })();
    match result {
        Ok(plaintext) if state.opened => Ok(SecretBytes(plaintext)),
        Ok(_) => Err(DecryptError::NotOpenPgp(
            "an OpenPGP message, but not encrypted".to_string(),
        )),
        Err(e) if state.opened => Err(DecryptError::Corrupt(format!("{e:#}"))),
        Err(_) if state.unwrapped => Err(DecryptError::Corrupt(
            "the encrypted data does not decrypt with its session key (integrity check failed)"
                .to_string(),
        )),
        Err(_) if state.tried => Err(DecryptError::Corrupt(
            "the runner's key could not decrypt the session key (the key packet is damaged)"
                .to_string(),
        )),
        Err(e) => Err(DecryptError::Other(format!("{e:#}"))),
    }
}

#[derive(Default)]
struct DecryptState {
    /// A PKESK addressed to one of our keys was tried.
    tried: bool,
    /// Our key decrypted a session key from it.
    unwrapped: bool,
    /// A session key worked: later errors mean a damaged message.
    opened: bool,
}

struct Helper<'k, 's> {
    key: &'k RunnerKey,
    state: &'s mut DecryptState,
}

impl VerificationHelper for Helper<'_, '_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> sq::Result<Vec<Cert>> {
        Ok(Vec::new())
    }

    fn check(&mut self, _structure: MessageStructure) -> sq::Result<()> {
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_, '_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> sq::Result<Option<Cert>> {
        for pkesk in pkesks {
            let recipient = pkesk.recipient();
            for (index, key) in &self.key.keys {
                if recipient
                    .as_ref()
                    .is_some_and(|h| !h.aliases(key.key_handle()))
                {
                    continue;
                }
                self.state.tried = true;
                let mut pair = key.clone().into_keypair()?;
                if let Some((algo, session_key)) = pkesk.decrypt(&mut pair, sym_algo) {
                    self.state.unwrapped = true;
                    if decrypt(algo, &session_key) {
                        self.state.opened = true;
                        return Ok(self.key.certs.get(*index).cloned());
                    }
                }
            }
        }
        Err(anyhow!(
            "none of the runner's keys decrypts the session key"
        ))
    }
}

/// Reads everything into a buffer that is zeroized on drop, growing it by
/// hand so no reallocation leaves a plaintext copy in freed memory.
pub(crate) fn read_zeroizing(reader: &mut dyn Read) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(8 * 1024));
    let mut chunk = Zeroizing::new([0u8; 8 * 1024]);
    loop {
        let n = match reader.read(&mut chunk[..]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.len() + n > out.capacity() {
            let mut bigger =
                Zeroizing::new(Vec::with_capacity((out.len() + n).max(out.capacity() * 2)));
            bigger.extend_from_slice(&out);
            out = bigger;
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Encrypts to every valid encryption-capable subkey (storage or transport)
/// of each cert, under the standard policy now; ASCII-armoured. Every key is
/// included because the holder may keep each on a different device.
pub fn encrypt(plaintext: &SecretBytes, recipients: &[Cert]) -> anyhow::Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Hint::new(
            "no recipient to encrypt to",
            "give at least one certificate (--recipient)",
        )
        .into());
    }
    let policy = StandardPolicy::new();
    let mut keys: Vec<Recipient> = Vec::new();
    for cert in recipients {
        let valid = cert.with_policy(&policy, None).map_err(|e| {
            Hint::new(
                format!("certificate {} is not valid: {e:#}", describe_cert(cert)),
                "use a current certificate of that recipient",
            )
        })?;
        if let RevocationStatus::Revoked(_) = valid.revocation_status() {
            return Err(Hint::new(
                format!("certificate {} is revoked", describe_cert(cert)),
                "drop it from the recipients, or use its replacement",
            )
            .into());
        }
        if let Err(e) = valid.alive() {
            return Err(Hint::new(
                format!("certificate {} has expired ({e})", describe_cert(cert)),
                "ask its owner to extend it, then refresh it in the repo",
            )
            .into());
        }
        let before = keys.len();
        keys.extend(
            valid
                .keys()
                .supported()
                .alive()
                .revoked(false)
                .for_storage_encryption()
                .for_transport_encryption()
                .map(Recipient::from),
        );
        if keys.len() == before {
            return Err(Hint::new(
                format!(
                    "certificate {} has no usable encryption key (none, or all expired or revoked)",
                    describe_cert(cert)
                ),
                "ask its owner for a certificate with a valid encryption subkey",
            )
            .into());
        }
    }

    let mut sink = Vec::new();
    let message = Message::new(&mut sink);
    let message = Armorer::new(message).build()?;
    let message = Encryptor::for_recipients(message, keys)
        .build()
        .context("cannot start encrypting")?;
    let mut literal = LiteralWriter::new(message).build()?;
    literal.write_all(plaintext.expose())?;
    literal.finalize().context("cannot finish encrypting")?;
    Ok(sink)
}

/// Certs (public or secret) from a file holding one or more (a keyring,
/// armoured or binary).
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<Cert>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read certificate file `{}`", path.display()))?;
    certs_from_bytes(&bytes, &path.display().to_string())
}

pub fn certs_from_bytes(bytes: &[u8], origin: &str) -> anyhow::Result<Vec<Cert>> {
    let help = "export certificates with `gpg --export --armor FINGERPRINT` (or `sq cert export`)";
    let mut certs = Vec::new();
    let parser = CertParser::from_bytes(bytes).map_err(|e| {
        Hint::new(
            format!("`{origin}` is not an OpenPGP certificate: {e:#}"),
            help,
        )
    })?;
    for cert in parser {
        certs.push(cert.map_err(|e| {
            Hint::new(
                format!("`{origin}` holds a damaged OpenPGP certificate: {e:#}"),
                help,
            )
        })?);
    }
    if certs.is_empty() {
        return Err(Hint::new(format!("`{origin}` holds no OpenPGP certificate"), help).into());
    }
    Ok(certs)
}

/// Which of `certs` has a (sub)key matching a recipient id from
/// [`message_recipients`] (KeyID or fingerprint).
pub fn cert_for_recipient<'a>(certs: &'a [Cert], recipient: &str) -> Option<&'a Cert> {
    let handle = recipient.parse::<KeyHandle>().ok()?;
    certs
        .iter()
        .find(|c| c.keys().any(|k| handle.aliases(k.key().key_handle())))
}

/// "FPR (First User ID)" for messages; just the fingerprint without one.
pub fn describe_cert(cert: &Cert) -> String {
    let policy = StandardPolicy::new();
    let user_id = cert
        .with_policy(&policy, None)
        .ok()
        .and_then(|vc| vc.primary_userid().ok().map(|u| u.userid().clone()))
        .or_else(|| cert.userids().next().map(|u| u.userid().clone()));
    match user_id {
        Some(u) => format!(
            "{} ({})",
            cert.fingerprint().to_hex(),
            String::from_utf8_lossy(u.value())
        ),
        None => cert.fingerprint().to_hex(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use sq::cert::{CertBuilder, CipherSuite};
    use sq::serialize::{Serialize, SerializeInto};

    use super::*;

    fn generate(user_id: &str, suite: CipherSuite) -> Cert {
        CertBuilder::general_purpose(Some(user_id))
            .set_cipher_suite(suite)
            .generate()
            .unwrap()
            .0
    }

    fn tsk(cert: &Cert) -> Vec<u8> {
        cert.as_tsk().armored().to_vec().unwrap()
    }

    fn runner(cert: &Cert) -> RunnerKey {
        RunnerKey::from_bytes(&tsk(cert), "test key", None).unwrap()
    }

    pub(crate) fn public(cert: &Cert) -> Cert {
        cert.clone().strip_secret_key_material()
    }

    fn secret(text: &str) -> SecretBytes {
        SecretBytes::new(text.as_bytes().to_vec())
    }

    fn dearmor(armored: &[u8]) -> Vec<u8> {
        let mut reader =
            sq::armor::Reader::from_bytes(armored, sq::armor::ReaderMode::Tolerant(None));
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn secret_bytes_never_print() {
        let s = secret("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), b"hunter2");
        assert_eq!(s.len(), 7);
        assert!(!s.is_empty());
        assert_eq!(s, SecretBytes::from(b"hunter2".to_vec()));
        let key = runner(&generate("A <a@example>", CipherSuite::Cv25519));
        assert!(format!("{key:?}").starts_with("RunnerKey { fingerprints: ["));
    }

    #[test]
    fn round_trip_to_two_recipients() {
        let alice = generate("Alice <alice@example>", CipherSuite::Cv25519);
        let bob = generate("Bob <bob@example>", CipherSuite::RSA2k);
        let message = encrypt(&secret("s3cret\n"), &[public(&alice), public(&bob)]).unwrap();
        assert!(message.starts_with(b"-----BEGIN PGP MESSAGE-----"));
        assert!(is_message(&message));
        assert!(is_message(&dearmor(&message)));

        for key in [runner(&alice), runner(&bob)] {
            assert_eq!(decrypt(&message, &key).unwrap(), secret("s3cret\n"));
            assert_eq!(
                decrypt(&dearmor(&message), &key).unwrap(),
                secret("s3cret\n")
            );
        }

        let recipients = message_recipients(&message).unwrap();
        assert_eq!(recipients.len(), 2);
        let certs = [public(&alice), public(&bob)];
        let found: Vec<_> = recipients
            .iter()
            .map(|r| cert_for_recipient(&certs, r).unwrap().fingerprint())
            .collect();
        assert_eq!(found, vec![alice.fingerprint(), bob.fingerprint()]);
        assert_eq!(
            describe_cert(&alice),
            format!("{} (Alice <alice@example>)", alice.fingerprint().to_hex())
        );
    }

    #[test]
    fn wrong_key_lists_recipients_and_runner() {
        let alice = generate("Alice <alice@example>", CipherSuite::Cv25519);
        let bob = generate("Bob <bob@example>", CipherSuite::Cv25519);
        let eve = generate("Eve <eve@example>", CipherSuite::Cv25519);
        let message = encrypt(&secret("x"), &[public(&alice), public(&bob)]).unwrap();
        let err = decrypt(&message, &runner(&eve)).unwrap_err();
        let recipients = message_recipients(&message).unwrap();
        assert_eq!(
            err,
            DecryptError::NotForThisKey {
                recipients: recipients.clone(),
                runner: vec![eve.fingerprint().to_hex()],
            }
        );
        let text = err.to_string();
        assert!(text.starts_with(&format!(
            "encrypted to 2 keys ({}, {}), none of them the runner's key ({})",
            recipients[0],
            recipients[1],
            eve.fingerprint().to_hex()
        )));
        let help = err.help().unwrap_or_default();
        assert!(help.contains("berth secret rekey"), "{help}");
    }

    #[test]
    fn damaged_messages_are_errors_not_panics() {
        let alice = generate("Alice <alice@example>", CipherSuite::Cv25519);
        let key = runner(&alice);
        let plaintext: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let binary = dearmor(&encrypt(&SecretBytes::new(plaintext), &[public(&alice)]).unwrap());

        let mut flipped = binary.clone();
        let middle = flipped.len() / 2;
        for b in &mut flipped[middle..middle + 4] {
            *b ^= 0xff;
        }
        match decrypt(&flipped, &key) {
            Err(DecryptError::Corrupt(_)) | Err(DecryptError::NotOpenPgp(_)) => {}
            other => panic!("expected Corrupt or NotOpenPgp, got {other:?}"),
        }
        match decrypt(&binary[..binary.len() - 100], &key) {
            Err(DecryptError::Corrupt(_)) | Err(DecryptError::NotOpenPgp(_)) => {}
            other => {
                panic!("expected Corrupt or NotOpenPgp for a truncated message, got {other:?}")
            }
        }
        // Any single damaged byte anywhere: an error, never a panic or a
        // wrong plaintext.
        for i in (0..binary.len()).step_by(13) {
            let mut damaged = binary.clone();
            damaged[i] ^= 0x5a;
            assert!(decrypt(&damaged, &key).is_err(), "byte {i}");
        }
    }

    #[test]
    fn not_a_message() {
        let alice = generate("Alice <alice@example>", CipherSuite::Cv25519);
        let key = runner(&alice);
        let public_cert = public(&alice).armored().to_vec().unwrap();
        for bytes in [
            &b"password=hunter2\n"[..],
            &b""[..],
            &public_cert[..],
            &b"-----BEGIN PGP MESSAGE-----\n\n!!!!not base64!!!!\n-----END PGP MESSAGE-----\n"[..],
        ] {
            assert!(!is_message(bytes));
            match decrypt(bytes, &key) {
                Err(DecryptError::NotOpenPgp(_)) => {}
                other => panic!("expected NotOpenPgp, got {other:?}"),
            }
            assert!(matches!(
                message_recipients(bytes),
                Err(DecryptError::NotOpenPgp(_))
            ));
        }
        let err = decrypt(b"password=hunter2\n", &key)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn passphrase_protected_key() {
        let (cert, _) = CertBuilder::general_purpose(Some("P <p@example>"))
            .set_password(Some("correct horse".into()))
            .generate()
            .unwrap();
        let bytes = tsk(&cert);
        let fpr = cert.fingerprint().to_hex();
        let message = encrypt(&secret("locked"), &[public(&cert)]).unwrap();

        let key =
            RunnerKey::from_bytes(&bytes, "$BERTH_KEY", Some(&secret("correct horse"))).unwrap();
        assert_eq!(key.fingerprints(), vec![fpr.clone()]);
        assert_eq!(decrypt(&message, &key).unwrap(), secret("locked"));

        let err = RunnerKey::from_bytes(&bytes, "$BERTH_KEY", None).unwrap_err();
        assert_eq!(
            err,
            KeyError::PassphraseRequired {
                origin: "$BERTH_KEY".into(),
                fingerprint: fpr.clone()
            }
        );
        assert!(err
            .help()
            .unwrap_or_default()
            .contains("BERTH_KEY_PASSPHRASE"));

        let err = RunnerKey::from_bytes(&bytes, "$BERTH_KEY", Some(&secret("wrong"))).unwrap_err();
        assert_eq!(
            err,
            KeyError::WrongPassphrase {
                origin: "$BERTH_KEY".into(),
                fingerprint: fpr.clone()
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&fpr) && text.contains("`$BERTH_KEY`"),
            "{text}"
        );
        assert!(!text.contains("wrong"), "{text}");
    }

    #[test]
    fn public_only_file_holds_no_secret_key() {
        let alice = generate("Alice <alice@example>", CipherSuite::Cv25519);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.asc");
        std::fs::write(&path, public(&alice).armored().to_vec().unwrap()).unwrap();
        let err = RunnerKey::from_file(&path, None).unwrap_err();
        assert!(matches!(err, KeyError::NoSecretKey { .. }));
        let text = err.to_string();
        assert!(text.contains("holds no secret key"), "{text}");
        assert!(text.contains(&alice.fingerprint().to_hex()), "{text}");

        let err = RunnerKey::from_file(&dir.path().join("missing"), None).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err}");
        let err = RunnerKey::from_bytes(b"not a key", "x", None).unwrap_err();
        assert!(matches!(err, KeyError::Parse { .. }), "{err}");
    }

    #[test]
    fn key_file_with_several_keys_and_keyring_of_certs() {
        let alice = generate("Alice <alice@example>", CipherSuite::Cv25519);
        let bob = generate("Bob <bob@example>", CipherSuite::Cv25519);
        let carol = generate("Carol <carol@example>", CipherSuite::Cv25519);
        // Binary TSKs back to back, plus a public-only cert.
        let mut bytes = Vec::new();
        alice.as_tsk().serialize(&mut bytes).unwrap();
        bob.as_tsk().serialize(&mut bytes).unwrap();
        public(&carol).serialize(&mut bytes).unwrap();
        let key = RunnerKey::from_bytes(&bytes, "both", None).unwrap();
        assert_eq!(
            key.fingerprints(),
            vec![alice.fingerprint().to_hex(), bob.fingerprint().to_hex()]
        );
        for cert in [&alice, &bob] {
            let message = encrypt(&secret("hi"), &[public(cert)]).unwrap();
            assert_eq!(decrypt(&message, &key).unwrap(), secret("hi"));
        }

        let certs = certs_from_bytes(&bytes, "keyring").unwrap();
        assert_eq!(certs.len(), 3);
        assert!(certs_from_bytes(b"", "empty")
            .unwrap_err()
            .to_string()
            .contains("holds no OpenPGP certificate"));
    }

    #[test]
    fn encrypt_refuses_a_cert_without_encryption_key() {
        let (signing_only, _) = CertBuilder::new()
            .add_userid("S <s@example>")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let err = encrypt(&secret("x"), std::slice::from_ref(&signing_only))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&signing_only.fingerprint().to_hex()), "{err}");
        assert!(err.contains("no usable encryption key"), "{err}");
        assert!(matches!(
            RunnerKey::from_bytes(&tsk(&signing_only), "s", None),
            Err(KeyError::NoDecryptionKey { .. })
        ));
    }

    /// A throwaway GnuPG home. Short path: gpg-agent's socket path is limited.
    pub(crate) struct Gpg {
        home: tempfile::TempDir,
    }

    impl Gpg {
        pub(crate) fn new() -> Gpg {
            let home = tempfile::Builder::new()
                .prefix("g")
                .tempdir_in("/tmp")
                .unwrap();
            Gpg { home }
        }

        pub(crate) fn home(&self) -> &Path {
            self.home.path()
        }

        pub(crate) fn path(&self, name: &str) -> PathBuf {
            self.home.path().join(name)
        }

        /// Runs gpg, failing the test loudly (gpg is a test requirement).
        pub(crate) fn run(&self, args: &[&str]) -> Vec<u8> {
            let output = Command::new("gpg")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--batch", "--no-tty"])
                .args(args)
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run gpg (GnuPG 2.2 must be installed for this test): {e}")
                });
            assert!(
                output.status.success(),
                "gpg {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        }

        pub(crate) fn import(&self, cert: &Cert) {
            let path = self.path("import.asc");
            std::fs::write(&path, public(cert).armored().to_vec().unwrap()).unwrap();
            self.run(&["--import", path.to_str().unwrap()]);
        }

        /// Encrypts `plaintext` to `fingerprints` with gpg.
        pub(crate) fn encrypt(
            &self,
            plaintext: &[u8],
            fingerprints: &[String],
            armor: bool,
        ) -> Vec<u8> {
            let input = self.path("plain");
            let output = self.path("out");
            let _ = std::fs::remove_file(&output);
            std::fs::write(&input, plaintext).unwrap();
            let mut args = vec!["--trust-model", "always", "--encrypt"];
            if armor {
                args.push("--armor");
            }
            for f in fingerprints {
                args.extend(["-r", f.as_str()]);
            }
            args.extend(["-o", output.to_str().unwrap(), input.to_str().unwrap()]);
            self.run(&args);
            std::fs::read(&output).unwrap()
        }
    }

    impl Drop for Gpg {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--kill", "all"])
                .status();
        }
    }

    #[test]
    fn gnupg_messages_to_sequoia_keys_decrypt() {
        let gpg = Gpg::new();
        let rsa = generate("R <r@example>", CipherSuite::RSA3k);
        let cv = generate("C <c@example>", CipherSuite::Cv25519);
        gpg.import(&rsa);
        gpg.import(&cv);
        let fprs = [rsa.fingerprint().to_hex(), cv.fingerprint().to_hex()];
        let plaintext = b"DB_PASSWORD=correct horse battery staple\n".repeat(50);
        for armor in [false, true] {
            let message = gpg.encrypt(&plaintext, &fprs, armor);
            assert!(is_message(&message));
            assert_eq!(message_recipients(&message).unwrap().len(), 2);
            for cert in [&rsa, &cv] {
                let got = decrypt(&message, &runner(cert)).unwrap();
                assert_eq!(got.expose(), &plaintext[..], "armor={armor}");
            }
        }

        // SEIPDv1 + MDC: damage in the encrypted data (after the two key
        // packets) fails the integrity check.
        let mut damaged = gpg.encrypt(&plaintext, &fprs, false);
        let at = damaged.len() - 40;
        damaged[at] ^= 0x01;
        let err = decrypt(&damaged, &runner(&cv)).unwrap_err();
        assert!(matches!(err, DecryptError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn gnupg_generated_key_decrypts_and_interoperates() {
        let gpg = Gpg::new();
        gpg.run(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            "T <t@example>",
            "default",
            "default",
            "never",
        ]);
        let exported = gpg.run(&["--export-secret-keys", "--armor", "t@example"]);
        let key = RunnerKey::from_bytes(&exported, "gpg export", None).unwrap();
        let fpr = key.fingerprints().remove(0);

        let message = gpg.encrypt(b"from gpg", std::slice::from_ref(&fpr), true);
        assert_eq!(decrypt(&message, &key).unwrap(), secret("from gpg"));

        // And the other way: berth encrypts, gpg decrypts.
        let public_certs =
            certs_from_bytes(&gpg.run(&["--export", "--armor", &fpr]), "gpg").unwrap();
        let to_gpg = encrypt(&secret("from berth"), &public_certs).unwrap();
        let path = gpg.path("to-gpg.asc");
        std::fs::write(&path, to_gpg).unwrap();
        let out = gpg.run(&["--decrypt", path.to_str().unwrap()]);
        assert_eq!(out, b"from berth");
    }
}
