//! `spec::load` on small repos written to temp dirs: one full-featured stack
//! read to the exact model, and each kind of mistake with its place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::test_support::repo;
use super::*;

const INVENTORY: &str = "\
project: shop
defaults:
  user: deploy
hosts:
  - name: edge-1
    address: 10.77.0.11
    labels: {role: web, zone: a}
  - name: edge-2
    address: 10.77.0.12
    labels: {role: web, zone: b}
  - name: db-1
    address: 10.77.0.21
    labels: {role: db}
";

/// A repo with the standard inventory and one stack `web`.
fn web(compose: &str) -> tempfile::TempDir {
    repo(&[
        ("berth.yaml", INVENTORY),
        ("stacks/web/compose.yaml", compose),
    ])
}

fn errors(dir: &tempfile::TempDir) -> String {
    match load(dir.path()) {
        Ok(_) => panic!("expected the repo to be refused"),
        Err(e) => e.to_string(),
    }
}

/// Every diagnostic as `file:line:col: message`, without help lines.
fn messages(dir: &tempfile::TempDir) -> Vec<String> {
    match load(dir.path()) {
        Ok(_) => panic!("expected the repo to be refused"),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.location, d.message))
            .collect(),
    }
}

fn at(file: &str, line: usize, column: usize) -> Location {
    Location {
        file: PathBuf::from(file),
        line,
        column,
    }
}

const FULL: &str = r#"version: "3.9"
name: web
x-common: &common
  restart: always
  logging:
    driver: json-file
    options:
      max-size: 10m
services:
  api:
    <<: *common
    image: ghcr.io/acme/api
    command: serve --port 8080 "--name=my api"
    entrypoint: ["/tini", "--"]
    environment:
      LOG_LEVEL: info
      WORKERS: 4
      DEBUG: false
      PRICE: $$5
    ports:
      - "8080:80"
      - 9000-9001:9000-9001/udp
      - target: 443
        published: "8443"
        host_ip: 127.0.0.1
        protocol: tcp
        mode: host
      - 3000
    volumes:
      - data:/var/lib/api
      - /etc/ssl/certs:/etc/ssl/certs:ro
      - type: volume
        source: cache
        target: /cache
        read_only: true
      - type: bind
        source: /srv/api/conf
        target: /etc/api
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 64m
    tmpfs: /run
    networks:
      front:
        aliases: [api.internal]
      back:
    labels:
      - com.example.team=payments
      - com.example.tier
    healthcheck:
      test: curl -fsS http://localhost/health
      interval: 30s
      timeout: 5s
      start_period: 1m
      retries: 3
    user: 1000
    working_dir: /app
    hostname: api
    read_only: true
    cap_add: [net_bind_service]
    cap_drop: [ALL]
    security_opt: [no-new-privileges:true]
    mem_reservation: 256m
    pids_limit: 200
    ulimits:
      nofile: {soft: 1024, hard: 4096}
      nproc: 512
    stop_grace_period: 1m30s
    depends_on:
      db:
        condition: service_healthy
    secrets:
      - api_key
      - source: db_password
        target: db.txt
        uid: "1000"
        gid: "1000"
        mode: 0440
    deploy:
      replicas: 2
      placement:
        constraints:
          - node.labels.role == web
          - node.hostname != edge-3
        max_replicas_per_node: 1
      update_config:
        parallelism: 1
        delay: 10s
        failure_action: rollback
        monitor: 30s
        max_failure_ratio: 0.25
        order: start-first
      rollback_config:
        parallelism: 2
        failure_action: pause
      resources:
        limits:
          cpus: "0.5"
          memory: 512M
          pids: 200
        reservations:
          memory: 256m
    x-berth:
      validate:
        - http: {url: "http://localhost:80/health", body_contains: ok}
        - exec: ["/app/check", "--quick"]
          timeout: 5s
        - exec: test -f /tmp/ready
        - tcp: {port: 80}
  db:
    image: postgres:16@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    networks: [back]
    volumes: [pgdata:/var/lib/postgresql/data]
    deploy:
      mode: global
      placement:
        constraints: [node.labels.role == db]
  worker:
    image: ghcr.io/acme/worker:1.0
    depends_on: [api]
networks:
  front:
  back:
    internal: true
    labels: {tier: back}
  shared:
    external: true
volumes:
  data:
  cache:
    name: api-cache
  pgdata:
    driver: local
  legacy:
    external: true
secrets:
  api_key:
    file: ./secrets/api_key.pgp
  db_password:
    file: secrets/db.pgp
