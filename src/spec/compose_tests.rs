//! Compose files as users write them: interpolation, `.env`, `env_file`,
//! merge keys, profiles, `extends`, `include`, host variables, and the
//! environment's provenance. Each test loads a small repo with an explicit
//! environment, so the machine running the tests does not matter.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::dotenv;
use super::interpolate::{expand, TemplateError};
use super::test_support::repo;
use super::*;

const INVENTORY: &str = "\
project: shop
hosts:
  - name: edge-1
    address: 10.77.0.11
  - name: edge-2
    address: 10.77.0.12
";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn options(environment: &[(&str, &str)], profiles: &[&str]) -> LoadOptions {
    LoadOptions {
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        environment: Some(env(environment)),
    }
}

fn load_ok(dir: &tempfile::TempDir, opts: &LoadOptions) -> Loaded {
    match load_with(dir.path(), opts) {
        Ok(loaded) => loaded,
        Err(e) => panic!("expected the repo to load:\n{e}"),
    }
}

fn load_err(dir: &tempfile::TempDir, opts: &LoadOptions) -> String {
    match load_with(dir.path(), opts) {
        Ok(_) => panic!("expected the repo to be refused"),
        Err(e) => e.to_string(),
    }
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded
        .warnings
        .iter()
        .map(|d| format!("{}: {}", d.location, d.message))
        .collect()
}

fn service<'a>(loaded: &'a Loaded, stack: &str, name: &str) -> &'a Service {
    loaded
        .project
        .stacks
        .iter()
        .find(|s| s.name == stack)
        .and_then(|s| s.services.iter().find(|x| x.name == name))
        .unwrap_or_else(|| panic!("no service {stack}/{name}"))
}

fn expand_with(text: &str, vars: &[(&str, &str)]) -> Result<(String, Vec<String>), TemplateError> {
    let vars = env(vars);
    let mut lookup = |name: &str| vars.get(name).cloned();
    expand(text, &mut lookup).map(|e| (e.text, e.unset))
}

fn ok(text: &str, vars: &[(&str, &str)]) -> String {
    expand_with(text, vars).unwrap().0
}

#[test]
fn every_interpolation_form() {
    let vars = [("A", "a"), ("EMPTY", ""), ("B", "b")];
    assert_eq!(ok("$A", &vars), "a");
    assert_eq!(ok("${A}", &vars), "a");
    assert_eq!(ok("x-$A-y", &vars), "x-a-y");
    assert_eq!(ok("$A_B", &vars), "");
    assert_eq!(ok("${A}_B", &vars), "a_B");
    // `:-` replaces unset and empty, `-` only unset.
    assert_eq!(ok("${UNSET:-d}", &vars), "d");
    assert_eq!(ok("${EMPTY:-d}", &vars), "d");
    assert_eq!(ok("${EMPTY-d}", &vars), "");
    assert_eq!(ok("${UNSET-d}", &vars), "d");
    assert_eq!(ok("${A:-d}", &vars), "a");
    // `:+` gives the alternative when set and not empty, `+` when set.
    assert_eq!(ok("${A:+alt}", &vars), "alt");
    assert_eq!(ok("${EMPTY:+alt}", &vars), "");
    assert_eq!(ok("${EMPTY+alt}", &vars), "alt");
    assert_eq!(ok("${UNSET+alt}", &vars), "");
    // `?` errors only when unset, `:?` also when empty.
    assert_eq!(ok("${EMPTY?no}", &vars), "");
    assert_eq!(ok("${A:?no}", &vars), "a");
    // Nested defaults, and `$$`.
    assert_eq!(ok("${UNSET:-${B:-x}}", &vars), "b");
    assert_eq!(ok("${UNSET:-${NONE:-x}}", &vars), "x");
    assert_eq!(ok("${UNSET:-a${B}c}/d", &vars), "abc/d");
    assert_eq!(ok("$$A and $${A}", &vars), "$A and ${A}");
    assert_eq!(ok("${UNSET:-$$}", &vars), "$");
    // A `$` before nothing that names a variable stays, as in Compose.
    assert_eq!(ok("cost 5$ or $1", &vars), "cost 5$ or $1");
    // Defaults may hold `:`, `/` and `}` outside the braces.
    assert_eq!(
        ok("${IMAGE:-registry:5000/app:1.0}", &vars),
        "registry:5000/app:1.0"
    );
}

#[test]
fn unset_variables_are_reported_once() {
    let (text, unset) = expand_with("$X-${X}-${Y:-d}-${Z:+a}", &[]).unwrap();
    assert_eq!(text, "--d-");
    assert_eq!(unset, ["X"]);
}

