//! Tests against real repositories made with git2 in temp dirs and fetched
//! over `file://`, with a fixed identity (no dependence on git config).

use std::fs;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository, RepositoryInitOptions, Signature, Time};
use tempfile::TempDir;

use super::*;

fn signature() -> Signature<'static> {
    Signature::new(
        "Berth Test",
        "test@berth.invalid",
        &Time::new(1_700_000_000, 0),
    )
    .unwrap()
}

/// A repository with a work tree, committed to with git2.
struct Repo {
    dir: TempDir,
    repo: Repository,
}

impl Repo {
    fn new() -> Self {
        Self::with_head("main")
    }

    fn with_head(branch: &str) -> Self {
        let dir = TempDir::new().unwrap();
        let repo = Repository::init_opts(
            dir.path(),
            RepositoryInitOptions::new().initial_head(branch),
        )
        .unwrap();
        Self { dir, repo }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        self
    }

    fn remove(&self, rel: &str) -> &Self {
        let path = self.path().join(rel);
        if path.is_dir() {
            fs::remove_dir_all(path).unwrap();
        } else {
            fs::remove_file(path).unwrap();
        }
        self
    }

    /// Commits the whole work tree onto `refname` (HEAD's branch by default).
    fn commit_on(&self, refname: &str, message: &str) -> Oid {
        let mut index = self.repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let parent = self
            .repo
            .find_reference(refname)
            .ok()
            .and_then(|r| r.resolve().ok())
            .and_then(|r| r.peel_to_commit().ok())
            .or_else(|| {
                (refname == "HEAD")
                    .then(|| self.repo.head().ok()?.peel_to_commit().ok())
                    .flatten()
            });
        let parents: Vec<_> = parent.iter().collect();
        let sig = signature();
        self.repo
            .commit(Some(refname), &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    fn commit(&self, message: &str) -> Oid {
        self.commit_on("HEAD", message)
    }

    fn tag(&self, name: &str, oid: Oid, annotated: bool) {
        let object = self.repo.find_object(oid, None).unwrap();
        if annotated {
            self.repo
                .tag(name, &object, &signature(), "release", false)
                .unwrap();
        } else {
            self.repo.tag_lightweight(name, &object, false).unwrap();
        }
    }

    fn branch(&self, name: &str, oid: Oid) {
        let commit = self.repo.find_commit(oid).unwrap();
        self.repo.branch(name, &commit, true).unwrap();
    }
}

fn opts(repo: &str, git_ref: Option<&str>, cache: &Path) -> SourceOptions {
    SourceOptions {
        repo: repo.to_owned(),
        git_ref: git_ref.map(str::to_owned),
        cache_dir: cache.to_path_buf(),
        ssh: Default::default(),
    }
}

fn resolve_url(upstream: &Repo, git_ref: Option<&str>, cache: &Path) -> Checkout {
    resolve(&opts(&upstream.url(), git_ref, cache)).unwrap()
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap()
}

fn commit_id(checkout: &Checkout) -> String {
    checkout.commit.as_ref().unwrap().id.clone()
}

#[test]
fn clones_then_fetches_new_commits() {
    let upstream = Repo::new();
    upstream.write("berth.yaml", "v: 1\n");
    let first = upstream.commit("first");
    let cache = TempDir::new().unwrap();

    let checkout = resolve_url(&upstream, None, cache.path());
    assert_eq!(commit_id(&checkout), first.to_string());
    assert_eq!(read(&checkout.root, "berth.yaml"), "v: 1\n");
    assert_eq!(checkout.origin, upstream.url());
    assert!(!checkout.dirty);
    assert!(checkout.root.starts_with(cache.path()));
    let info = checkout.commit.unwrap();
    assert_eq!(info.summary, "first");
    assert_eq!(info.author, "Berth Test <test@berth.invalid>");
    assert_eq!(info.time, 1_700_000_000);

    upstream.write("berth.yaml", "v: 2\n");
    let second = upstream.commit("second");
    let again = resolve_url(&upstream, None, cache.path());
    assert_eq!(commit_id(&again), second.to_string());
    assert_eq!(again.root, checkout.root);
    assert_eq!(read(&again.root, "berth.yaml"), "v: 2\n");
}

#[test]
fn default_branch_follows_the_remote_head() {
    let upstream = Repo::with_head("trunk");
    upstream.write("f", "trunk\n");
    let trunk = upstream.commit("on trunk");
    upstream.write("f", "main\n");
    let main = upstream.commit_on("refs/heads/main", "on main");
    assert_ne!(trunk, main);
    let cache = TempDir::new().unwrap();
    let checkout = resolve_url(&upstream, None, cache.path());
    assert_eq!(commit_id(&checkout), trunk.to_string());
    assert_eq!(read(&checkout.root, "f"), "trunk\n");
}

#[test]
fn resolves_branch_tag_and_commit_refs() {
    let upstream = Repo::new();
    upstream.write("f", "one\n");
    let one = upstream.commit("one");
    upstream.tag("v1", one, true);
    upstream.tag("light", one, false);
    upstream.write("f", "two\n");
    let two = upstream.commit("two");
    upstream.branch("feature", one);
    upstream.write("f", "three\n");
    let three = upstream.commit_on("refs/heads/feature", "three");
    let cache = TempDir::new().unwrap();

    let cases = [
        (None, two, "two\n"),
        (Some("main"), two, "two\n"),
        (Some("feature"), three, "three\n"),
        (Some("refs/heads/feature"), three, "three\n"),
        (Some("v1"), one, "one\n"),
        (Some("refs/tags/v1"), one, "one\n"),
        (Some("light"), one, "one\n"),
    ];
    let one_hex = one.to_string();
    let two_hex = two.to_string();
    let three_hex = three.to_string();
    let by_id = [
        (one_hex.as_str(), one, "one\n"),
        (&two_hex[..7], two, "two\n"),
        (&three_hex[..12], three, "three\n"),
    ];
    for (git_ref, oid, content) in cases
        .into_iter()
        .chain(by_id.map(|(r, o, c)| (Some(r), o, c)))
    {
        let checkout = resolve_url(&upstream, git_ref, cache.path());
        assert_eq!(commit_id(&checkout), oid.to_string(), "ref {git_ref:?}");
        assert_eq!(read(&checkout.root, "f"), content, "ref {git_ref:?}");
    }

    let err = resolve(&opts(&upstream.url(), Some("nope"), cache.path())).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("ref `nope` is not a branch, tag or commit"),
        "{msg}"
    );
    assert!(msg.contains(&upstream.url()), "{msg}");
}

#[test]
fn a_name_for_both_a_branch_and_a_tag_is_ambiguous() {
    let upstream = Repo::new();
    upstream.write("f", "one\n");
    let one = upstream.commit("one");
    upstream.tag("prod", one, false);
    upstream.write("f", "two\n");
    let two = upstream.commit("two");
    upstream.branch("prod", two);
    let cache = TempDir::new().unwrap();

    let msg = format!(
        "{:#}",
        resolve(&opts(&upstream.url(), Some("prod"), cache.path())).unwrap_err()
    );
    assert!(msg.contains("names both a branch and a tag"), "{msg}");
    let tag = resolve_url(&upstream, Some("refs/tags/prod"), cache.path());
    assert_eq!(commit_id(&tag), one.to_string());
    let branch = resolve_url(&upstream, Some("refs/heads/prod"), cache.path());
    assert_eq!(commit_id(&branch), two.to_string());
}

#[test]
fn a_commit_no_longer_on_any_ref_is_rejected() {
    let upstream = Repo::new();
    upstream.write("f", "one\n");
    upstream.commit("one");
    upstream.branch("doomed", upstream.repo.head().unwrap().target().unwrap());
    upstream.write("f", "gone\n");
    let gone = upstream.commit_on("refs/heads/doomed", "only on doomed");
    let cache = TempDir::new().unwrap();
    resolve_url(&upstream, Some(&gone.to_string()), cache.path());

    // The branch is deleted upstream; the commit stays in the cache's object
    // store, but a fresh clone could not find it, so neither may the cache.
    upstream
        .repo
        .find_branch("doomed", git2::BranchType::Local)
        .unwrap()
        .delete()
        .unwrap();
    let msg = format!(
        "{:#}",
        resolve(&opts(
            &upstream.url(),
            Some(&gone.to_string()),
            cache.path()
        ))
        .unwrap_err()
    );
    assert!(msg.contains("is not on any branch or tag"), "{msg}");
}

#[test]
fn files_and_directories_deleted_upstream_vanish() {
    let upstream = Repo::new();
    upstream
        .write("berth.yaml", "hosts: {}\n")
        .write("stacks/web/compose.yaml", "services: {}\n")
        .write("stacks/old/compose.yaml", "services: {}\n")
        .write("stacks/old/secrets/db.pgp", "x");
    upstream.commit("two stacks");
    let cache = TempDir::new().unwrap();
    let checkout = resolve_url(&upstream, None, cache.path());
    assert!(checkout.root.join("stacks/old/compose.yaml").is_file());

    upstream.remove("stacks/old");
    upstream.commit("drop old");
    let checkout = resolve_url(&upstream, None, cache.path());
    assert!(checkout.root.join("stacks/web/compose.yaml").is_file());
    assert!(!checkout.root.join("stacks/old").exists());
}

#[test]
fn local_edits_and_junk_in_the_cache_are_removed() {
    let upstream = Repo::new();
    upstream
        .write("berth.yaml", "v: 1\n")
        .write(".gitignore", "*.log\n");
    upstream.commit("one");
    let cache = TempDir::new().unwrap();
    let root = resolve_url(&upstream, None, cache.path()).root;

    fs::write(root.join("berth.yaml"), "tampered\n").unwrap();
    fs::write(root.join("junk.txt"), "junk").unwrap();
    fs::write(root.join("debug.log"), "ignored junk").unwrap();
    fs::create_dir_all(root.join("stacks/stray")).unwrap();
    fs::write(root.join("stacks/stray/compose.yaml"), "services: {}\n").unwrap();

    let checkout = resolve_url(&upstream, None, cache.path());
    assert_eq!(read(&checkout.root, "berth.yaml"), "v: 1\n");
    assert!(!root.join("junk.txt").exists());
    assert!(!root.join("debug.log").exists());
    assert!(!root.join("stacks/stray").exists());
}

#[test]
fn a_failed_fetch_is_an_error_not_the_stale_cache() {
    let upstream = Repo::new();
    upstream.write("berth.yaml", "v: 1\n");
    upstream.commit("one");
    let cache = TempDir::new().unwrap();
    let url = upstream.url();
    resolve_url(&upstream, None, cache.path());

    drop(upstream);
    let err = resolve(&opts(&url, None, cache.path())).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("fetch of `{url}` failed")), "{msg}");
    assert!(msg.contains("not planning from the stale cache"), "{msg}");
    // The old checkout is still there for the next run to update.
    assert_eq!(
        fs::read_dir(cache.path()).unwrap().count(),
        2,
        "cache dir and lock"
    );
}

