//! signature: is a commit signed by someone the runner trusts?
//!
//! Input: a repository, a commit id, the runner's [`TrustedSigners`] (from
//! `--trust FILE` / BERTH_TRUST, never from the repo: whoever can push could
//! otherwise trust themselves) and the time to judge keys at.
//! Output: the [`Signer`], or a [`CommitSignatureError`] saying what to do.
//!
//! Invariants:
//! - only OpenPGP signatures in the `gpgsig` header count (`git commit -S`);
//! - a key must be valid both when it signed and *now*: an operator who
//!   revokes a key, or lets it expire, stops its commits from deploying, and
//!   a backdated signature by an expired key does not pass;
//! - blocking (crypto and git): async callers use `spawn_blocking`.

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use sequoia_openpgp as sq;
use sq::cert::amalgamation::ValidAmalgamation;
use sq::packet::Signature;
use sq::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationError, VerificationHelper,
};
use sq::parse::Parse;
use sq::policy::{Policy, StandardPolicy};
use sq::types::RevocationStatus;
use sq::{Cert, Fingerprint, KeyHandle};

use crate::openpgp;

/// The certs allowed to sign deployable commits (`--trust FILE` /
/// BERTH_TRUST). Secret key material in the file is dropped on load.
#[derive(Debug, Clone)]
pub struct TrustedSigners {
    certs: Vec<Cert>,
    origin: String,
}

impl TrustedSigners {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let certs = openpgp::read_certs(path).with_context(|| {
            format!("cannot load the trusted signers from `{}`", path.display())
        })?;
        Ok(Self::from_certs(certs, path.display().to_string()))
    }

    /// `origin` names where the certs came from, for errors.
    pub fn from_certs(certs: Vec<Cert>, origin: impl Into<String>) -> Self {
        TrustedSigners {
            certs: certs
                .into_iter()
                .map(Cert::strip_secret_key_material)
                .collect(),
            origin: origin.into(),
        }
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Who signed a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// Primary fingerprint of the signer's certificate, uppercase hex.
    pub fingerprint: String,
    /// The certificate's primary User ID, if it has one.
    pub user_id: Option<String>,
}

/// Why a commit may not deploy. `commit` is the full id; `fingerprint` is
/// the primary fingerprint of the signer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitSignatureError {
    Unsigned {
        commit: String,
    },
    /// Signed by a key that is not in the trust list; `issuer` is the
    /// signature's issuer fingerprint (or key id).
    UnknownKey {
        commit: String,
        issuer: String,
    },
    /// The signer's key (primary or signing subkey) had expired when it
    /// signed, or has expired by now.
    Expired {
        commit: String,
        fingerprint: String,
    },
    Revoked {
        commit: String,
        fingerprint: String,
    },
    /// The signature does not match the commit: the commit was modified.
    BadSignature {
        commit: String,
        fingerprint: String,
    },
    Malformed {
        commit: String,
        detail: String,
    },
}

impl fmt::Display for CommitSignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitSignatureError::Unsigned { commit } => write!(
                f,
                "commit {commit} is not signed"
            ),
            CommitSignatureError::UnknownKey { commit, issuer } => write!(
                f,
                "commit {commit} is signed by key {issuer}, which is not in the trust list"
            ),
            CommitSignatureError::Expired { commit, fingerprint } => write!(
                f,
                "commit {commit} is signed by key {fingerprint}, which has expired"
            ),
            CommitSignatureError::Revoked { commit, fingerprint } => write!(
                f,
                "commit {commit} is signed by key {fingerprint}, which is revoked"
            ),
            CommitSignatureError::BadSignature { commit, fingerprint } => write!(
                f,
                "commit {commit} has a signature by key {fingerprint} that does not match its content: the commit was modified after signing"
            ),
            CommitSignatureError::Malformed { commit, detail } => write!(
                f,
                "cannot check the signature of commit {commit}: {detail}"
            ),
        }
    }
}

impl std::error::Error for CommitSignatureError {}