#[test]
fn interpolation_errors() {
    assert_eq!(
        expand_with("${}", &[]),
        Err(TemplateError::Invalid("${}".into()))
    );
    assert_eq!(
        expand_with("a ${A B}", &[]),
        Err(TemplateError::Invalid("${A B}".into()))
    );
    assert_eq!(
        expand_with("${A", &[]),
        Err(TemplateError::Invalid("${A".into()))
    );
    assert_eq!(
        expand_with("${1A}", &[]),
        Err(TemplateError::Invalid("${1A}".into()))
    );
    assert_eq!(
        expand_with("${DB:?set DB in .env}", &[]),
        Err(TemplateError::Required {
            name: "DB".into(),
            message: "set DB in .env".into()
        })
    );
    assert_eq!(
        expand_with("${DB:?}", &[("DB", "")]),
        Err(TemplateError::Required {
            name: "DB".into(),
            message: String::new()
        })
    );
    assert_eq!(
        expand_with("${DB?gone}", &[]),
        Err(TemplateError::Required {
            name: "DB".into(),
            message: "gone".into()
        })
    );
}

#[test]
fn dotenv_syntax() {
    let text = "\
# a comment
A=1
export B = two  # inline comment
C='single $A \\n kept'
D=\"double ${A}\\n\\\"q\\\" \\$A\"
E=\"multi
line\"
F=x#not-a-comment
G=${FROM_ENV:-none}-${A}
H: yaml-ish
EMPTY=
URL=http://example.com/?a=b
INHERIT
";
    let vars = env(&[("FROM_ENV", "env"), ("INHERIT", "from-env")]);
    let (entries, problems) = dotenv::parse(text, &mut |n| vars.get(n).cloned());
    assert_eq!(problems, []);
    let got: Vec<(&str, &str, usize)> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
        .collect();
    assert_eq!(
        got,
        [
            ("A", "1", 2),
            ("B", "two", 3),
            ("C", "single $A \\n kept", 4),
            ("D", "double 1\n\"q\" $A", 5),
            ("E", "multi\nline", 6),
            ("F", "x#not-a-comment", 8),
            ("G", "env-1", 9),
            ("H", "yaml-ish", 10),
            ("EMPTY", "", 11),
            ("URL", "http://example.com/?a=b", 12),
            ("INHERIT", "from-env", 13),
        ]
    );
}

#[test]
fn dotenv_problems_have_places() {
    let text = "GOOD=1\n=nokey\nBAD LINE\nQ=\"open\nR=${MISSING:?needed}\nS=$NOPE\n";
    let (entries, problems) = dotenv::parse(text, &mut |_| None);
    assert_eq!(entries.len(), 1);
    let got: Vec<String> = problems
        .iter()
        .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
        .collect();
    assert_eq!(
        got,
        [
            "2:1: `=nokey` is not a `KEY=VALUE` line",
            "3:1: `BAD LINE` is not a `KEY=VALUE` line",
            "4:3: the value of `Q` has no closing \"",
        ]
    );
}

#[test]
fn variables_come_from_environment_dotenv_and_berth_yaml() {
    let dir = repo(&[
        (
            "berth.yaml",
            "project: shop\nvariables: {REGISTRY: registry.example.com, TAG: from-berth, PORT: 8080}\nhosts:\n  - name: edge-1\n    address: 10.77.0.11\n",
        ),
        ("stacks/web/.env", "TAG=from-dotenv\nLOG=debug\n"),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: ${REGISTRY}/api:${TAG}\n    environment:\n      LOG_LEVEL: ${LOG}\n      OWNER: ${OWNER:-nobody}\n    ports: [\"${PORT}:80\"]\n    deploy:\n      replicas: ${REPLICAS:-1}\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[("TAG", "4f2c1e")], &[]));
    let api = service(&loaded, "web", "api");
    // The environment wins over `.env`, which wins over berth.yaml.
    assert_eq!(api.container.image, "registry.example.com/api:4f2c1e");
    assert_eq!(api.container.environment["LOG_LEVEL"], "debug");
    assert_eq!(api.container.environment["OWNER"], "nobody");
    assert_eq!(api.container.ports[0].published, Some(8080));
    assert_eq!(api.deploy.replicas, 1);
    let stack = &loaded.project.stacks[0];
    let origins: Vec<(String, VariableOrigin)> = stack
        .resolution
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), v.origin.clone()))
        .collect();
    assert_eq!(
        origins,
        [
            (
                "LOG".to_string(),
                VariableOrigin::DotEnv("stacks/web/.env".into())
            ),
            ("PORT".to_string(), VariableOrigin::Project),
            ("REGISTRY".to_string(), VariableOrigin::Project),
            ("TAG".to_string(), VariableOrigin::Environment),
        ]
    );
    assert_eq!(stack.resolution.files, [PathBuf::from("stacks/web/.env")]);
    let from_env = environment_variables(&loaded.project);
    assert_eq!(from_env.len(), 1);
    assert_eq!(
        (from_env[0].name.as_str(), from_env[0].shown_value.as_str()),
        ("TAG", "4f2c1e")
    );
    assert_eq!(
        from_env[0].location.to_string(),
        "stacks/web/compose.yaml:3:12"
    );
}