#[test]
fn a_failed_first_clone_names_the_url_and_leaves_nothing() {
    let cache = TempDir::new().unwrap();
    let url = format!("file://{}/no-such-repo", cache.path().display());
    let msg = format!(
        "{:#}",
        resolve(&opts(&url, None, cache.path())).unwrap_err()
    );
    assert!(msg.contains(&format!("clone of `{url}` failed")), "{msg}");
    let left: Vec<_> = fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(left.iter().all(|n| n == "no-such-repo"), "{left:?}");
}

/// The cache directory for `upstream` after one resolve.
fn cache_root(upstream: &Repo, cache: &Path) -> PathBuf {
    resolve_url(upstream, None, cache).root
}

#[test]
fn a_damaged_or_foreign_cache_is_cloned_afresh() {
    let upstream = Repo::new();
    upstream.write("berth.yaml", "v: 1\n");
    let one = upstream.commit("one");
    let cache = TempDir::new().unwrap();

    // Another origin.
    let root = cache_root(&upstream, cache.path());
    Repository::open(&root)
        .unwrap()
        .remote_set_url("origin", "file:///somewhere/else")
        .unwrap();
    assert_eq!(
        commit_id(&resolve_url(&upstream, None, cache.path())),
        one.to_string()
    );
    let origin = Repository::open(&root)
        .unwrap()
        .find_remote("origin")
        .unwrap()
        .url()
        .ok()
        .map(str::to_owned);
    assert_eq!(origin.as_deref(), Some(upstream.url().as_str()));

    // Not a repository at all (a killed run from an old version, a person).
    fs::remove_dir_all(root.join(".git")).unwrap();
    assert_eq!(
        commit_id(&resolve_url(&upstream, None, cache.path())),
        one.to_string()
    );

    // Lock files left by a killed run.
    fs::write(root.join(".git/index.lock"), "").unwrap();
    fs::write(root.join(".git/refs/remotes/origin/main.lock"), "").unwrap();
    upstream.write("berth.yaml", "v: 2\n");
    let two = upstream.commit("two");
    assert_eq!(
        commit_id(&resolve_url(&upstream, None, cache.path())),
        two.to_string()
    );

    // A half-made clone from a killed first run.
    fs::create_dir_all(cache.path().join(format!(
        ".{}.tmp/.git",
        root.file_name().unwrap().to_string_lossy()
    )))
    .unwrap();
    fs::remove_dir_all(&root).unwrap();
    assert_eq!(
        commit_id(&resolve_url(&upstream, None, cache.path())),
        two.to_string()
    );
}