"#;

fn full_repo() -> tempfile::TempDir {
    repo(&[
        ("berth.yaml", INVENTORY),
        ("stacks/web/compose.yaml", FULL),
        (
            "stacks/web/secrets/api_key.pgp",
            "-----BEGIN PGP MESSAGE-----",
        ),
        ("stacks/web/secrets/db.pgp", "-----BEGIN PGP MESSAGE-----"),
        (
            "stacks/cache/compose.yml",
            "services:\n  redis:\n    image: redis:7\n",
        ),
        ("stacks/README.md", "not a stack"),
        ("stacks/.drafts/compose.yaml", "not: [valid"),
    ])
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn port(host_ip: Option<&str>, published: Option<u16>, target: u16, protocol: &str) -> PortSpec {
    PortSpec {
        host_ip: host_ip.map(str::to_string),
        published,
        target,
        protocol: protocol.to_string(),
    }
}

fn mount(kind: MountKind, source: &str, target: &str, read_only: bool) -> MountSpec {
    MountSpec {
        kind,
        source: source.to_string(),
        target: target.to_string(),
        read_only,
        propagation: None,
        selinux: None,
    }
}

#[test]
fn full_stack_loads_to_the_exact_model() {
    let dir = full_repo();
    let project = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(project.name, "shop");
    let hosts: Vec<_> = project
        .inventory
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(hosts, ["db-1", "edge-1", "edge-2"]);
    assert_eq!(project.inventory.hosts[0].user.as_deref(), Some("deploy"));
    let names: Vec<_> = project.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cache", "web"]);
    assert_eq!(
        project.stacks[0].file,
        Path::new("stacks/cache/compose.yml")
    );

    let stack = &project.stacks[1];
    assert_eq!(stack.file, Path::new("stacks/web/compose.yaml"));
    let services: Vec<_> = stack.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(services, ["api", "db", "worker"]);
    let api = &stack.services[0];
    assert_eq!(api.location, at("stacks/web/compose.yaml", 10, 3));

    let expected = ContainerSpec {
        image: "ghcr.io/acme/api:latest".into(),
        command: Some(strings(&["serve", "--port", "8080", "--name=my api"])),
        entrypoint: Some(strings(&["/tini", "--"])),
        environment: map(&[
            ("DEBUG", "false"),
            ("LOG_LEVEL", "info"),
            ("PRICE", "$5"),
            ("WORKERS", "4"),
        ]),
        ports: vec![
            port(None, None, 3000, "tcp"),
            port(None, Some(8080), 80, "tcp"),
            port(None, Some(9000), 9000, "udp"),
            port(None, Some(9001), 9001, "udp"),
            port(Some("127.0.0.1"), Some(8443), 443, "tcp"),
        ],
        mounts: vec![
            mount(MountKind::Volume, "api-cache", "/cache", true),
            mount(MountKind::Volume, "web_data", "/var/lib/api", false),
            mount(MountKind::Bind, "/etc/ssl/certs", "/etc/ssl/certs", true),
            mount(MountKind::Bind, "/srv/api/conf", "/etc/api", false),
        ],
        networks: BTreeMap::from([
            ("web_back".to_string(), strings(&["api"])),
            ("web_front".to_string(), strings(&["api", "api.internal"])),
        ]),
        labels: map(&[("com.example.team", "payments"), ("com.example.tier", "")]),
        healthcheck: Some(HealthcheckSpec {
            test: strings(&["CMD-SHELL", "curl -fsS http://localhost/health"]),
            interval_ms: 30_000,
            timeout_ms: 5_000,
            retries: 3,
            start_period_ms: 60_000,
            start_interval_ms: 0,
        }),
        restart: RestartPolicy::Always,
        user: Some("1000".into()),
        read_only: true,
        cap_add: strings(&["NET_BIND_SERVICE"]),
        cap_drop: strings(&["ALL"]),
        security_opt: strings(&["no-new-privileges:true"]),
        resources: Resources {
            memory: Some(512 << 20),
            memory_reservation: Some(256 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(200),
            device_requests: Vec::new(),
        },
        logging: Some(LoggingSpec {
            driver: "json-file".into(),
            options: map(&[("max-size", "10m")]),
        }),
        tmpfs: map(&[("/run", ""), ("/scratch", "size=67108864")]),
        ulimits: BTreeMap::from([
            (
                "nofile".to_string(),
                Ulimit {
                    soft: 1024,
                    hard: 4096,
                },
            ),
            (
                "nproc".to_string(),
                Ulimit {
                    soft: 512,
                    hard: 512,
                },
            ),
        ]),
        stop_grace_period: Some(90),
        working_dir: Some("/app".into()),
        hostname: Some("api".into()),
        secrets: BTreeMap::new(),
        ..Default::default()
    };
    assert_eq!(api.container, expected);

    assert_eq!(api.deploy.mode, DeployMode::Replicated);
    assert_eq!(api.deploy.replicas, 2);
    assert_eq!(api.deploy.max_replicas_per_node, 1);
    assert_eq!(
        api.deploy.constraints,
        vec![
            Constraint {
                attribute: ConstraintAttribute::Label("role".into()),
                equal: true,
                value: "web".into(),
                text: "node.labels.role == web".into(),
                location: at("stacks/web/compose.yaml", 84, 13),
            },
            Constraint {
                attribute: ConstraintAttribute::Hostname,
                equal: false,
                value: "edge-3".into(),
                text: "node.hostname != edge-3".into(),
                location: at("stacks/web/compose.yaml", 85, 13),
            },
        ]
    );
    assert_eq!(
        api.deploy.update,
        UpdateConfig {
            parallelism: 1,
            delay: Duration::from_secs(10),
            order: UpdateOrder::StartFirst,
            failure_action: FailureAction::Rollback,
            monitor: Duration::from_secs(30),
            max_failure_ratio: 0.25,
        }
    );
    assert_eq!(
        api.deploy.rollback,
        UpdateConfig {
            parallelism: 2,
            failure_action: FailureAction::Pause,
            ..UpdateConfig::default()
        }
    );
    assert_eq!(
        api.depends_on,
        BTreeMap::from([("db".to_string(), DependsCondition::ServiceHealthy)])
    );
    assert_eq!(
        api.validate,
        vec![
            ValidateCheck::Http {
                url: "http://localhost:80/health".into(),
                status: 200,
                body_contains: Some("ok".into()),
                timeout: Duration::from_secs(30),
            },
            ValidateCheck::Exec {
                command: strings(&["/app/check", "--quick"]),
                timeout: Duration::from_secs(5),
            },
            ValidateCheck::Exec {
                command: strings(&["/bin/sh", "-c", "test -f /tmp/ready"]),
                timeout: Duration::from_secs(30),
            },
            ValidateCheck::Tcp {
                port: 80,
                timeout: Duration::from_secs(30),
            },
        ]
    );
    assert_eq!(
        api.secrets,
        vec![
            SecretRef {
                source: "api_key".into(),
                target: "/run/secrets/api_key".into(),
                uid: None,
                gid: None,
                mode: None,
                location: at("stacks/web/compose.yaml", 74, 9),
            },
            SecretRef {
                source: "db_password".into(),
                target: "/run/secrets/db.txt".into(),
                uid: Some("1000".into()),
                gid: Some("1000".into()),
                mode: Some(0o440),
                location: at("stacks/web/compose.yaml", 75, 9),
            },
        ]
    );

    let db = &stack.services[1];
    assert_eq!(db.deploy.mode, DeployMode::Global);
    assert_eq!(
        db.container.image,
        "postgres:16@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(db.container.restart, "unless-stopped");
    assert_eq!(
        db.container.mounts,
        vec![mount(
            MountKind::Volume,
            "web_pgdata",
            "/var/lib/postgresql/data",
            false
        )]
    );
    assert_eq!(
        db.container.networks,
        BTreeMap::from([("web_back".to_string(), strings(&["db"]))])
    );

    let worker = &stack.services[2];
    assert_eq!(
        worker.container.networks,
        BTreeMap::from([("web_default".to_string(), strings(&["worker"]))])
    );
    assert_eq!(
        worker.depends_on,
        BTreeMap::from([("api".to_string(), DependsCondition::ServiceStarted)])
    );
    assert_eq!(worker.deploy.replicas, 1);

    let network =
        |name: &str, external: bool, internal: bool, labels: &[(&str, &str)]| NetworkSpec {
            name: name.into(),
            driver: None,
            external,
            internal,
            labels: map(labels),
            ..NetworkSpec::default()
        };
    assert_eq!(
        stack.networks,
        BTreeMap::from([
            (
                "back".to_string(),
                network("web_back", false, true, &[("tier", "back")])
            ),
            (
                "default".to_string(),
                network("web_default", false, false, &[])
            ),
            ("front".to_string(), network("web_front", false, false, &[])),
            ("shared".to_string(), network("shared", true, false, &[])),
        ])
    );
    let volume = |name: &str, driver: Option<&str>, external: bool| VolumeSpec {
        name: name.into(),
        driver: driver.map(str::to_string),
        external,
        labels: BTreeMap::new(),
        driver_opts: BTreeMap::new(),
    };
    assert_eq!(
        stack.volumes,
        BTreeMap::from([
            ("cache".to_string(), volume("api-cache", None, false)),
            ("data".to_string(), volume("web_data", None, false)),
            ("legacy".to_string(), volume("legacy", None, true)),
            (
                "pgdata".to_string(),
                volume("web_pgdata", Some("local"), false)
            ),
        ])
    );
    assert_eq!(
        stack.secrets["api_key"].file,
        Path::new("stacks/web/secrets/api_key.pgp")
    );
    assert_eq!(
        stack.secrets["db_password"].file,
        Path::new("stacks/web/secrets/db.pgp")
    );
}

#[test]
fn no_stacks_directory_means_no_stacks() {
    let dir = repo(&[("berth.yaml", INVENTORY)]);
    let project = load(dir.path()).unwrap();
    assert!(project.stacks.is_empty());
    assert_eq!(project.root, dir.path());
}

#[test]
fn yaml_syntax_errors_keep_their_place() {
    let dir = web("services:\n  api:\n    image: nginx\n    ports: [80\n");
    assert_eq!(
        messages(&dir),
        ["stacks/web/compose.yaml:5:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'"]
    );
    let dir = repo(&[("berth.yaml", "hosts:\n  - name: a\n   address: b\n")]);
    let found = messages(&dir);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("berth.yaml:3:"), "{found:?}");
}

#[test]
fn duplicate_keys_are_errors() {
    let dir = web("services:\n  api:\n    image: nginx\n    image: httpd\n");
    assert_eq!(
        messages(&dir),
        ["stacks/web/compose.yaml:4:5: duplicate key `image` (first at line 3)"]
    );
}

#[test]
fn unknown_keys_are_reported_where_they_are() {
    let dir = web("servics: {}\n\
         services:\n\
         \x20 api:\n\
         \x20   image: nginx\n\
         \x20   volumez: [data:/data]\n\
         \x20   deploy:\n\
         \x20     replica: 2\n");
    let err = load(dir.path()).unwrap_err();
    let found: Vec<_> = err
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.location.line,
                d.location.column,
                d.message.as_str(),
                d.help.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        (found[0].0, found[0].1, found[0].2),
        (1, 1, "unknown key `servics` in a Compose file")
    );
    assert_eq!(found[0].3, "did you mean `services`?");
    assert_eq!(
        (found[1].0, found[1].1, found[1].2),
        (5, 5, "unknown key `volumez` in service `api`")
    );
    assert_eq!(found[1].3, "did you mean `volumes`?");
    assert_eq!(
        (found[2].0, found[2].1, found[2].2),
        (7, 7, "unknown key `replica` in `deploy` of service `api`")
    );
}

#[test]
fn unsupported_compose_keys_say_what_to_do() {
    let dir = web(
        "services:\n  api:\n    image: nginx\n    scale: two\n    volumes_from: [db]\n    external_links: [x]\n    x-bert: 1\n    x-other: 1\n",
    );
    let err = load(dir.path()).unwrap_err();
    let found: Vec<_> = err
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}: {} / {}",
                d.location,
                d.message,
                d.help.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "stacks/web/compose.yaml:4:12: `scale` of service `api` must be an integer from 0 to 10000, found `two` / ",
            "stacks/web/compose.yaml:5:5: unsupported key `volumes_from` in service `api` / declare a named volume and mount it in both services",
            "stacks/web/compose.yaml:6:5: unsupported key `external_links` in service `api` / berth manages its own project's containers: join both to an external network (`networks: {x: {external: true}}`) and use the other container's name",
            "stacks/web/compose.yaml:7:5: unknown extension `x-bert` in service `api` / did you mean `x-berth`? (other `x-` keys are left to other tools)",
        ]
    );
}