#[test]
fn plain_values_stay_numbers_after_interpolation() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: nginx\n    read_only: ${RO}\n    deploy:\n      replicas: ${N}\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[("N", "2"), ("RO", "true")], &[]));
    let api = service(&loaded, "web", "api");
    assert_eq!(api.deploy.replicas, 2);
    assert!(api.container.read_only);
}

#[test]
fn unset_variables_warn_with_their_place() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "version: \"3.8\"\nx-common: &common\n  LABEL: ${NOT_SET}\nservices:\n  api:\n    image: nginx\n    environment:\n      <<: *common\n      OTHER: x\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    assert_eq!(
        warnings(&loaded),
        [
            "stacks/web/compose.yaml:1:10: `version` is obsolete and ignored",
            "stacks/web/compose.yaml:3:10: variable `NOT_SET` is not set: `services.api.environment.LABEL` uses an empty string",
            "stacks/web/compose.yaml:3:10: variable `NOT_SET` is not set: `x-common.LABEL` uses an empty string",
        ]
    );
    assert_eq!(
        service(&loaded, "web", "api").container.environment["LABEL"],
        ""
    );
}

#[test]
fn strict_variables_make_unset_an_error() {
    let dir = repo(&[
        (
            "berth.yaml",
            "settings: {strict_variables: true}\nhosts: [{name: a, address: 10.0.0.1}]\n",
        ),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: nginx:${TAG}\n",
        ),
    ]);
    insta::assert_snapshot!(load_err(&dir, &options(&[], &[])), @r"
    stacks/web/compose.yaml:3:12: variable `TAG` is not set: `services.api.image` uses an empty string
      help: set `TAG` in `stacks/web/.env` or in `variables:` of `berth.yaml`, or write `${TAG:-default}` (`settings.strict_variables` is on)
    ");
}

#[test]
fn a_failed_load_keeps_its_warnings() {
    // `TAG` unset reads as empty, which is what breaks `image`: the
    // warning is the explanation, so it must survive the failure.
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "version: \"3.8\"\nservices:\n  api:\n    image: \"nginx:${TAG}\"\n",
        ),
    ]);
    let e = match load_with(dir.path(), &options(&[], &[])) {
        Ok(_) => panic!("expected the repo to be refused"),
        Err(e) => e,
    };
    let warnings: Vec<String> = e
        .warnings
        .iter()
        .map(|d| format!("{}: {}", d.location, d.message))
        .collect();
    assert_eq!(
        warnings,
        [
            "stacks/web/compose.yaml:1:10: `version` is obsolete and ignored",
            "stacks/web/compose.yaml:4:12: variable `TAG` is not set: `services.api.image` uses an empty string",
        ]
    );
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    assert!(!e.to_string().contains("version"), "{e}");
}

#[test]
fn interpolation_errors_are_located() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("stacks/web/.env", "OK=1\nBROKEN=${\n"),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: \"nginx:${TAG:?set TAG to the release to deploy}\"\n    command: [\"echo\", \"${}\"]\n    x-berth:\n      validate:\n        - http: {url: \"http://localhost:${PORT?}/\"}\n",
        ),
    ]);
    insta::assert_snapshot!(load_err(&dir, &options(&[], &[])), @r"
    stacks/web/.env:2:8: invalid interpolation format `${`
    stacks/web/compose.yaml:3:12: required variable `TAG` is missing a value: set TAG to the release to deploy in `services.api.image`
      help: set `TAG` in `stacks/web/.env`, in `variables:` of `berth.yaml`, or in the environment berth runs in
    stacks/web/compose.yaml:4:23: invalid interpolation format `${}` in `services.api.command.1`
      help: write `${NAME}`, `${NAME:-default}`, `${NAME:?message}` or `${NAME:+alternative}`; `$$` is a literal `$`
    stacks/web/compose.yaml:7:23: required variable `PORT` is missing a value in `services.api.x-berth.validate.0.http.url`
      help: set `PORT` in `stacks/web/.env`, in `variables:` of `berth.yaml`, or in the environment berth runs in
    ");
}