impl CommitSignatureError {
    /// What to do about it (the printer's `help:` line).
    pub fn help(&self) -> Option<String> {
        match self {
            CommitSignatureError::Unsigned { .. } => Some("sign it with a key in --trust (`git commit -S`, or `git commit --amend -S --no-edit`)".into()),
            CommitSignatureError::UnknownKey { issuer, .. } => Some(format!("add the signer's certificate to the trust file if it should deploy (`gpg --export --armor {issuer} >> TRUST_FILE`), or re-sign the commit with a trusted key")),
            CommitSignatureError::Expired { fingerprint, .. } => Some(format!("extend the key's expiry (`gpg --quick-set-expire {fingerprint} 1y`) and refresh it in the trust file, or re-sign the commit with a current trusted key")),
            CommitSignatureError::Revoked { .. } => Some("re-sign the commit with a current trusted key, and drop the revoked certificate from the trust file".into()),
            CommitSignatureError::BadSignature { .. } => Some("do not deploy it; find out who rewrote it, then sign a good commit (`git commit -S`)".into()),
            CommitSignatureError::Malformed { .. } => Some("re-sign the commit with an OpenPGP key in --trust (`git commit --amend -S --no-edit`)".into()),
        }
    }
}

/// Verifies the `gpgsig` of `commit` against `trusted`, judging keys at
/// `now` as well as at the signature's time. Any one good signature passes.
pub fn verify_commit(
    repo: &git2::Repository,
    commit: git2::Oid,
    trusted: &TrustedSigners,
    now: SystemTime,
) -> Result<Signer, CommitSignatureError> {
    let id = commit.to_string();
    let malformed = |detail: String| CommitSignatureError::Malformed {
        commit: id.clone(),
        detail,
    };
    repo.find_commit(commit)
        .map_err(|e| malformed(format!("it is not in the repository: {}", e.message())))?;
    let (signature, signed) = match repo.extract_signature(&commit, None) {
        Ok(pair) => pair,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            return Err(CommitSignatureError::Unsigned { commit: id })
        }
        Err(e) => {
            return Err(malformed(format!(
                "cannot read its signature: {}",
                e.message()
            )))
        }
    };
    let signature: &[u8] = &signature;
    if signature.starts_with(b"-----BEGIN SSH SIGNATURE") {
        return Err(malformed(
            "it has an SSH signature; berth verifies OpenPGP signatures only".to_string(),
        ));
    }
    if signature.starts_with(b"-----BEGIN SIGNED MESSAGE") {
        return Err(malformed(
            "it has an X.509 (S/MIME) signature; berth verifies OpenPGP signatures only"
                .to_string(),
        ));
    }

    let policy = StandardPolicy::new();
    let helper = Helper {
        certs: &trusted.certs,
        policy: &policy,
        now,
        outcomes: Vec::new(),
    };
    let mut verifier = DetachedVerifierBuilder::from_bytes(signature)
        .and_then(|b| b.with_policy(&policy, Some(now), helper))
        .map_err(|e| malformed(format!("its signature is not valid OpenPGP: {e:#}")))?;
    let result = verifier.verify_bytes(&signed[..]);
    let outcomes = verifier.into_helper().outcomes;
    if let Some(signer) = outcomes.iter().find_map(|o| match o {
        Outcome::Good(s) => Some(s.clone()),
        Outcome::Bad(_) => None,
    }) {
        return Ok(signer);
    }
    // The most useful error: a verdict about a trusted key beats "unknown key".
    let mut errors: Vec<Problem> = outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Bad(p) => Some(p),
            Outcome::Good(_) => None,
        })
        .collect();
    errors.sort_by_key(|p| matches!(p, Problem::UnknownKey(_)));
    match errors.into_iter().next() {
        Some(problem) => Err(problem.into_error(id)),
        None => Err(malformed(match result {
            Err(e) => format!("{e:#}"),
            Ok(()) => "its signature holds no OpenPGP signature".to_string(),
        })),
    }
}

/// Is `descendant` equal to or a descendant of `ancestor`? For the "refuse
/// to go backwards" check: a runner must not deploy an older commit than it
/// already did, even one that is validly signed.
pub fn is_descendant_or_equal(
    repo: &git2::Repository,
    descendant: git2::Oid,
    ancestor: git2::Oid,
) -> anyhow::Result<bool> {
    for oid in [descendant, ancestor] {
        repo.find_commit(oid).map_err(|e| {
            anyhow::Error::new(e).context(crate::error::Hint::new(
                format!("commit {oid} is not in the repository"),
                "fetch the branch it is on, or check the commit id",
            ))
        })?;
    }
    if descendant == ancestor {
        return Ok(true);
    }
    repo.graph_descendant_of(descendant, ancestor)
        .with_context(|| format!("cannot walk the history from {descendant} to {ancestor}"))
}