#[test]
fn bad_ports_name_the_port() {
    let dir = web("services:\n  api:\n    image: nginx\n    ports:\n      - 8080:80\n      - 80800:80\n      - target: 80\n        mode: ingress\n");
    assert_eq!(
        messages(&dir),
        [
            "stacks/web/compose.yaml:6:9: service `api` port `80800:80`: host port 80800 is out of range (1-65535)",
            "stacks/web/compose.yaml:8:15: service `api`: port mode `ingress` needs Docker Swarm",
        ]
    );
    let dir = web("services:\n  api:\n    image: nginx\n    ports: [\"8080:80\", \"8080:81\"]\n");
    assert_eq!(
        messages(&dir),
        ["stacks/web/compose.yaml:4:24: service `api` publishes host port 8080/tcp twice"]
    );
}

#[test]
fn bad_image_references_show_the_image() {
    let dir = web("services:\n  api:\n    image: Acme/API:1.0\n  web:\n    image: \"nginx latest\"\n  db:\n    image: \"\"\n");
    assert_eq!(
        messages(&dir),
        [
            "stacks/web/compose.yaml:3:12: service `api`: bad image reference `Acme/API:1.0`: repository names must be lowercase",
            "stacks/web/compose.yaml:5:12: service `web`: bad image reference `nginx latest`: it contains whitespace",
            "stacks/web/compose.yaml:7:12: service `db`: bad image reference ``: the reference is empty",
        ]
    );
    let dir = web("services:\n  api:\n    command: [x]\n");
    assert_eq!(
        messages(&dir),
        ["stacks/web/compose.yaml:2:3: service `api` has no `image`"]
    );
}