#[test]
fn concurrent_runs_on_one_cache_both_succeed() {
    let upstream = Repo::new();
    upstream.write("berth.yaml", "v: 1\n");
    let one = upstream.commit("one");
    let cache = TempDir::new().unwrap();
    let options = opts(&upstream.url(), None, cache.path());
    let ids: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| resolve(&options).map(|c| commit_id(&c))))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap().unwrap())
            .collect()
    });
    assert!(ids.iter().all(|id| *id == one.to_string()), "{ids:?}");
}

#[test]
fn local_checkout_reports_commit_and_dirty() {
    let repo = Repo::new();
    repo.write("berth.yaml", "v: 1\n")
        .write(".gitignore", "*.log\n");
    let head = repo.commit("local");
    let path = repo.path().to_str().unwrap();

    let clean = resolve(&opts(path, None, Path::new("/nonexistent-cache"))).unwrap();
    assert_eq!(clean.root, repo.path());
    assert_eq!(clean.origin, path);
    assert_eq!(commit_id(&clean), head.to_string());
    assert_eq!(clean.commit.as_ref().unwrap().summary, "local");
    assert!(!clean.dirty);

    repo.write("debug.log", "ignored");
    assert!(
        !resolve(&opts(path, None, Path::new("/x"))).unwrap().dirty,
        "ignored files"
    );

    repo.write("new.txt", "untracked");
    assert!(
        resolve(&opts(path, None, Path::new("/x"))).unwrap().dirty,
        "untracked file"
    );
    repo.remove("new.txt");

    repo.write("berth.yaml", "v: 2\n");
    assert!(
        resolve(&opts(path, None, Path::new("/x"))).unwrap().dirty,
        "modified file"
    );
}