#[test]
fn keys_are_not_interpolated() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: nginx\n    labels:\n      ${KEY}: $KEY\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[("KEY", "k")], &[]));
    let labels = &service(&loaded, "web", "api").container.labels;
    assert_eq!(labels.get("${KEY}").map(String::as_str), Some("k"));
}

#[test]
fn merge_keys_and_lists_of_merges() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "\
x-logging: &logging
  logging:
    driver: json-file
    options: {max-size: 10m}
x-env: &env
  TZ: UTC
  LANG: C
x-more: &more
  LANG: en_US
  EXTRA: 1
x-base: &base
  image: nginx:1.27
  restart: always
services:
  api:
    <<: [*base, *logging]
    environment:
      <<: [*env, *more]
      OWN: yes
  worker:
    <<: *base
    image: nginx:1.26
",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let api = service(&loaded, "web", "api");
    assert_eq!(api.container.image, "nginx:1.27");
    assert_eq!(api.container.restart, "always");
    assert_eq!(api.container.logging.as_ref().unwrap().driver, "json-file");
    let env: Vec<(&str, &str)> = api
        .container
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // The first mapping in a merge list wins, explicit keys win over all.
    assert_eq!(
        env,
        [("EXTRA", "1"), ("LANG", "C"), ("OWN", "yes"), ("TZ", "UTC")]
    );
    assert_eq!(
        service(&loaded, "web", "worker").container.image,
        "nginx:1.26"
    );
}

#[test]
fn extension_keys_are_accepted_where_compose_allows_them() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "x-top: 1\nservices:\n  api:\n    image: nginx\n    networks: [back]\nnetworks:\n  back:\n    x-note: internal\nvolumes:\n  data:\n    x-backup: daily\nx-other: {a: b}\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    assert_eq!(loaded.project.stacks[0].services.len(), 1);
}

#[test]
fn env_file_is_read_and_environment_wins() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("stacks/web/.env", "TAG=1.2\n"),
        ("stacks/web/app.env", "# app settings\nA=from-file\nB=from-file\nC=\"v${TAG}\"\n"),
        ("stacks/web/more.env", "B=second\n"),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: nginx\n    env_file:\n      - app.env\n      - path: ./more.env\n      - path: ./optional.env\n        required: false\n    environment:\n      A: from-compose\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let env = &service(&loaded, "web", "api").container.environment;
    assert_eq!(env["A"], "from-compose");
    assert_eq!(env["B"], "second");
    assert_eq!(env["C"], "v1.2");
    let files = &loaded.project.stacks[0].resolution.files;
    assert_eq!(
        files,
        &[
            PathBuf::from("stacks/web/.env"),
            "stacks/web/app.env".into(),
            "stacks/web/more.env".into()
        ]
    );
}

#[test]
fn env_file_must_exist_and_stay_in_the_repo() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.env"), "X=1\n").unwrap();
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: nginx\n    env_file: [../../../etc.env, /etc/passwd, missing.env, link.env]\n",
        ),
    ]);
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        outside.path().join("secret.env"),
        dir.path().join("stacks/web/link.env"),
    )
    .unwrap();
    insta::assert_snapshot!(load_err(&dir, &options(&[], &[])), @r"
    stacks/web/compose.yaml:4:16: `env_file` `../../../etc.env` of service `api` is outside the repo
      help: berth only reads files in the repo: keep env files next to the stack and use a relative path
    stacks/web/compose.yaml:4:34: `env_file` `/etc/passwd` of service `api` is outside the repo
      help: berth only reads files in the repo: keep env files next to the stack and use a relative path
    stacks/web/compose.yaml:4:47: file `stacks/web/missing.env` does not exist
      help: create it, or fix the path (relative to the file that names it)
    stacks/web/compose.yaml:4:60: `stacks/web/link.env` leads outside the repo (a symlink)
      help: berth only reads files committed in the repo: copy the file into it
    ");
}

const PROFILED: &str = "\
services:
  web:
    image: nginx
    depends_on: [db]
  db:
    image: postgres:16
  debug:
    image: busybox
    profiles: [debug]
  admin:
    image: adminer
    profiles: [tools, debug]
    depends_on:
      db:
        condition: service_started
";