/// One signature's verdict, owned (the verifier's results borrow from it).
enum Outcome {
    Good(Signer),
    Bad(Problem),
}

enum Problem {
    UnknownKey(String),
    Expired(String),
    Revoked(String),
    BadSignature(String),
    Malformed(String),
}

impl Problem {
    fn into_error(self, commit: String) -> CommitSignatureError {
        match self {
            Problem::UnknownKey(issuer) => CommitSignatureError::UnknownKey { commit, issuer },
            Problem::Expired(fingerprint) => CommitSignatureError::Expired {
                commit,
                fingerprint,
            },
            Problem::Revoked(fingerprint) => CommitSignatureError::Revoked {
                commit,
                fingerprint,
            },
            Problem::BadSignature(fingerprint) => CommitSignatureError::BadSignature {
                commit,
                fingerprint,
            },
            Problem::Malformed(detail) => CommitSignatureError::Malformed { commit, detail },
        }
    }
}

struct Helper<'a> {
    certs: &'a [Cert],
    policy: &'a dyn Policy,
    now: SystemTime,
    outcomes: Vec<Outcome>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> sq::Result<Vec<Cert>> {
        Ok(self.certs.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> sq::Result<()> {
        for layer in structure.into_iter() {
            let MessageLayer::SignatureGroup { results } = layer else {
                continue;
            };
            for result in results {
                let outcome = match result {
                    Ok(good) => key_problem_now(
                        good.ka.cert(),
                        &good.ka.key().fingerprint(),
                        self.policy,
                        self.now,
                    )
                    .map_or_else(
                        || Outcome::Good(signer(good.ka.cert(), self.policy, self.now)),
                        Outcome::Bad,
                    ),
                    Err(error) => Outcome::Bad(self.classify(error)),
                };
                self.outcomes.push(outcome);
            }
        }
        // Never fail here: verify_commit reads the outcomes.
        Ok(())
    }
}

impl Helper<'_> {
    fn classify(&self, error: VerificationError<'_>) -> Problem {
        match error {
            VerificationError::MissingKey { sig } => Problem::UnknownKey(issuer(sig)),
            VerificationError::UnboundKey { cert, error, .. } => Problem::Malformed(format!(
                "the signing key is not bound to certificate {} when it signed: {error:#}",
                cert.fingerprint().to_hex()
            )),
            VerificationError::BadKey { ka, error, .. } => {
                let cert = ka.cert();
                let fingerprint = cert.fingerprint().to_hex();
                let at_signing = key_problem(ka.valid_cert(), &ka.key().fingerprint());
                at_signing
                    .or_else(|| {
                        key_problem_now(cert, &ka.key().fingerprint(), self.policy, self.now)
                    })
                    .unwrap_or_else(|| {
                        Problem::Malformed(format!(
                            "certificate {fingerprint} may not make this signature: {error:#}"
                        ))
                    })
            }
            VerificationError::BadSignature { sig, ka, error } => {
                let cert = ka.cert();
                let fingerprint = cert.fingerprint().to_hex();
                if let Err(e) = sig.signature_alive(self.now, None) {
                    Problem::Malformed(format!(
                        "the signature by {fingerprint} is not valid at this time (clock skew, or an expiring signature): {e:#}"
                    ))
                } else if let Some(sq::Error::PolicyViolation(what, _)) =
                    error.downcast_ref::<sq::Error>()
                {
                    Problem::Malformed(format!(
                        "the signature by {fingerprint} uses {what}, which is no longer considered secure"
                    ))
                } else {
                    Problem::BadSignature(fingerprint)
                }
            }
            VerificationError::MalformedSignature { error, .. } => {
                Problem::Malformed(format!("malformed signature: {error:#}"))
            }
            other => Problem::Malformed(format!("{other}")),
        }
    }
}

/// The issuer a signature names, preferring its fingerprint.
fn issuer(sig: &Signature) -> String {
    let issuers = sig.get_issuers();
    issuers
        .iter()
        .find(|h| matches!(h, KeyHandle::Fingerprint(_)))
        .or_else(|| issuers.first())
        .map_or_else(|| "(no issuer named)".to_string(), |h| h.to_hex())
}