#[test]
fn local_subdirectory_of_a_monorepo() {
    let repo = Repo::new();
    repo.write("deploy/berth.yaml", "v: 1\n")
        .write("app/main.rs", "fn main() {}\n");
    let head = repo.commit("mono");
    let sub = repo.path().join("deploy");

    let checkout = resolve(&opts(sub.to_str().unwrap(), None, Path::new("/x"))).unwrap();
    assert_eq!(checkout.root, sub);
    assert_eq!(commit_id(&checkout), head.to_string());
    assert!(!checkout.dirty);

    // Changes elsewhere in the monorepo do not make the berth files dirty.
    repo.write("app/main.rs", "changed\n")
        .write("app/new.rs", "new\n");
    assert!(
        !resolve(&opts(sub.to_str().unwrap(), None, Path::new("/x")))
            .unwrap()
            .dirty
    );

    repo.write("deploy/stacks/web/compose.yaml", "services: {}\n");
    assert!(
        resolve(&opts(sub.to_str().unwrap(), None, Path::new("/x")))
            .unwrap()
            .dirty
    );
}

#[test]
fn local_repo_without_commits() {
    let repo = Repo::new();
    repo.write("berth.yaml", "v: 1\n");
    let checkout = resolve(&opts(repo.path().to_str().unwrap(), None, Path::new("/x"))).unwrap();
    assert!(checkout.commit.is_none());
    assert!(checkout.dirty);
}

#[test]
fn local_directory_outside_git() {
    let dir = TempDir::new().unwrap();
    fs::write(dir.path().join("berth.yaml"), "v: 1\n").unwrap();
    let checkout = resolve(&opts(dir.path().to_str().unwrap(), None, Path::new("/x"))).unwrap();
    assert!(checkout.commit.is_none());
    assert!(!checkout.dirty);
    assert_eq!(checkout.root, dir.path());
}

#[test]
fn ref_with_a_local_path_is_an_error() {
    let dir = TempDir::new().unwrap();
    let msg = format!(
        "{:#}",
        resolve(&opts(
            dir.path().to_str().unwrap(),
            Some("main"),
            Path::new("/x")
        ))
        .unwrap_err()
    );
    assert!(
        msg.contains("`--ref main` works only with a git URL; check out the ref yourself"),
        "{msg}"
    );
}

#[test]
fn neither_directory_nor_url() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("berth.yaml");
    fs::write(&file, "").unwrap();
    let missing = dir.path().join("missing");
    for (repo, why) in [
        (missing.to_str().unwrap(), "does not exist"),
        ("garbage", "does not exist"),
        (file.to_str().unwrap(), "is not a directory"),
    ] {
        let msg = format!("{:#}", resolve(&opts(repo, None, dir.path())).unwrap_err());
        assert!(
            msg.starts_with(&format!(
                "repo `{repo}` is neither a directory nor a git URL ({why})"
            )),
            "{msg}"
        );
    }
}