#[test]
fn undefined_networks_and_volumes() {
    let dir = web(
        "services:\n  api:\n    image: nginx\n    networks: [frontend]\n    volumes:\n      - dat:/data\n      - type: volume\n        source: cache\n        target: /cache\nnetworks:\n  front: {}\nvolumes:\n  data: {}\n",
    );
    let err = load(dir.path()).unwrap_err();
    let found: Vec<_> = err
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}: {} / {}",
                d.location,
                d.message,
                d.help.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "stacks/web/compose.yaml:4:16: undefined network `frontend` in service `api` / did you mean `front`? declare it under top-level `networks:` (`networks: {frontend: {}}`)",
            "stacks/web/compose.yaml:6:9: undefined volume `dat` in service `api` / did you mean `data`? declare it under top-level `volumes:` (`volumes: {dat: {}}`)",
            "stacks/web/compose.yaml:8:17: undefined volume `cache` in service `api` / declare it under top-level `volumes:` (`volumes: {cache: {}}`)",
        ]
    );
}

#[test]
fn relative_bind_mounts_out_of_the_repo_or_missing_and_anonymous_volumes_are_refused() {
    let dir = web(
        "services:\n  api:\n    image: nginx\n    volumes:\n      - ./conf:/etc/nginx:ro\n      - /data\n      - type: bind\n        source: ../../../x\n        target: /x\n      - type: bind\n        source: data\n        target: /y\n      - type: volume\n        source: /srv\n        target: /z\nvolumes:\n  data: {}\n",
    );
    assert_eq!(
        messages(&dir),
        [
            "stacks/web/compose.yaml:5:9: service `api`: bind mount `./conf`: `stacks/web/conf` does not exist",
            "stacks/web/compose.yaml:6:9: service `api` has an anonymous volume at `/data`",
            "stacks/web/compose.yaml:8:17: service `api`: bind mount `../../../x`: `../../../x` is outside the repo",
            "stacks/web/compose.yaml:11:17: service `api`: bind mount `data`: `stacks/web/data` does not exist",
            "stacks/web/compose.yaml:14:17: service `api`: `type: volume` needs a volume name as `source`, found `/srv`",
        ]
    );
}