#[test]
fn profiles_leave_services_out_unless_active() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("stacks/web/compose.yaml", PROFILED),
    ]);
    let names = |loaded: &Loaded| -> Vec<String> {
        loaded.project.stacks[0]
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(names(&load_ok(&dir, &options(&[], &[]))), ["db", "web"]);
    assert_eq!(
        names(&load_ok(&dir, &options(&[], &["tools"]))),
        ["admin", "db", "web"]
    );
    // berth.yaml can enable profiles per stack.
    let dir = repo(&[
        (
            "berth.yaml",
            "stacks:\n  web:\n    profiles: [debug]\nhosts: [{name: a, address: 10.0.0.1}]\n",
        ),
        ("stacks/web/compose.yaml", PROFILED),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    assert_eq!(names(&loaded), ["admin", "db", "debug", "web"]);
    assert_eq!(loaded.project.stacks[0].resolution.profiles, ["debug"]);
}

#[test]
fn depending_on_a_disabled_service_is_an_error() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "services:\n  web:\n    image: nginx\n    depends_on: [debug]\n  debug:\n    image: busybox\n    profiles: [debug]\n",
        ),
    ]);
    insta::assert_snapshot!(load_err(&dir, &options(&[], &[])), @r"
    stacks/web/compose.yaml:4:18: service `web` depends on `debug`, which only runs with profile `debug`
      help: enable it with `--profile debug` or `stacks.<stack>.profiles` in `berth.yaml`, or mark the dependency `required: false`
    ");
}

#[test]
fn unknown_stack_in_berth_yaml_is_an_error() {
    let dir = repo(&[
        (
            "berth.yaml",
            "stacks:\n  wbe: {profiles: [x]}\nhosts: [{name: a, address: 10.0.0.1}]\n",
        ),
        (
            "stacks/web/compose.yaml",
            "services:\n  a:\n    image: nginx\n",
        ),
    ]);
    let err = load_err(&dir, &options(&[], &[]));
    assert!(
        err.starts_with("berth.yaml:2:3: `stacks.wbe` names no stack of the repo"),
        "{err}"
    );
}

#[test]
fn extends_merges_like_compose() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "shared/base.yaml",
            "services:\n  app:\n    image: registry.example.com/app:${TAG:-1}\n    command: [serve, --fast]\n    environment: [A=base, B=base]\n    ports: [\"8080:80\"]\n    volumes: [\"data:/data\", \"/srv/logs:/logs\"]\n    labels: {team: core}\n    env_file: base.env\n",
        ),
        ("shared/base.env", "FROM_BASE_FILE=1\n"),
        (
            "stacks/web/compose.yaml",
            "\
services:
  api:
    extends:
      file: ../../shared/base.yaml
      service: app
    command: [serve]
    environment:
      B: api
    ports: [\"9090:90\"]
    volumes: [\"/srv/api-logs:/logs\"]
  worker:
    extends: api
    environment:
      ROLE: worker
volumes:
  data: {}
",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[("TAG", "7")], &[]));
    let api = service(&loaded, "web", "api");
    assert_eq!(api.container.image, "registry.example.com/app:7");
    assert_eq!(api.container.command, Some(vec!["serve".to_string()]));
    let env: Vec<(&str, &str)> = api
        .container
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("A", "base"), ("B", "api"), ("FROM_BASE_FILE", "1")]);
    assert_eq!(api.container.ports.len(), 2);
    let targets: Vec<(&str, &str)> = api
        .container
        .mounts
        .iter()
        .map(|m| (m.source.as_str(), m.target.as_str()))
        .collect();
    assert_eq!(targets, [("web_data", "/data"), ("/srv/api-logs", "/logs")]);
    assert_eq!(api.container.labels["team"], "core");
    let worker = service(&loaded, "web", "worker");
    assert_eq!(worker.container.environment["ROLE"], "worker");
    assert_eq!(worker.container.environment["B"], "api");
    assert!(loaded.project.stacks[0]
        .resolution
        .files
        .contains(&PathBuf::from("shared/base.yaml")));
}

#[test]
fn extends_problems_are_located() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/compose.yaml",
            "services:\n  a:\n    extends: b\n  b:\n    extends: a\n  c:\n    extends: {service: nope}\n  d:\n    extends: {file: ../../../x.yaml, service: x}\n",
        ),
    ]);
    let err = load_err(&dir, &options(&[], &[]));
    assert!(
        err.contains("stacks/web/compose.yaml:5:14: `extends` of service `b` loops back to itself"),
        "{err}"
    );
    assert!(err.contains("stacks/web/compose.yaml:7:14: service `c` extends `nope`, which is not a service of `stacks/web/compose.yaml`"), "{err}");
    assert!(err.contains("stacks/web/compose.yaml:9:21: `extends.file` `../../../x.yaml` of service `d` is outside the repo"), "{err}");
}