/// Revoked or expired, judged on a cert already bound to a policy and time.
fn key_problem(cert: &sq::cert::ValidCert<'_>, key: &Fingerprint) -> Option<Problem> {
    let fingerprint = cert.fingerprint().to_hex();
    if let RevocationStatus::Revoked(_) = cert.revocation_status() {
        return Some(Problem::Revoked(fingerprint));
    }
    let Some(ka) = cert.keys().key_handle(key.clone()).next() else {
        return Some(Problem::Malformed(format!(
            "the signing key {} is no longer part of certificate {fingerprint}",
            key.to_hex()
        )));
    };
    if let RevocationStatus::Revoked(_) = ka.revocation_status() {
        return Some(Problem::Revoked(fingerprint));
    }
    if cert.alive().is_err() || ka.alive().is_err() {
        return Some(Problem::Expired(fingerprint));
    }
    None
}

/// [`key_problem`] at `now`.
fn key_problem_now(
    cert: &Cert,
    key: &Fingerprint,
    policy: &dyn Policy,
    now: SystemTime,
) -> Option<Problem> {
    match cert.with_policy(policy, now) {
        Ok(valid) => key_problem(&valid, key),
        Err(e) => Some(Problem::Malformed(format!(
            "certificate {} is not valid now: {e:#}",
            cert.fingerprint().to_hex()
        ))),
    }
}