#[test]
fn constraints_are_checked_against_the_inventory() {
    let dir = web(
        "services:\n  api:\n    image: nginx\n    deploy:\n      placement:\n        constraints:\n          - node.labels.role == cache\n          - node.role == manager\n          - node.labels.gpu == yes\n  web:\n    image: nginx\n    deploy:\n      placement:\n        constraints: [node.labels.role == web, node.hostname == db-1]\n  one:\n    image: nginx\n    deploy:\n      replicas: 3\n      placement:\n        constraints: [node.labels.role == web]\n        max_replicas_per_node: 1\n",
    );
    let err = load(dir.path()).unwrap_err();
    let found: Vec<_> = err
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}: {} / {}",
                d.location,
                d.message,
                d.help.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "stacks/web/compose.yaml:7:13: constraint `node.labels.role == cache` of service `api` matches no host / hosts have labels: role=db (db-1), role=web (edge-1, edge-2)",
            "stacks/web/compose.yaml:8:13: constraint `node.role == manager` of service `api`: attribute `node.role` is not supported / berth supports `node.hostname` and `node.labels.<key>` with `==` or `!=`, matched against `berth.yaml`",
            "stacks/web/compose.yaml:9:13: constraint `node.labels.gpu == yes` of service `api` matches no host / no host in `berth.yaml` has the label `gpu`",
            "stacks/web/compose.yaml:14:22: the constraints of service `web` together match no host / each constraint matches some host, but no host matches all of them",
            "stacks/web/compose.yaml:18:17: service `one` wants 3 replicas, but at most 2 fit (1 per host on 2 eligible hosts) / lower `replicas`, raise `max_replicas_per_node`, or make more hosts eligible",
        ]
    );
}