#[test]
fn include_merges_files_and_refuses_conflicts() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "shared/db.yaml",
            "services:\n  db:\n    image: postgres:${PG:-16}\n    volumes: [\"pg:/var/lib/postgresql/data\"]\nvolumes:\n  pg: {}\n",
        ),
        (
            "stacks/web/compose.yaml",
            "include:\n  - ../../shared/db.yaml\nservices:\n  web:\n    image: nginx\n    depends_on: [db]\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let db = service(&loaded, "web", "db");
    assert_eq!(db.container.image, "postgres:16");
    assert_eq!(db.container.mounts[0].source, "web_pg");
    assert_eq!(
        loaded.project.stacks[0].resolution.files,
        [PathBuf::from("shared/db.yaml")]
    );

    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("shared/db.yaml", "services:\n  db:\n    image: postgres\n    bogus: 1\n"),
        (
            "stacks/web/compose.yaml",
            "include:\n  - ../../shared/db.yaml\n  - path: /etc/compose.yaml\nservices:\n  db:\n    image: mysql\n",
        ),
    ]);
    let err = load_err(&dir, &options(&[], &[]));
    assert!(err.contains("shared/db.yaml:2:3: service `db` of an included file is already defined at `stacks/web/compose.yaml:5:3`"), "{err}");
    assert!(
        err.contains(
            "stacks/web/compose.yaml:3:11: included file `/etc/compose.yaml` is outside the repo"
        ),
        "{err}"
    );
}