fn signer(cert: &Cert, policy: &dyn Policy, now: SystemTime) -> Signer {
    let user_id = cert
        .with_policy(policy, now)
        .ok()
        .and_then(|vc| vc.primary_userid().ok().map(|u| u.userid().clone()))
        .or_else(|| cert.userids().next().map(|u| u.userid().clone()))
        .map(|u| String::from_utf8_lossy(u.value()).into_owned());
    Signer {
        fingerprint: cert.fingerprint().to_hex(),
        user_id,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::Command;
    use std::time::Duration;

    use sq::cert::CertBuilder;
    use sq::serialize::stream::{Armorer, Message, Signer as SigningWriter};
    use sq::serialize::SerializeInto;

    use super::*;
    use crate::openpgp::tests::{public, Gpg};

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    /// Runs git in `dir` with no user or system config, GNUPGHOME set.
    fn git(dir: &Path, gnupg: Option<&Path>, args: &[&str]) -> String {
        let mut command = Command::new("git");
        command
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["-c", "user.name=T", "-c", "user.email=t@example"])
            .args(args);
        if let Some(home) = gnupg {
            command.env("GNUPGHOME", home);
        }
        let output = command.output().expect("cannot run git");
        assert!(
            output.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn commit_file(
        dir: &Path,
        gnupg: Option<&Path>,
        name: &str,
        sign_with: Option<&str>,
    ) -> git2::Oid {
        std::fs::write(dir.join(name), name).unwrap();
        git(dir, gnupg, &["add", name]);
        match sign_with {
            Some(fpr) => git(
                dir,
                gnupg,
                &[
                    "-c",
                    &format!("user.signingkey={fpr}"),
                    "-c",
                    "gpg.program=gpg",
                    "commit",
                    "-q",
                    "-S",
                    "-m",
                    name,
                ],
            ),
            None => git(dir, gnupg, &["commit", "-q", "--no-gpg-sign", "-m", name]),
        };
        git2::Oid::from_str(git(dir, None, &["rev-parse", "HEAD"]).trim()).unwrap()
    }

    fn generate(user_id: &str) -> Cert {
        CertBuilder::general_purpose(Some(user_id))
            .generate()
            .unwrap()
            .0
    }

    #[test]
    fn gnupg_signed_commits() {
        for algo in ["ed25519", "rsa3072"] {
            let gpg = Gpg::new();
            gpg.run(&[
                "--passphrase",
                "",
                "--quick-gen-key",
                "S <s@example>",
                algo,
                "sign",
                "never",
            ]);
            let exported = gpg.run(&["--export", "--armor", "s@example"]);
            let trust_file = gpg.path("trust.asc");
            std::fs::write(&trust_file, &exported).unwrap();
            let trusted = TrustedSigners::from_file(&trust_file).unwrap();
            assert_eq!(trusted.len(), 1);
            let fpr = crate::openpgp::certs_from_bytes(&exported, "gpg").unwrap()[0]
                .fingerprint()
                .to_hex();

            let work = tempfile::tempdir().unwrap();
            let dir = work.path();
            git(dir, None, &["init", "-q"]);
            let signed = commit_file(dir, Some(gpg.home()), "a", Some(&fpr));
            let unsigned = commit_file(dir, Some(gpg.home()), "b", None);
            let repo = git2::Repository::open(dir).unwrap();
            let now = SystemTime::now();

            assert_eq!(
                verify_commit(&repo, signed, &trusted, now).unwrap(),
                Signer {
                    fingerprint: fpr.clone(),
                    user_id: Some("S <s@example>".into())
                },
                "{algo}"
            );

            let err = verify_commit(&repo, unsigned, &trusted, now).unwrap_err();
            assert_eq!(
                err,
                CommitSignatureError::Unsigned {
                    commit: unsigned.to_string()
                }
            );
            assert!(err.to_string().contains(&unsigned.to_string()));
            assert!(err.help().unwrap_or_default().contains("git commit -S"));

            // Trust list without the signer: unknown key, not a bad signature.
            let other = TrustedSigners::from_certs(vec![generate("O <o@example>")], "other");
            let err = verify_commit(&repo, signed, &other, now).unwrap_err();
            assert_eq!(
                err,
                CommitSignatureError::UnknownKey {
                    commit: signed.to_string(),
                    issuer: fpr.clone()
                }
            );
            assert!(
                err.help()
                    .unwrap_or_default()
                    .contains("add the signer's certificate"),
                "{err}"
            );

            // Same signature header, different content: tampered.
            let raw = git(dir, None, &["cat-file", "commit", &signed.to_string()]);
            assert!(raw.contains("gpgsig -----BEGIN PGP SIGNATURE-----"));
            let forged = raw.replace("\n\na\n", "\n\ndeploy the attacker's image\n");
            assert_ne!(forged, raw);
            let forged_path = work.path().join("forged");
            std::fs::write(&forged_path, forged).unwrap();
            let forged_id = git(
                dir,
                None,
                &[
                    "hash-object",
                    "-t",
                    "commit",
                    "-w",
                    forged_path.to_str().unwrap(),
                ],
            );
            let forged_id = git2::Oid::from_str(forged_id.trim()).unwrap();
            let err = verify_commit(&repo, forged_id, &trusted, now).unwrap_err();
            assert_eq!(
                err,
                CommitSignatureError::BadSignature {
                    commit: forged_id.to_string(),
                    fingerprint: fpr.clone()
                }
            );
        }
    }

    /// A commit whose gpgsig sequoia made with `cert`'s signing key at `at`.
    fn sequoia_signed_commit(
        repo: &git2::Repository,
        cert: &Cert,
        at: SystemTime,
        message: &str,
    ) -> git2::Oid {
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let who = git2::Signature::now("T", "t@example").unwrap();
        let content = repo
            .commit_create_buffer(&who, &who, message, &tree, &[])
            .unwrap();
        let content = content.as_str().unwrap().to_string();

        let policy = StandardPolicy::new();
        let keypair = cert
            .keys()
            .with_policy(&policy, at)
            .for_signing()
            .secret()
            .next()
            .unwrap()
            .key()
            .clone()
            .into_keypair()
            .unwrap();
        let mut sink = Vec::new();
        let m = Armorer::new(Message::new(&mut sink))
            .kind(sq::armor::Kind::Signature)
            .build()
            .unwrap();
        let mut signer = SigningWriter::new(m, keypair)
            .unwrap()
            .detached()
            .creation_time(at)
            .build()
            .unwrap();
        signer.write_all(content.as_bytes()).unwrap();
        signer.finalize().unwrap();
        repo.commit_signed(&content, std::str::from_utf8(&sink).unwrap(), None)
            .unwrap()
    }

    #[test]
    fn expired_and_revoked_signers() {
        let work = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(work.path()).unwrap();
        let now = SystemTime::now();

        // Good, as a baseline for the helper.
        let good = generate("G <g@example>");
        let trusted = TrustedSigners::from_certs(vec![good.clone()], "t");
        let id = sequoia_signed_commit(&repo, &good, now, "good");
        assert_eq!(
            verify_commit(&repo, id, &trusted, now).unwrap().fingerprint,
            good.fingerprint().to_hex()
        );
        // The same key, judged four years on (it is valid for three).
        assert_eq!(
            verify_commit(&repo, id, &trusted, now + 4 * 365 * DAY).unwrap_err(),
            CommitSignatureError::Expired {
                commit: id.to_string(),
                fingerprint: good.fingerprint().to_hex()
            }
        );

        // Valid when it signed, expired now: a backdated signature by an
        // expired key must not pass.
        let (expired, _) = CertBuilder::general_purpose(Some("E <e@example>"))
            .set_creation_time(now - 10 * DAY)
            .set_validity_period(5 * DAY)
            .generate()
            .unwrap();
        let trusted = TrustedSigners::from_certs(vec![public(&expired)], "t");
        let backdated = sequoia_signed_commit(&repo, &expired, now - 7 * DAY, "backdated");
        let err = verify_commit(&repo, backdated, &trusted, now).unwrap_err();
        assert_eq!(
            err,
            CommitSignatureError::Expired {
                commit: backdated.to_string(),
                fingerprint: expired.fingerprint().to_hex()
            }
        );
        assert!(err.to_string().contains("has expired"), "{err}");
        // Signed after it expired.
        let late = sequoia_signed_commit(&repo, &expired, now - 2 * DAY, "late");
        assert_eq!(
            verify_commit(&repo, late, &trusted, now).unwrap_err(),
            CommitSignatureError::Expired {
                commit: late.to_string(),
                fingerprint: expired.fingerprint().to_hex()
            }
        );

        // Revoked (revocation certificate merged in).
        let (cert, revocation) = CertBuilder::general_purpose(Some("R <r@example>"))
            .generate()
            .unwrap();
        let id = sequoia_signed_commit(&repo, &cert, now, "revoked");
        let (revoked, _) = cert.clone().insert_packets(Some(revocation)).unwrap();
        let trusted = TrustedSigners::from_certs(vec![public(&revoked)], "t");
        let err = verify_commit(&repo, id, &trusted, now).unwrap_err();
        assert_eq!(
            err,
            CommitSignatureError::Revoked {
                commit: id.to_string(),
                fingerprint: cert.fingerprint().to_hex()
            }
        );
        assert!(err.to_string().contains("revoked"), "{err}");
    }

    #[test]
    fn malformed_signatures() {
        let work = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(work.path()).unwrap();
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let who = git2::Signature::now("T", "t@example").unwrap();
        let content = repo
            .commit_create_buffer(&who, &who, "m", &tree, &[])
            .unwrap();
        let content = content.as_str().unwrap();
        let trusted = TrustedSigners::from_certs(vec![generate("G <g@example>")], "t");
        for signature in [
            "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----",
            "-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----",
        ] {
            let id = repo.commit_signed(content, signature, None).unwrap();
            let err = verify_commit(&repo, id, &trusted, SystemTime::now()).unwrap_err();
            assert!(
                matches!(err, CommitSignatureError::Malformed { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains(&id.to_string()), "{err}");
        }
        // Not in the repository at all.
        let missing = git2::Oid::from_str("0123456789012345678901234567890123456789").unwrap();
        let err = verify_commit(&repo, missing, &trusted, SystemTime::now()).unwrap_err();
        assert!(
            matches!(err, CommitSignatureError::Malformed { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn trust_file_drops_secret_material_and_rejects_junk() {
        let cert = generate("G <g@example>");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.asc");
        std::fs::write(&path, cert.as_tsk().armored().to_vec().unwrap()).unwrap();
        let trusted = TrustedSigners::from_file(&path).unwrap();
        assert!(!trusted.certs[0].is_tsk());
        std::fs::write(&path, "junk").unwrap();
        let err = format!("{:#}", TrustedSigners::from_file(&path).unwrap_err());
        assert!(err.contains("trust.asc"), "{err}");
    }

    #[test]
    fn descendants() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path();
        git(dir, None, &["init", "-q"]);
        let first = commit_file(dir, None, "a", None);
        let second = commit_file(dir, None, "b", None);
        let repo = git2::Repository::open(dir).unwrap();
        assert!(is_descendant_or_equal(&repo, second, first).unwrap());
        assert!(!is_descendant_or_equal(&repo, first, second).unwrap());
        assert!(is_descendant_or_equal(&repo, first, first).unwrap());
        let missing = git2::Oid::from_str("0123456789012345678901234567890123456789").unwrap();
        let err = is_descendant_or_equal(&repo, missing, first)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0123456789012345678901234567890123456789"),
            "{err}"
        );
        assert!(is_descendant_or_equal(&repo, first, missing).is_err());
    }
}