#[test]
fn missing_files() {
    let dir = repo(&[("stacks/web/compose.yaml", "services: {}\n")]);
    let err = load(dir.path()).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1);
    assert_eq!(err.diagnostics[0].location, at("berth.yaml", 0, 0));
    assert_eq!(err.diagnostics[0].message, "inventory file not found");
    assert!(err.diagnostics[0]
        .help
        .as_deref()
        .unwrap()
        .starts_with("run berth in a repo that has berth.yaml, or pass --repo"));

    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        ("stacks/web/notes.txt", ""),
        ("stacks/two/compose.yaml", "services: {}\n"),
        ("stacks/two/docker-compose.yml", "services: {}\n"),
    ]);
    insta::assert_snapshot!(errors(&dir), @r"
    stacks/two/compose.yaml: stack `two` has more than one Compose file: `stacks/two/compose.yaml` and `stacks/two/docker-compose.yml`
      help: keep one of them (berth reads one Compose file per stack; use `include:` to combine files)
    stacks/web/compose.yaml: missing stack file for stack `web`
      help: add `stacks/web/compose.yaml`, or remove the directory `stacks/web`
    ");
}

#[test]
fn docker_compose_file_names_are_read_as_compose_reads_them() {
    let dir = repo(&[
        ("berth.yaml", INVENTORY),
        (
            "stacks/old/docker-compose.yml",
            "services:\n  api:\n    image: nginx\n",
        ),
    ]);
    let project = load(dir.path()).unwrap();
    assert_eq!(
        project.stacks[0].file,
        std::path::Path::new("stacks/old/docker-compose.yml")
    );
    assert_eq!(project.stacks[0].services[0].name, "api");
}

#[test]
fn duplicate_host_names() {
    let dir = repo(&[(
        "berth.yaml",
        "hosts:\n  - name: edge-1\n    address: 10.0.0.1\n  - name: edge-1\n    address: 10.0.0.2\n",
    )]);
    assert_eq!(
        messages(&dir),
        ["berth.yaml:4:11: duplicate host name `edge-1` (first at line 2)"]
    );
}

#[test]
fn depends_on_must_name_services_without_cycles() {
    let dir = web(
        "services:\n  a:\n    image: x\n    depends_on: [b, ghost]\n  b:\n    image: x\n    depends_on:\n      c: {condition: service_healthy}\n  c:\n    image: x\n    depends_on: [a]\n  d:\n    image: x\n    depends_on: [d]\n",
    );
    assert_eq!(
        messages(&dir),
        [
            "stacks/web/compose.yaml:4:5: dependency cycle: `a` -> `b` -> `c` -> `a`",
            "stacks/web/compose.yaml:4:21: service `a` depends on `ghost`, which is not a service of stack `web`",
            "stacks/web/compose.yaml:14:5: dependency cycle: `d` -> `d`",
        ]
    );
}

#[test]
fn secrets_must_be_declared_and_exist() {
    let dir = web(
        "services:\n  api:\n    image: x\n    secrets: [db, token]\nsecrets:\n  db:\n    file: ./secrets/db.pgp\n  outside:\n    file: ../../../etc/passwd\n  env:\n    environment: TOKEN\n",
    );
    assert_eq!(
        messages(&dir),
        [
            "stacks/web/compose.yaml:4:19: undefined secret `token` in service `api`",
            "stacks/web/compose.yaml:7:11: secret file `stacks/web/secrets/db.pgp` of secret `db` does not exist",
            "stacks/web/compose.yaml:9:11: `file` of secret `outside` must stay inside the repo, found `../../../etc/passwd`",
            "stacks/web/compose.yaml:11:5: secret `env` is read from an environment variable",
        ]
    );
}

#[test]
fn secrets_from_outside_the_repo_say_what_to_write() {
    insta::assert_snapshot!(errors(&web(
        "services:\n  api:\n    image: x\n    secrets: [cert, token, inline]\nsecrets:\n  cert:\n    external: true\n  token:\n    environment: API_TOKEN\n  inline:\n    content: example\n",
    )));
}