#[test]
fn host_variables_give_each_host_its_container() {
    let dir = repo(&[
        (
            "berth.yaml",
            "\
variables: {REGION: default-region}
hosts:
  - name: eu-1
    address: 10.0.0.1
    variables: {REGION: eu}
  - name: eu-2
    address: 10.0.0.2
    variables: {REGION: eu}
  - name: us-1
    address: 10.0.0.3
    variables: {REGION: us}
  - name: plain
    address: 10.0.0.4
",
        ),
        (
            "stacks/edge/compose.yaml",
            "services:\n  agent:\n    image: agent:1\n    environment: {REGION: \"${REGION}\"}\n    deploy: {mode: global}\n  other:\n    image: nginx\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let stack = &loaded.project.stacks[0];
    let region = |host: &str| {
        let agent = stack.services.iter().find(|s| s.name == "agent").unwrap();
        stack
            .resolution
            .container_for("agent", host, &agent.container)
            .environment["REGION"]
            .clone()
    };
    assert_eq!(region("eu-1"), "eu");
    assert_eq!(region("eu-2"), "eu");
    assert_eq!(region("us-1"), "us");
    assert_eq!(region("plain"), "default-region");
    assert!(!stack.resolution.per_host.contains_key("other"));
}

#[test]
fn trust_refuses_environment_values_not_listed() {
    let files = |settings: &str| {
        repo(&[
            (
                "berth.yaml",
                &*format!("{settings}hosts: [{{name: a, address: 10.0.0.1}}]\n"),
            ),
            ("stacks/web/.env", "DB_PASSWORD=${DB_PASSWORD:-x}\n"),
            (
                "stacks/web/compose.yaml",
                "services:\n  api:\n    image: app:${TAG}\n    environment: [DB_PASSWORD]\n",
            ),
        ])
    };
    let opts = options(&[("TAG", "4f2c1e"), ("DB_PASSWORD", "hunter2")], &[]);
    let dir = files("");
    let loaded = load_ok(&dir, &opts);
    let shown: Vec<(String, String)> = environment_variables(&loaded.project)
        .into_iter()
        .map(|v| (v.name, v.shown_value))
        .collect();
    assert_eq!(
        shown,
        [
            ("DB_PASSWORD".to_string(), "<redacted>".to_string()),
            ("TAG".to_string(), "4f2c1e".to_string())
        ]
    );
    let err = check_environment_allowed(&loaded.project)
        .unwrap_err()
        .to_string();
    insta::assert_snapshot!(err, @r"
    stacks/web/.env:1:1: --trust: variable `DB_PASSWORD` takes its value from the environment of the machine running berth, which no signature covers
      help: set `DB_PASSWORD` in the stack's `.env` or in `variables:` of `berth.yaml`, or allow it with `settings.environment_variables: [DB_PASSWORD]`
    stacks/web/compose.yaml:3:12: --trust: variable `TAG` takes its value from the environment of the machine running berth, which no signature covers
      help: set `TAG` in the stack's `.env` or in `variables:` of `berth.yaml`, or allow it with `settings.environment_variables: [TAG]`
    ");
    let dir = files("settings: {environment_variables: [TAG, DB_PASSWORD]}\n");
    let loaded = load_ok(&dir, &opts);
    assert!(check_environment_allowed(&loaded.project).is_ok());
}

#[test]
fn secret_looking_names() {
    for name in [
        "DB_PASSWORD",
        "api_token",
        "SECRET",
        "AWS_SECRET_ACCESS_KEY",
        "SSH_KEY",
        "MYSQL_PASS",
        "DB_PWD",
        "BASIC_AUTH",
        "PRIVATE_KEY_PEM",
    ] {
        assert!(looks_secret(name), "{name}");
    }
    for name in ["TAG", "REGION", "IMAGE", "PORT"] {
        assert!(!looks_secret(name), "{name}");
    }
}

#[test]
fn included_files_resolve_paths_from_their_own_directory() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("shared/db/db.env", "POSTGRES_DB=app\n"),
        ("shared/db/secrets/pw.pgp", "-----BEGIN PGP MESSAGE-----\n"),
        (
            "shared/db/compose.yaml",
            "services:\n  db:\n    image: postgres\n    env_file: db.env\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./secrets/pw.pgp\n",
        ),
        (
            "stacks/web/compose.yaml",
            "include: [../../shared/db/compose.yaml]\nservices:\n  web:\n    image: nginx\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let stack = &loaded.project.stacks[0];
    assert_eq!(
        service(&loaded, "web", "db").container.environment["POSTGRES_DB"],
        "app"
    );
    assert_eq!(
        stack.secrets["pw"].file,
        PathBuf::from("shared/db/secrets/pw.pgp")
    );
    assert_eq!(
        stack.resolution.files,
        [
            PathBuf::from("shared/db/compose.yaml"),
            "shared/db/db.env".into()
        ]
    );
}

#[test]
fn host_variables_may_not_change_placement() {
    let dir = repo(&[
        (
            "berth.yaml",
            "hosts:\n  - {name: a, address: 10.0.0.1, variables: {N: 1}}\n  - {name: b, address: 10.0.0.2, variables: {N: 2}}\n",
        ),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: nginx\n    deploy:\n      replicas: ${N}\n",
        ),
    ]);
    let err = load_err(&dir, &options(&[], &[]));
    assert!(
        err.starts_with("stacks/web/compose.yaml:2:3: service `api` has different `deploy`, `depends_on`, `secrets` or `x-berth` on host(s) `b` through `hosts[].variables`"),
        "{err}"
    );
}

#[test]
fn the_environment_wins_inside_dotenv_too() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("stacks/web/.env", "BASE=dotenv\nIMAGE=\"app:${BASE}\"\n"),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: $IMAGE\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[("BASE", "env")], &[]));
    assert_eq!(service(&loaded, "web", "api").container.image, "app:env");
    let used = &loaded.project.stacks[0].resolution.variables;
    assert_eq!(used["BASE"].origin, VariableOrigin::Environment);
    assert_eq!(used["BASE"].location.to_string(), "stacks/web/.env:2:1");
    assert_eq!(
        used["IMAGE"].origin,
        VariableOrigin::DotEnv("stacks/web/.env".into())
    );
}

#[test]
fn containers_record_the_variables_written_into_them() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/web/.env",
            "TAG=1.4\nGREETING=hello\nDB_PASSWORD=hunter2\nN=2\n",
        ),
        (
            "stacks/web/compose.yaml",
            "x-common: &common\n  environment:\n    GREETING: ${GREETING}\nservices:\n  api:\n    <<: *common\n    image: nginx:${TAG}\n    deploy:\n      replicas: ${N}\n      resources:\n        limits: {memory: 64m}\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD}\n  worker:\n    extends: api\n  plain:\n    image: busybox\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let stack = &loaded.project.stacks[0];
    let vars = |name: &str| {
        stack
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .container
            .variables
            .clone()
    };
    // `replicas: ${N}` steers the rollout, not the container: changing N
    // must add a replica, not replace every one.
    assert_eq!(
        vars("api"),
        BTreeMap::from([
            ("GREETING".to_string(), "hello".to_string()),
            ("TAG".to_string(), "1.4".to_string()),
        ])
    );
    assert_eq!(vars("worker"), vars("api"), "extends carries its variables");
    let db = vars("db");
    assert!(db["DB_PASSWORD"].starts_with("sha256:"), "{db:?}");
    assert!(!format!("{db:?}").contains("hunter2"));
    assert!(vars("plain").is_empty());
}

