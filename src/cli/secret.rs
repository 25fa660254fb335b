//! `berth secret ...`: arguments, and what each prints. The work is in
//! `secrets::commands`.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::exit;
use crate::secrets::commands;

#[derive(Debug, Args)]
pub struct SecretArgs {
    #[command(subcommand)]
    command: SecretCommand,
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Encrypt a file (or stdin, `-`) to the recipients; writes an
    /// ASCII-armoured OpenPGP message to --output or stdout.
    ///
    /// Recipients: every --recipient certificate file, plus the ones berth.yaml
    /// lists under `secrets.recipients` (when run in the repo). Encrypt to
    /// the runner's key and to the operators who edit the secret.
    ///
    /// Example: berth secret encrypt -o stacks/app/secrets/db.pgp - <<<"s3cret"
    Encrypt {
        /// Plaintext file, or `-` for stdin.
        file: PathBuf,
        /// Where to write the message (replaced atomically). Default: stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        recipients: RecipientArgs,
    },
    /// Decrypt a secret file to stdout, with the runner's (or your) key.
    Decrypt {
        /// The encrypted file, e.g. `stacks/app/secrets/db.pgp`.
        file: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Edit a secret in $EDITOR and re-encrypt it to the same recipients.
    ///
    /// The plaintext goes to a private temporary file (on /dev/shm when the
    /// machine has it), which is overwritten and removed afterwards. Every
    /// recipient's certificate must be known: from berth.yaml's
    /// `secrets.recipients` or --recipient. An unchanged plaintext leaves the
    /// file untouched.
    Edit {
        /// The encrypted file, e.g. `stacks/app/secrets/db.pgp`.
        file: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        recipients: RecipientArgs,
        /// Editor command (default $VISUAL, $EDITOR, then vi).
        #[arg(long, value_name = "COMMAND")]
        editor: Option<String>,
    },
    /// List who can decrypt a secret file (key IDs, and who they are when
    /// the certificate is known).
    Recipients {
        /// The encrypted file, e.g. `stacks/app/secrets/db.pgp`.
        file: PathBuf,
        #[command(flatten)]
        recipients: RecipientArgs,
    },
    /// Re-encrypt every secret the stacks declare to exactly berth.yaml's
    /// `secrets.recipients` (after adding or removing a runner or an
    /// operator). Files already encrypted to that set are left alone.
    Rekey {
        #[command(flatten)]
        key: KeyArgs,
        /// The repo whose berth.yaml lists `secrets.recipients`.
        #[arg(long, env = "BERTH_REPO", default_value = ".")]
        repo: PathBuf,
    },
}

#[derive(Debug, Args)]
struct RecipientArgs {
    /// A certificate file (armoured or binary; may hold several) to encrypt
    /// to or to name recipients by. Repeatable.
    #[arg(long = "recipient", short = 'r', value_name = "CERT_FILE")]
    recipients: Vec<PathBuf>,

    /// The repo whose berth.yaml lists `secrets.recipients`.
    #[arg(long, env = "BERTH_REPO", default_value = ".")]
    repo: PathBuf,
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// Your OpenPGP secret key file. Or the armoured key in BERTH_KEY; a
    /// passphrase-protected key takes BERTH_KEY_PASSPHRASE.
    #[arg(long, env = "BERTH_KEY_FILE", value_name = "FILE")]
    key_file: Option<PathBuf>,
}

/// Loads the key, or says how to give one.
fn load_key(args: &KeyArgs) -> anyhow::Result<crate::openpgp::RunnerKey> {
    super::key::key_options(args.key_file.clone())
        .load()?
        .ok_or_else(|| {
            anyhow::Error::new(crate::error::Hint::new(
                "no private key given",
                "pass --key-file FILE, or set BERTH_KEY_FILE or BERTH_KEY (the armoured key)",
            ))
        })
}

pub fn run(args: SecretArgs) -> anyhow::Result<u8> {
    match args.command {
        SecretCommand::Encrypt {
            file,
            output,
            recipients,
        } => {
            let certs = commands::recipient_certs(&recipients.repo, &recipients.recipients)?;
            commands::encrypt(&file, &certs, output.as_deref())?;
            if let Some(out) = &output {
                eprintln!(
                    "encrypted to {} recipient(s): {}",
                    certs.len(),
                    out.display()
                );
            }
        }
        SecretCommand::Decrypt { file, key } => {
            let plaintext = commands::decrypt(&file, &load_key(&key)?)?;
            let mut out = std::io::stdout().lock();
            out.write_all(plaintext.expose())
                .and_then(|()| out.flush())
                .context("cannot write to stdout")?;
        }
        SecretCommand::Edit {
            file,
            key,
            recipients,
            editor,
        } => {
            let certs = commands::recipient_certs(&recipients.repo, &recipients.recipients)?;
            let editor = editor
                .or_else(|| std::env::var("VISUAL").ok().filter(|e| !e.is_empty()))
                .or_else(|| std::env::var("EDITOR").ok().filter(|e| !e.is_empty()))
                .unwrap_or_else(|| "vi".into());
            match commands::edit(&file, &load_key(&key)?, &certs, &editor)? {
                commands::Edited::Unchanged => {
                    eprintln!("{}: unchanged", file.display());
                }
                commands::Edited::Rewritten(fprs) => {
                    eprintln!(
                        "{}: re-encrypted to the same {} recipient(s): {}",
                        file.display(),
                        fprs.len(),
                        fprs.join(", ")
                    );
                }
            }
        }
        SecretCommand::Recipients { file, recipients } => {
            let certs = commands::recipient_certs(&recipients.repo, &recipients.recipients)?;
            for line in commands::recipients(&file, &certs)? {
                println!("{line}");
            }
        }
        SecretCommand::Rekey { key, repo } => {
            let done = commands::rekey(&repo, &load_key(&key)?)?;
            let mut rewritten = 0;
            for r in &done {
                if r.rewritten {
                    rewritten += 1;
                    println!("re-encrypted  {}", r.file.display());
                } else {
                    println!("unchanged     {}", r.file.display());
                }
            }
            println!(
                "{rewritten} of {} secret file(s) re-encrypted; commit them, and `berth apply` replaces the containers that read them",
                done.len()
            );
        }
    }
    Ok(exit::OK)
}