#[test]
fn x_berth_checks_are_validated() {
    let dir = web(
        "services:\n  api:\n    image: x\n    x-berth:\n      validate:\n        - {}\n        - exec: [a]\n          http: {url: http://x}\n        - http: {url: localhost/health}\n        - tcp: {port: 0}\n          timeout: soon\n      rollout: fast\n",
    );
    assert_eq!(
        messages(&dir),
        [
            "stacks/web/compose.yaml:6:11: a check of `x-berth.validate` of service `api` has none of `exec`, `http` or `tcp`",
            "stacks/web/compose.yaml:8:11: a check of `x-berth.validate` of service `api` has more than one of `exec`, `http` and `tcp`",
            "stacks/web/compose.yaml:9:23: `url` of `http` of a check of `x-berth.validate` of service `api` is not an http(s) URL: `localhost/health`",
            "stacks/web/compose.yaml:11:20: `timeout` of a check of `x-berth.validate` of service `api`: `soon` is not a duration",
            "stacks/web/compose.yaml:12:7: unknown key `rollout` in `x-berth` of service `api`",
        ]
    );
}

#[test]
fn several_errors_are_reported_together() {
    let dir = repo(&[
        (
            "berth.yaml",
            "project: shop\nhosts:\n  - name: edge-1\n    address: 10.0.0.1\n    labels: {role: web}\n  - name: edge-1\n    adress: 10.0.0.2\n",
        ),
        (
            "stacks/web/compose.yaml",
            "services:\n  api:\n    image: ghcr.io/Acme/api\n    ports: [\"8080:80800\"]\n    networks: [back]\n    volumes: [./data:/data]\n    deploy:\n      placement:\n        constraints: [node.platform.os == linux]\n    env_file: .env\n",
        ),
        ("stacks/Bad/compose.yaml", "services: {}\n"),
    ]);
    insta::assert_snapshot!(errors(&dir));
}

#[test]
fn inventory_errors_render_with_help() {
    let dir = repo(&[(
        "berth.yaml",
        "project: Shop\nsettings:\n  parallel: 0\n  connect_timeout: 10\nhosts:\n  - name: edge-1\n    address: root@10.0.0.1\n    transport: telnet\n  - address: 10.0.0.2\n",
    )]);
    insta::assert_snapshot!(errors(&dir));
}

/// The example repo shipped in `examples/repo` must stay loadable.
#[test]
fn example_repo_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/repo");
    if !root.join("berth.yaml").is_file() {
        return;
    }
    let project = load(&root).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(project.name, "example");
    assert!(!project.stacks.is_empty());
}