#[test]
fn host_variables_give_each_host_its_own_config_bytes() {
    let dir = repo(&[
        (
            "berth.yaml",
            "\
variables: {REGION: default-region}
hosts:
  - {name: eu-1, address: 10.0.0.1, variables: {REGION: eu}}
  - {name: us-1, address: 10.0.0.2, variables: {REGION: us}}
  - {name: plain, address: 10.0.0.3}
",
        ),
        (
            "stacks/edge/compose.yaml",
            "services:\n  agent:\n    image: agent:1\n    configs: [region]\n    deploy: {mode: global}\nconfigs:\n  region:\n    content: \"region ${REGION}\\n\"\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let stack = &loaded.project.stacks[0];
    let agent = service(&loaded, "edge", "agent");
    let bytes = |host: &str| {
        let spec = stack
            .resolution
            .container_for("agent", host, &agent.container);
        let digest = spec.configs["region"].digest.clone();
        let data = stack
            .config_data()
            .find(|d| d.digest == digest)
            .unwrap_or_else(|| panic!("no bytes for {host}'s config {digest}"));
        String::from_utf8_lossy(data.bytes()).into_owned()
    };
    assert_eq!(bytes("eu-1"), "region eu\n");
    assert_eq!(bytes("us-1"), "region us\n");
    assert_eq!(bytes("plain"), "region default-region\n");
}

#[test]
fn included_and_extended_files_resolve_config_paths_from_their_own_directory() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("shared/proxy/haproxy.cfg", "global\n"),
        ("shared/proxy/conf/extra.cfg", "extra\n"),
        (
            "shared/proxy/compose.yaml",
            "services:\n  proxy:\n    image: haproxy\n    configs: [haproxy]\n    volumes: [\"./conf:/etc/extra:ro\"]\nconfigs:\n  haproxy:\n    file: ./haproxy.cfg\n",
        ),
        ("shared/base/base.conf", "base\n"),
        (
            "shared/base/compose.yaml",
            "services:\n  base:\n    image: nginx\n    volumes:\n      - {type: bind, source: ./base.conf, target: /etc/base.conf}\n",
        ),
        // Beside the stack's own file: a path that needs no rebasing.
        ("stacks/web/local.conf", "local\n"),
        (
            "stacks/web/compose.yaml",
            "include: [../../shared/proxy/compose.yaml]\nservices:\n  web:\n    extends: {file: ../../shared/base/compose.yaml, service: base}\n    volumes: [\"./local.conf:/etc/local.conf\"]\n",
        ),
    ]);
    let loaded = load_ok(&dir, &options(&[], &[]));
    let stack = &loaded.project.stacks[0];
    let origin_of = |service_name: &str, target: &str| {
        let service = service(&loaded, "web", service_name);
        let r = service
            .configs
            .iter()
            .find(|r| r.target == target)
            .unwrap_or_else(|| panic!("{service_name} reads nothing at {target}"));
        match &stack.configs[&r.source].origin {
            config_types::ConfigOrigin::Path(p) => p.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        origin_of("proxy", "/haproxy"),
        PathBuf::from("shared/proxy/haproxy.cfg")
    );
    assert_eq!(
        origin_of("proxy", "/etc/extra"),
        PathBuf::from("shared/proxy/conf")
    );
    assert_eq!(
        origin_of("web", "/etc/base.conf"),
        PathBuf::from("shared/base/base.conf")
    );
    assert_eq!(
        origin_of("web", "/etc/local.conf"),
        PathBuf::from("stacks/web/local.conf")
    );
}

#[test]
fn rebased_paths_are_relative_to_the_stack_directory() {
    use std::path::Path;
    let stack = Path::new("stacks/web");
    let rebase = |dir: &str, path: &str| resolve::rebased_path(Path::new(dir), stack, path);
    assert_eq!(
        rebase("stacks/web", "./a.conf").as_deref(),
        Some("./a.conf")
    );
    assert_eq!(
        rebase("stacks/web/sub", "./a.conf").as_deref(),
        Some("./sub/a.conf")
    );
    assert_eq!(
        rebase("shared/db", "./pw.pgp").as_deref(),
        Some("../../shared/db/pw.pgp")
    );
    assert_eq!(rebase("stacks/db", "../web/x").as_deref(), Some("./x"));
    assert_eq!(rebase("shared", "../../x"), None);
}