#[test]
fn other_service_forms() {
    let dir = web(
        "name: web\n\
         services:\n\
         \x20 api:\n\
         \x20   image: localhost:5000/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
         \x20   command: [\"sh\", \"-c\", 1]\n\
         \x20   environment: [A=1, B=x=y, C=]\n\
         \x20   healthcheck: {disable: true}\n\
         \x20   labels: {tier: 1}\n\
         \x20   networks: {back: {aliases: [api, db-proxy]}}\n\
         \x20   restart: \"no\"\n\
         \x20   tmpfs: [/run, \"/tmp:size=64m\"]\n\
         \x20   mem_limit: 1g\n\
         \x20   deploy:\n\
         \x20     resources:\n\
         \x20       limits: {memory: 1024m}\n\
         \x20 job:\n\
         \x20   image: busybox\n\
         \x20   healthcheck:\n\
         \x20     test: [CMD, /bin/true]\n\
         networks:\n\
         \x20 back:\n\
         \x20   name: shared-back\n",
    );
    let project = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let stack = &project.stacks[0];
    let api = &stack.services[0].container;
    assert_eq!(api.command, Some(strings(&["sh", "-c", "1"])));
    assert_eq!(api.environment, map(&[("A", "1"), ("B", "x=y"), ("C", "")]));
    assert_eq!(api.healthcheck.as_ref().unwrap().test, strings(&["NONE"]));
    assert_eq!(api.labels, map(&[("tier", "1")]));
    assert_eq!(
        api.networks,
        BTreeMap::from([("shared-back".to_string(), strings(&["api", "db-proxy"]))])
    );
    assert_eq!(api.restart, "no");
    assert_eq!(api.tmpfs, map(&[("/run", ""), ("/tmp", "size=64m")]));
    assert_eq!(api.resources.memory, Some(1 << 30));
    assert_eq!(stack.networks["default"].name, "web_default");
    assert_eq!(stack.networks["back"].name, "shared-back");
    let job = &stack.services[1].container;
    assert_eq!(job.image, "busybox:latest");
    assert_eq!(
        job.healthcheck.as_ref().unwrap().test,
        strings(&["CMD", "/bin/true"])
    );
    assert_eq!(job.networks.keys().collect::<Vec<_>>(), ["web_default"]);
}

#[test]
fn other_mistakes() {
    let dir = web("name: Shop\n\
         include: [other.yaml]\n\
         services:\n\
         \x20 api:\n\
         \x20   image: nginx\n\
         \x20   restart: sometimes\n\
         \x20   mem_limit: 1g\n\
         \x20   labels: {berth.stack: x}\n\
         \x20   healthcheck: {test: [curl, x]}\n\
         \x20   deploy:\n\
         \x20     mode: global\n\
         \x20     replicas: 2\n\
         \x20     resources:\n\
         \x20       limits: {memory: 2g}\n\
         \x20       reservations: {cpus: '1'}\n\
         networks:\n\
         \x20 ext:\n\
         \x20   external: true\n\
         \x20   driver: overlay\n");
    assert_eq!(
        messages(&dir),
        [
            "stacks/web/compose.yaml:1:7: `name: Shop` is not a valid Compose project name",
            "stacks/web/compose.yaml:2:11: included file `stacks/web/other.yaml` does not exist",
            "stacks/web/compose.yaml:6:14: `restart` of service `api` must be `no`, `always`, `on-failure[:N]` or `unless-stopped`, found `sometimes`",
            "stacks/web/compose.yaml:8:14: label `berth.stack` of service `api` uses the reserved prefix `berth.`",
            "stacks/web/compose.yaml:9:25: `test` of `healthcheck` of service `api` must start with `CMD`, `CMD-SHELL` or `NONE`",
            "stacks/web/compose.yaml:12:7: `deploy` of service `api` sets `replicas` with `mode: global`",
            "stacks/web/compose.yaml:14:26: service `api` sets `mem_limit` and `deploy.resources.limits.memory` to different values",
            "stacks/web/compose.yaml:19:5: network `ext` is `external` but sets `driver`",
        ]
    );
}

#[test]
fn top_level_name_prefixes_networks_and_volumes_as_in_compose() {
    let dir = web("name: shop\n\
         services:\n\
         \x20 api:\n\
         \x20   image: nginx\n\
         \x20   volumes: [data:/data]\n\
         volumes:\n\
         \x20 data: {}\n");
    let project = load(dir.path()).unwrap();
    let stack = &project.stacks[0];
    assert_eq!(stack.name, "web", "the stack keeps its directory's name");
    assert_eq!(stack.networks["default"].name, "shop_default");
    assert_eq!(stack.volumes["data"].name, "shop_data");
}

#[test]
fn configs_dir_is_per_host_with_a_default_and_must_be_absolute() {
    let dir = repo(&[(
        "berth.yaml",
        "defaults: {configs_dir: /srv/berth/configs/}\nhosts:\n  - {name: a, address: 10.0.0.1}\n  - {name: b, address: 10.0.0.2, configs_dir: /data/configs}\n",
    )]);
    let loaded = load(dir.path()).expect("loads");
    let dirs: Vec<&str> = loaded
        .inventory
        .hosts
        .iter()
        .map(|h| h.configs_dir.as_str())
        .collect();
    assert_eq!(dirs, ["/srv/berth/configs", "/data/configs"]);
    let dir = repo(&[("berth.yaml", "hosts:\n  - {name: a, address: 10.0.0.1}\n")]);
    let loaded = load(dir.path()).expect("loads");
    assert_eq!(
        loaded.inventory.hosts[0].configs_dir,
        "/var/lib/berth/configs"
    );
    let dir = repo(&[(
        "berth.yaml",
        "hosts:\n  - {name: a, address: 10.0.0.1, configs_dir: var/configs}\n  - {name: b, address: 10.0.0.2, configs_dir: /srv/../etc}\n",
    )]);
    assert_eq!(
        messages(&dir),
        [
            "berth.yaml:2:47: `configs_dir` of host `a` must be an absolute path below `/`, without `..`, found `var/configs`",
            "berth.yaml:3:47: `configs_dir` of host `b` must be an absolute path below `/`, without `..`, found `/srv/../etc`",
        ]
    );
}
